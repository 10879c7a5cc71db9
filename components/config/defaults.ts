/**
 * Every default of the stack config, and the one function that applies them.
 */
import type { ImageFamily } from "../../cloud-init/spec";
import { DEFAULT_ENCRYPTED_DNS, type FirewallMode } from "../../model/state";
import { DEFAULT_PERSISTENT_KEEPALIVE } from "../../model/client-config";
import { DEFAULT_WIREGUARD_EXTRA_PORTS } from "../../model/public-ports";
import { CATALOG } from "../catalog";
import type { HostTarget, RawConfig, RawGroup, UnallocatedConfig } from "./types";

/**
 * Every default, in one place. Pulumi.yaml repeats the provider-independent ones because the Pulumi CLI
 * demands a default for each optional key it declares; test/config.test.ts fails if the two ever differ.
 */
export const DEFAULTS = {
  image: "debian-12" as ImageFamily,
  hostname: "cloudpal-hub",
  allowWorldSsh: false,
  sshPort: 22,
  operatorUser: "cloudpal-admin",
  wireguardPort: 51820,
  wireguardExtraPorts: DEFAULT_WIREGUARD_EXTRA_PORTS,
  // On by default: the product promises the campus that lets only HTTPS out, and an idle relay answers no one
  // without a device's key (README "TCP path").
  tcpPath: true,
  tcpPort: 443,
  // 10.77/16: clear of the home-router favourites (192.168.0/1.x, 10.0.0.x), of Docker (172.17/16), and
  // of the cloud ranges checks.ts rejects; /16 keeps name-hash collisions rare.
  ipv4Subnet: "10.77.0.0/16",
  // A fixed ULA /64 (RFC 4193 global id 7a:c10d:09a1) rather than one derived from the stack name: device
  // configs carry these addresses, and renaming or moving a stack must not renumber every device.
  ipv6Prefix: "fd7a:c10d:9a1::/64",
  peerGroup: "family",
  groups: { family: { reaches: ["family"], internet: true } } as Record<string, RawGroup>,
  groupSites: "open" as const,
  dns: {
    blocklists: ["https://raw.githubusercontent.com/StevenBlack/hosts/master/hosts"],
    allow: [] as string[],
    deny: [] as string[],
    upstreams: [
      { address: "9.9.9.9", tlsName: "dns.quad9.net", port: 853 },
      { address: "149.112.112.112", tlsName: "dns.quad9.net", port: 853 },
      { address: "1.1.1.1", tlsName: "cloudflare-dns.com", port: 853 },
      { address: "1.0.0.1", tlsName: "cloudflare-dns.com", port: 853 },
    ],
    dnssec: true,
    queryLog: false,
  },
  upstreamPort: 853,
  firewallMode: "vpn" as FirewallMode,
  backups: false,
  linodeReservedIpv4: false,
  autoReboot: { enabled: true, time: "04:00" },
  persistentKeepalive: DEFAULT_PERSISTENT_KEEPALIVE,
  ipv6SessionIdle: 300,
  ipv6DeviceAddresses: false,
} as const;

/** The one function that applies defaults. */
export function withDefaults(raw: RawConfig): UnallocatedConfig {
  const host: HostTarget =
    raw.provider === "existing"
      ? {
          provider: "existing",
          host: raw.existing?.host ?? "",
          user: raw.existing?.user ?? "",
          hostKey: raw.existing?.hostKey ?? "",
          ...(raw.existing?.ipv6Prefix !== undefined ? { ipv6Prefix: raw.existing.ipv6Prefix } : {}),
          ...(raw.existing?.ipv6OnLink === true ? { ipv6OnLink: true as const } : {}),
        }
      : {
          provider: raw.provider,
          region: raw.region ?? CATALOG[raw.provider].defaultRegion,
          size: raw.size ?? CATALOG[raw.provider].defaultSize,
          backups: raw.backups ?? DEFAULTS.backups,
          ...(raw.provider === "linode" && (raw.linodeReservedIpv4 ?? DEFAULTS.linodeReservedIpv4)
            ? { reservedIpv4: true as const }
            : {}),
        };
  const dns = raw.dns ?? {};
  return {
    host,
    image: raw.image ?? DEFAULTS.image,
    hostname: raw.hostname ?? DEFAULTS.hostname,
    sshPublicKeys: raw.sshPublicKeys,
    sshAllowedCidrs: raw.sshAllowedCidrs,
    allowWorldSsh: raw.allowWorldSsh ?? DEFAULTS.allowWorldSsh,
    sshPort: raw.sshPort ?? DEFAULTS.sshPort,
    operatorUser: host.provider === "existing" ? host.user : (raw.operatorUser ?? DEFAULTS.operatorUser),
    wireguardPort: raw.wireguardPort ?? DEFAULTS.wireguardPort,
    // A stack whose own wireguardPort or sshPort is 443 or 53 keeps working: the default leaves that port out.
    wireguardExtraPorts:
      raw.wireguardExtraPorts ??
      DEFAULTS.wireguardExtraPorts.filter(
        (p) => p !== (raw.wireguardPort ?? DEFAULTS.wireguardPort) && p !== (raw.sshPort ?? DEFAULTS.sshPort),
      ),
    ...((raw.tcpPath ?? DEFAULTS.tcpPath) ? { tcpPort: raw.tcpPort ?? DEFAULTS.tcpPort } : {}),
    ipv4Subnet: raw.ipv4Subnet ?? DEFAULTS.ipv4Subnet,
    ipv6Prefix: raw.ipv6Prefix ?? DEFAULTS.ipv6Prefix,
    peers: (raw.peers ?? []).map((p) => ({
      name: p.name,
      group: p.group ?? DEFAULTS.peerGroup,
      ...(p.publicKey !== undefined ? { publicKey: p.publicKey } : {}),
      ...(p.address !== undefined ? { address: p.address } : {}),
      publicIpv6: p.publicIpv6 ?? "off",
      nat64: p.nat64 ?? false,
    })),
    groups: Object.entries(raw.groups ?? DEFAULTS.groups).map(([name, g]) => ({
      name,
      reaches: g.reaches ?? [],
      internet: g.internet ?? false,
      encryptedDns: g.encryptedDns ?? DEFAULT_ENCRYPTED_DNS,
      blocklists: g.blocklists ?? [],
      allow: g.allow ?? [],
      deny: g.deny ?? [],
      sites: g.sites ?? DEFAULTS.groupSites,
    })),
    dns: {
      blocklists: dns.blocklists ?? [...DEFAULTS.dns.blocklists],
      allow: dns.allow ?? [],
      deny: dns.deny ?? [],
      upstreams: (dns.upstreams ?? DEFAULTS.dns.upstreams).map((u) => ({
        address: u.address,
        tlsName: u.tlsName,
        port: u.port ?? DEFAULTS.upstreamPort,
      })),
      dnssec: dns.dnssec ?? DEFAULTS.dns.dnssec,
      queryLog: dns.queryLog ?? DEFAULTS.dns.queryLog,
    },
    firewallMode: raw.firewallMode ?? DEFAULTS.firewallMode,
    ...(raw.endpointHostname !== undefined ? { endpointHostname: raw.endpointHostname } : {}),
    autoReboot: {
      enabled: raw.autoReboot?.enabled ?? DEFAULTS.autoReboot.enabled,
      time: raw.autoReboot?.time ?? DEFAULTS.autoReboot.time,
    },
    persistentKeepalive: raw.persistentKeepalive ?? DEFAULTS.persistentKeepalive,
    ipv6SessionIdle: raw.ipv6SessionIdle ?? DEFAULTS.ipv6SessionIdle,
    ipv6DeviceAddresses: raw.ipv6DeviceAddresses ?? DEFAULTS.ipv6DeviceAddresses,
  };
}
