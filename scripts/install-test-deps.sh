#!/usr/bin/env bash
# Installs the host tools the tests run for real: cloud-init (schema), wireguard-go + wireguard-tools,
# nftables, unbound, nsd (a local authoritative server for the "internet" namespace), nmap (the public-exposure
# scan of the namespace hub), QEMU + debootstrap
# (the VM end-to-end test), dns-root-data (the DNSSEC anchor unbound-checkconf reads) and sudo (for visudo, which
# checks the sudoers rule the bootstrap writes), shadowsocks-libev (Debian's ss-local and ss-tunnel: the
# TCP path's client in its test and benchmark), iperf3 and dnsperf (benchmarks), ldnsutils (ldns-keygen and ldns-signzone:
# the DNSSEC-signed test zones of the DNS filter's namespace test). Needs root: uses sudo only when not root and sudo exists. Idempotent.
set -euo pipefail
packages=(
  cloud-init
  tayga # the NAT64 translator test/e2e/netns-nat64.test.ts runs, as the hub does
  wireguard-go wireguard-tools
  nftables unbound nsd dnsutils dns-root-data sudo
  iproute2 iputils-ping procps time nmap
  shadowsocks-libev iperf3 dnsperf curl util-linux ldnsutils
  qemu-system-x86 qemu-utils debootstrap genisoimage openssh-client
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
as_root=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-test-deps: run as root (sudo is not installed)." >&2; exit 1; }
  as_root=(sudo)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "[#] apt-get install ${missing[*]}"
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
