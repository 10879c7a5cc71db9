#!/usr/bin/env bash
# Installs the host tools the tests run for real: cloud-init (schema), wireguard-go + wireguard-tools,
# nftables, unbound, nsd (a local authoritative server for the "internet" namespace), QEMU + debootstrap
# (the VM end-to-end test). Needs root. Idempotent.
set -euo pipefail
packages=(
  cloud-init
  wireguard-go wireguard-tools
  nftables unbound nsd dnsutils
  iproute2 iputils-ping procps time
  qemu-system-x86 qemu-utils debootstrap genisoimage openssh-client
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[#] apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
