/**
 * The validated stack config (HubConfig) and the shapes on the way to it: what the user wrote (RawConfig)
 * and the config before addresses are allocated. Types only, and the error every config problem is reported in.
 */
import type { ImageFamily } from "../../cloud-init/spec";
import type { DnsState, EncryptedDns, FirewallMode, PublicIpv6Mode, SiteMode } from "../../model/state";
import type { CloudProvider } from "../catalog";

export const CONFIG_NAMESPACE = "cloudpal";

export interface CloudHostTarget {
  readonly provider: CloudProvider;
  /** Defaults to the provider's Frankfurt region (components/catalog.ts). */
  readonly region: string;
  /** Defaults to the provider's cheapest size (components/catalog.ts). */
  readonly size: string;
  /** Defaults to false: no copies of the hub on the provider's backup systems. */
  readonly backups: boolean;
  /**
   * Linode only, from 'linodeReservedIpv4' (default false; present only when true): the account has IP
   * reservation, so the hub keeps one IPv4 across rebuilds. DigitalOcean and Vultr always reserve.
   */
  readonly reservedIpv4?: true;
}

export interface ExistingHostTarget {
  readonly provider: "existing";
  readonly host: string;
  /** Required, not root (the bootstrap turns root login off). Also the operator user. */
  readonly user: string;
  /** The server's ed25519 host key line; delivery connects to no server presenting another. */
  readonly hostKey: string;
  /** The server's global IPv6 prefix for devices, if the user gave one (model/public-ipv6.ts). */
  readonly ipv6Prefix?: string;
  /** Present (true) when that prefix is on-link rather than routed. */
  readonly ipv6OnLink?: true;
}

export type HostTarget = CloudHostTarget | ExistingHostTarget;

export interface PeerConfig {
  readonly name: string;
  /** Absent: CloudPal makes the device's key pair and puts the private key in its client config. */
  readonly publicKey?: string;
  /** Defaults to "family". */
  readonly group: string;
  /** Pinned IPv4 address, if any. */
  readonly address?: string;
  /** Defaults to "off": the hub's own public IPv6. */
  readonly publicIpv6: PublicIpv6Mode;
  /** An IPv6-only device: DNS64 and NAT64 on the hub (model/nat64.ts). Defaults to false. */
  readonly nat64: boolean;
  /** Allocated tunnel addresses (model/addressing.ts). */
  readonly ipv4: string;
  readonly ipv6: string;
}

export interface GroupConfig {
  readonly name: string;
  /** Defaults to []. */
  readonly reaches: readonly string[];
  /** Defaults to false. */
  readonly internet: boolean;
  /** Defaults to DEFAULT_ENCRYPTED_DNS ("block"). */
  readonly encryptedDns: EncryptedDns;
  /** The group's own blocklists, allow and deny entries, on top of the hub's `dns` ones. Default []. */
  readonly blocklists: readonly string[];
  readonly allow: readonly string[];
  readonly deny: readonly string[];
  /** Defaults to "open" (model/state.ts SiteMode). */
  readonly sites: SiteMode;
}

/** A group as the user writes it under `groups.<name>`. */
export interface RawGroup {
  reaches?: string[];
  internet?: boolean;
  encryptedDns?: EncryptedDns;
  blocklists?: string[];
  allow?: string[];
  deny?: string[];
  sites?: SiteMode;
}

export interface AutoRebootConfig {
  /** Defaults to true: kernel security fixes only take effect after a reboot. */
  readonly enabled: boolean;
  /** Defaults to "04:00" (UTC). */
  readonly time: string;
}

export interface HubConfig {
  readonly host: HostTarget;
  /** Defaults to "debian-12". */
  readonly image: ImageFamily;
  /** Defaults to "cloudpal-hub". */
  readonly hostname: string;
  readonly sshPublicKeys: readonly string[];
  /** Required: no default can know where the operator runs `pulumi up` from. */
  readonly sshAllowedCidrs: readonly string[];
  /** Defaults to false. */
  readonly allowWorldSsh: boolean;
  /** Defaults to 22. For `existing`, the port the server's sshd already listens on. */
  readonly sshPort: number;
  /** Defaults to "cloudpal-admin" (for `existing`: existing.user). */
  readonly operatorUser: string;
  /** Defaults to 51820. */
  readonly wireguardPort: number;
  /** UDP ports WireGuard also answers on, by a redirect to wireguardPort. Defaults to [443, 53]. */
  readonly wireguardExtraPorts: readonly number[];
  /**
   * The TCP path's public port (Shadowsocks with a key per device, agent/src/tcp-relay/); undefined when
   * 'tcpPath' is false. Defaults to 443.
   */
  readonly tcpPort?: number;
  /** Defaults to "10.77.0.0/16". */
  readonly ipv4Subnet: string;
  /** Defaults to "fd7a:c10d:9a1::/64". */
  readonly ipv6Prefix: string;
  /** Defaults to []. */
  readonly peers: readonly PeerConfig[];
  /** Defaults to one group, "family", which reaches itself and the internet. */
  readonly groups: readonly GroupConfig[];
  /** Defaults: one blocklist, no allow/deny entries, Quad9 and Cloudflare over TLS, DNSSEC on, no query log. */
  readonly dns: DnsState;
  /** Defaults to "vpn". */
  readonly firewallMode: FirewallMode;
  readonly endpointHostname?: string;
  readonly autoReboot: AutoRebootConfig;
  /** Defaults to 25 seconds. */
  readonly persistentKeepalive: number;
  /** Defaults to 300 seconds. */
  readonly ipv6SessionIdle: number;
  /** Defaults to false. */
  readonly ipv6DeviceAddresses: boolean;
}

/** The stack config as the user wrote it, after the schema accepted its shape. */
export interface RawConfig {
  provider: HostTarget["provider"];
  region?: string;
  size?: string;
  image?: ImageFamily;
  existing?: { host: string; user: string; hostKey: string; ipv6Prefix?: string; ipv6OnLink?: boolean };
  hostname?: string;
  sshPublicKeys: string[];
  sshAllowedCidrs: string[];
  allowWorldSsh?: boolean;
  sshPort?: number;
  operatorUser?: string;
  wireguardPort?: number;
  wireguardExtraPorts?: number[];
  tcpPath?: boolean;
  tcpPort?: number;
  ipv4Subnet?: string;
  ipv6Prefix?: string;
  peers?: {
    name: string;
    publicKey?: string;
    group?: string;
    address?: string;
    publicIpv6?: PublicIpv6Mode;
    nat64?: boolean;
  }[];
  groups?: Record<string, RawGroup>;
  dns?: {
    blocklists?: string[];
    allow?: string[];
    deny?: string[];
    upstreams?: { address: string; tlsName: string; port?: number }[];
    dnssec?: boolean;
    queryLog?: boolean;
  };
  firewallMode?: FirewallMode;
  endpointHostname?: string;
  backups?: boolean;
  linodeReservedIpv4?: boolean;
  autoReboot?: { enabled?: boolean; time?: string };
  persistentKeepalive?: number;
  ipv6SessionIdle?: number;
  ipv6DeviceAddresses?: boolean;
}

/** HubConfig before addresses are allocated. */
export type UnallocatedConfig = Omit<HubConfig, "peers"> & {
  readonly peers: readonly Omit<PeerConfig, "ipv4" | "ipv6">[];
};

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(
      `The ${CONFIG_NAMESPACE} stack config has ${problems.length} problem${problems.length === 1 ? "" : "s"}:\n` +
        problems.map((p) => `  - ${p}`).join("\n"),
    );
    this.name = "ConfigError";
  }
}
