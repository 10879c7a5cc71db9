import { MANAGED_HEADER } from "../model/layout";

/**
 * Debian packages the hub needs, and nothing they merely recommend (see APT_DROP_IN). Every name exists in
 * both Debian 12 (bookworm) and Ubuntu 24.04 (noble), and the hub runs something from each. On the VM test's
 * Debian 12 image (`apt-get -s install` against its dpkg status) Recommends added 9 packages to these 30 that
 * nothing on the hub uses: nodejs-doc (nodejs), iso-codes (python3-apt), python3-gi, gir1.2-glib-2.0,
 * libgirepository-1.0-1, libglib2.0-data, shared-mime-info, xdg-user-dirs and libxml2 (from python3-gi's
 * and glib's Recommends), with slow triggers among them (update-mime-database).
 *
 * The DNSSEC root trust anchor comes from dns-root-data (offline, updated with the package) rather than
 * unbound-anchor, which would fetch it over the network at boot.
 */
export const HUB_PACKAGES: readonly string[] = [
  "wireguard-tools", // wg: the agent's `wg syncconf`; the kernel module is in both images' kernels
  "nftables",
  "unbound", // also provides unbound-control and unbound-checkconf
  "dns-root-data",
  // unbound's DNS-over-TLS to the upstreams (tls-cert-bundle) and the agent's blocklist downloads over HTTPS
  // read /etc/ssl/certs. Cloud images ship it, but without Recommends nothing else would pull it in.
  "ca-certificates",
  "unattended-upgrades",
  "nodejs", // runs the agent bundle: 18.x on both images
  "iproute2", // ip: the agent brings wg0 up
  "sudo", // the operator's NOPASSWD rule
  "tayga", // NAT64 for devices with nat64 (model/nat64.ts); runs only while one exists
];

/**
 * apt settings for the hub, written with the other files before any package is installed (cloud-init's
 * write_files runs in the init stage, package_update_upgrade_install in the final stage; the bootstrap script
 * writes its files first too), so the first `apt-get update` and install already follow them, and so do
 * unattended-upgrades and any later install. No dot in the name: apt ignores apt.conf.d files with an
 * extension other than .conf.
 */
export const APT_DROP_IN = "/etc/apt/apt.conf.d/90cloudpal-apt";

/**
 * - Install-Recommends false: see HUB_PACKAGES for what Recommends added. Every later apt run on the hub
 *   (unattended-upgrades included) reads the same file, so an update's new Recommends do not grow it either.
 * - No source indexes: many images list a `deb-src` line next to every `deb` line (cloud-init's own Debian
 *   template does, /etc/cloud/templates/sources.list.debian.tmpl, on images that let cloud-init write
 *   sources.list), and then every `apt-get update` also fetches and parses the source indexes (bookworm main's
 *   Sources.xz alone is 9.5 MB), which the hub never uses. `DefaultEnabled` switches one index target off for
 *   every source, "or override this value in a config file" (Debian/apt doc/acquire-additional-files.md); the
 *   sources files stay as the image has them. (The VM test's image lists `deb` only: no saving there.)
 * - gzip indexes first (apt.conf(5), Acquire::CompressionTypes::Order): on the VM test's first boot the CPU,
 *   not the network, bounded `apt-get update` (9.4 MB of xz indexes at 101 kB/s, the .debs right after at
 *   2.5 MB/s). bookworm main's Packages.gz is 12.1 MB against 8.8 MB as .xz, and decompresses about 2.5 times
 *   faster (0.30 s against 0.76 s of CPU here); a small or shared vCPU is the hub's usual size.
 * - Languages none: no Translation-* files; nobody reads package descriptions on a hub.
 */
export function renderAptConfig(): string {
  return `${MANAGED_HEADER}
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::IndexTargets::deb-src::Sources::DefaultEnabled "false";
Acquire::CompressionTypes::Order:: "gz";
Acquire::Languages "none";
`;
}
