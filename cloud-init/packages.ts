/**
 * Debian packages the hub needs. Every name exists in both Debian 12 (bookworm) and Ubuntu 24.04 (noble).
 * The DNSSEC root trust anchor comes from dns-root-data (offline, updated with the package) rather than
 * unbound-anchor, which would fetch it over the network at boot.
 *
 * Not listed: ca-certificates (blocklist downloads over HTTPS). Every cloud image has it, and nodejs
 * Recommends it, so apt adds it where it is missing. Naming it would make apt upgrade an installed one at
 * first boot, whose postinst re-hashes every certificate: minutes on a small or emulated VM.
 */
export const HUB_PACKAGES: readonly string[] = [
  "wireguard-tools", // wg: the agent's `wg syncconf`; the kernel module is in both images' kernels
  "nftables",
  "unbound", // also provides unbound-control and unbound-checkconf
  "dns-root-data",
  "unattended-upgrades",
  "nodejs", // runs the agent bundle: 18.x on both images
  "iproute2", // ip: the agent brings wg0 up
  "sudo", // the operator's NOPASSWD rule
];
