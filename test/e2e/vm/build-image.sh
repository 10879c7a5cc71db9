#!/usr/bin/env bash
# Builds the Debian 12 VM image the end-to-end test boots: debootstrap minbase plus what a cloud image ships
# (kernel, cloud-init, sshd), kernel and initrd extracted for QEMU's -kernel/-initrd, root as compressed qcow2.
#
# Cached under $CLOUDPAL_CACHE (default /var/cache/cloudpal-ci) in vm-image-<hash>/, where the hash covers the
# suite, the package list and this script, so any change to the recipe builds a new image and an unchanged
# recipe never rebuilds. Downloaded .debs are kept in $CLOUDPAL_CACHE/debs, so even a rebuild skips the mirror.
# The build happens in a temporary directory that is renamed into place only when complete, and a lock keeps
# two concurrent runs from building the same image twice.
#
# Prints the image directory (holding vmlinuz, initrd.img, base.qcow2) as the last line of stdout.
# Recipe measured in ../shared/notes/vm.md. Needs root, debootstrap, e2fsprogs and qemu-img.
set -euo pipefail

suite=bookworm
mirror=${CLOUDPAL_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# python3-cffi-backend is named because debootstrap does not resolve the virtual package cloud-init needs.
packages=linux-image-cloud-amd64,systemd-sysv,udev,dbus,cloud-init,python3-cffi-backend,openssh-server,ifupdown,isc-dhcp-client,iproute2,iputils-ping,ca-certificates,sudo,netbase,kmod,initramfs-tools,e2fsprogs

cache=${CLOUDPAL_CACHE:-/var/cache/cloudpal-ci}
hash=$(printf '%s\n%s\n' "$suite" "$packages" | cat - "$0" | sha256sum | cut -c1-16)
image_dir="$cache/vm-image-$hash"

log() { echo "[build-image] $*" >&2; }

if [ -f "$image_dir/base.qcow2" ]; then
  log "cached: $image_dir"
  echo "$image_dir"
  exit 0
fi

mkdir -p "$cache/debs"
exec 9>"$cache/.vm-image.lock"
flock 9
# Another run may have finished the same image while we waited for the lock.
if [ -f "$image_dir/base.qcow2" ]; then
  log "cached (built by a concurrent run): $image_dir"
  echo "$image_dir"
  exit 0
fi

work=$(mktemp -d "$cache/.vm-image-build.XXXXXX")
cleanup() {
  # A failure half-way can leave /proc, /dev or the .deb cache mounted in the root; unmount them, and never
  # delete through a mount that is still there (rm would then empty the host's /dev or the cache).
  for m in var/cache/apt/archives proc sys dev/pts dev; do
    if mountpoint -q "$work/root/$m" 2>/dev/null; then umount "$work/root/$m" || umount -l "$work/root/$m"; fi
  done
  if grep -q " $work/" /proc/mounts; then
    log "not removing $work: something is still mounted below it"
    return
  fi
  rm -rf "$work"
}
trap cleanup EXIT

start=$(date +%s)
log "debootstrap $suite ($mirror) into $work/root"
debootstrap --variant=minbase --cache-dir="$cache/debs" --include="$packages" "$suite" "$work/root" "$mirror" \
  >"$work/debootstrap.log" 2>&1 || {
  tail -n 40 "$work/debootstrap.log" >&2
  log "debootstrap failed; see the log tail above"
  exit 1
}
log "debootstrap done in $(($(date +%s) - start)) s"

root="$work/root"
echo "/dev/vda / ext4 defaults 0 1" >"$root/etc/fstab"
cat >"$root/etc/apt/sources.list" <<SOURCES
deb $mirror $suite main
deb $mirror $suite-updates main
deb http://deb.debian.org/debian-security $suite-security main
SOURCES
mkdir -p "$root/etc/cloud/cloud.cfg.d"
cat >"$root/etc/cloud/cloud.cfg.d/90-nocloud.cfg" <<'CFG'
datasource_list: [NoCloud, None]
CFG

# Bring the image up to the point releases and security updates, as a provider's current image is: without
# this, every boot upgrades packages the hub names (ca-certificates' upgrade alone takes minutes under TCG).
# Services must not start inside the chroot; downloads go to the shared .deb cache.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
cp /etc/resolv.conf "$root/etc/resolv.conf"
mkdir -p "$cache/debs/partial"
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
mount --bind "$cache/debs" "$root/var/cache/apt/archives"
log "apt-get upgrade inside the image"
{
  chroot "$root" apt-get update &&
    DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get -y -o Dpkg::Options::=--force-confold upgrade
} >"$work/upgrade.log" 2>&1 || {
  tail -n 40 "$work/upgrade.log" >&2
  log "apt-get upgrade in the image failed; see the log tail above"
  exit 1
}
umount "$root/var/cache/apt/archives" "$root/dev" "$root/proc"
rm -f "$root/usr/sbin/policy-rc.d" "$root/etc/resolv.conf" "$root"/var/lib/apt/lists/*_Packages \
  "$root"/var/lib/apt/lists/*_Translation-* "$root"/var/cache/apt/*.bin
# Host keys and the machine id are made on first boot, so that no two VMs from this image share them.
rm -f "$root"/etc/ssh/ssh_host_*
: >"$root/etc/machine-id"

# An upgrade may have added a newer kernel next to the first one: boot the newest.
kernel=$(ls "$root"/boot/vmlinuz-* | sort -V | tail -n 1)
version=${kernel##*/vmlinuz-}
cp "$kernel" "$work/vmlinuz"
cp "$root/boot/initrd.img-$version" "$work/initrd.img"
chmod 0644 "$work/vmlinuz" "$work/initrd.img"

truncate -s 4G "$work/base.raw"
mkfs.ext4 -q -F -d "$root" "$work/base.raw"
qemu-img convert -c -O qcow2 "$work/base.raw" "$work/base.qcow2"
rm -f "$work/base.raw"
printf 'suite=%s\npackages=%s\nkernel=%s\nbuilt=%s\nseconds=%s\n' "$suite" "$packages" "$version" \
  "$(date -u +%FT%TZ)" "$(($(date +%s) - start))" >"$work/manifest"

# Only the finished files move; the root tree is deleted with the work directory.
mkdir "$work/out"
mv "$work/vmlinuz" "$work/initrd.img" "$work/base.qcow2" "$work/manifest" "$work/out/"
mv "$work/out" "$image_dir"
log "built $image_dir in $(($(date +%s) - start)) s ($(du -h "$image_dir/base.qcow2" | cut -f1) qcow2)"
echo "$image_dir"
