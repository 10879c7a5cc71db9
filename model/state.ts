/**
 * The desired state of one hub: the document the Pulumi program sends to `cloudpal-agent apply` on stdin,
 * and that the agent persists (0600) and reconciles WireGuard, nftables and unbound against.
 *
 * The Pulumi side builds it with `buildHubState()` (components/state.ts); the agent validates it at the edge
 * with the JSON Schema in model/state-schema.ts. Addresses are already allocated (model/addressing.ts):
 * the agent never invents one, so the client configs made by Pulumi and the hub always agree.
 */
export type FirewallMode = "vpn" | "mesh-only";

/**
 * Whether a group's devices may use encrypted DNS that bypasses the hub's filter: DNS-over-TLS and DNS-over-QUIC
 * (port 853) anywhere, and DNS-over-HTTPS to the well-known resolvers (agent/src/nftables-ruleset.ts). Plain
 * DNS to any resolver is always answered by the hub.
 */
export type EncryptedDns = "allow" | "block";

/**
 * "block": the filter is the reason the hub runs a resolver, and devices whose encrypted DNS is refused fall
 * back to plain DNS, which the hub answers (browsers in automatic DoH mode, Android's automatic Private DNS).
 * A group whose devices insist on their own encrypted resolver opts out with "allow".
 */
export const DEFAULT_ENCRYPTED_DNS: EncryptedDns = "block";

/**
 * What a group's devices may reach on the internet, beyond the DNS filter (README "Per-group site policies"):
 * - "open" (absent in the state): every site; the group's allow, deny and blocklists act in DNS only.
 * - "deny": the group's `deny` names are refused in DNS and the addresses they resolve to (through the hub) are
 *   dropped in the firewall, in an nft set the DNS filter keeps filled (agent/src/site-policy.ts).
 * - "allow-list": only the group's `allow` names and their subdomains: other names are refused in DNS, and
 *   internet traffic goes only to addresses the filter saw in the answers for allowed names, each for its TTL.
 */
export type SiteMode = "open" | "deny" | "allow-list";

export interface GroupState {
  /** Group name, hostname-safe. */
  readonly name: string;
  /** Groups whose peers this group's peers may open connections to (its own name included if members talk). */
  readonly reaches: readonly string[];
  /** Whether this group's peers may use the hub as their internet gateway (only honoured in `vpn` mode). */
  readonly internet: boolean;
  /** Absent in states written before it existed: DEFAULT_ENCRYPTED_DNS. */
  readonly encryptedDns?: EncryptedDns;
  /** The group's own blocklist URLs, on top of the hub's `dns.blocklists`. Absent: none. */
  readonly blocklists?: readonly string[];
  /** Names this group may resolve even when the hub's or the group's lists block them. Absent: none. */
  readonly allow?: readonly string[];
  /** Names refused to this group on top of the hub's. Absent: none. */
  readonly deny?: readonly string[];
  /** Absent: "open". */
  readonly sites?: Exclude<SiteMode, "open">;
}

/**
 * Which public IPv6 address a device's internet traffic leaves from (vpn mode): "off" the hub's own, "session"
 * a random address of the hub's prefix that changes with each of the device's sessions, "per-site" a different
 * but stable address for each destination. Absent: "off".
 */
export type PublicIpv6Mode = "off" | "session" | "per-site";

/**
 * The hub's public IPv6, as the provider gives it (model/public-ipv6.ts). All optional: a state without it is
 * a hub whose IPv6 the provider's own setup (SLAAC, DHCPv6) handles, and devices keep ULA behind NAT66.
 */
export interface PublicIpv6State {
  /**
   * Addresses the hub puts on its internet interface itself, as /128s (DigitalOcean's reserved IPv6, which
   * the provider routes to the droplet but never configures). The first is the hub's own IPv6 for NAT66.
   */
  readonly addresses?: readonly string[];
  /** A global prefix of /64 or larger that reaches the hub: devices get addresses from it. */
  readonly prefix?: string;
  /**
   * true when the prefix is on the link, not routed to the hub (Vultr): the hub uses its upper half
   * (<prefix>:8000::/65) for devices and answers neighbour solicitations for those addresses (proxy NDP).
   */
  readonly onLink?: boolean;
  /** Seconds a device must have been silent before its next handshake starts a new session. */
  readonly sessionIdle?: number;
  /**
   * Devices get a global address from the prefix (in their configs). Off by default: on Linode and Vultr the
   * prefix changes with a rebuild, and so would every device config.
   */
  readonly deviceAddresses?: boolean;
}

export interface PeerState {
  /** Hostname-safe device name; also its DNS name `<name>.pal`. */
  readonly name: string;
  /** WireGuard public key, 44 base64 characters. */
  readonly publicKey: string;
  /** Optional WireGuard preshared key (secret). */
  readonly presharedKey?: string;
  /** The peer's tunnel IPv4 address, no prefix (e.g. "10.77.0.23"). */
  readonly ipv4: string;
  /** The peer's tunnel IPv6 address, no prefix (e.g. "fd7a:c10d:9a1::17"). */
  readonly ipv6: string;
  /** Name of one of the groups. */
  readonly group: string;
  /**
   * The device's Shadowsocks password for the TCP path (secret; agent/src/tcp-relay/): 43 base64url characters
   * (32 random bytes). Absent: the device has no TCP access.
   */
  readonly tcpKey?: string;
  /** Absent: "off". Needs `hub.publicIpv6.prefix` for "session" and "per-site". */
  readonly publicIpv6?: PublicIpv6Mode;
  /**
   * An IPv6-only device: the hub answers it with DNS64 and translates to IPv4 (NAT64). Never for dual-stack
   * devices, whose IPv4 traffic would go through the translator.
   */
  readonly nat64?: boolean;
}

export interface DnsUpstream {
  /** IP address of a DNS-over-TLS resolver. */
  readonly address: string;
  /** TLS authentication name of that resolver (e.g. "cloudflare-dns.com"). */
  readonly tlsName: string;
  /** Port; DNS-over-TLS is 853. */
  readonly port: number;
}

export interface DnsState {
  /** Blocklist sources (hosts files or plain domain lists), fetched by the hub itself. */
  readonly blocklists: readonly string[];
  /** Domains never blocked, even when a blocklist names them. */
  readonly allow: readonly string[];
  /** Domains always blocked. */
  readonly deny: readonly string[];
  readonly upstreams: readonly DnsUpstream[];
  readonly dnssec: boolean;
  readonly queryLog: boolean;
}

export interface HubState {
  readonly version: 1;
  readonly hub: {
    /** The hub's WireGuard private key (secret). */
    readonly privateKey: string;
    /** WireGuard UDP listen port. */
    readonly listenPort: number;
    /**
     * Public UDP ports redirected to listenPort (model/public-ports.ts), for networks that let only UDP 443 or 53
     * out. Absent (a state written before it existed): none.
     */
    readonly wireguardExtraPorts?: readonly number[];
    /**
     * "host:port" devices dial (the DNS name when the user set one). Only the client configs read it
     * (model/client-config.ts); the program always sets it, and an older state without it makes
     * `cloudpal-agent peer config` ask for --endpoint.
     */
    readonly endpoint?: string;
    /**
     * Seconds between the keepalives a device sends; only the client configs read it. Optional so that a
     * state written before it existed stays valid; absent means DEFAULT_PERSISTENT_KEEPALIVE.
     */
    readonly persistentKeepalive?: number;
    /**
     * Public TCP port of the TCP path (Shadowsocks AEAD, agent/src/tcp-relay/); absent turns the path off.
     * Optional so that a state written before it existed stays valid.
     */
    readonly tcpPort?: number;
    /** SSH port the firewall keeps open. */
    readonly sshPort: number;
    /** CIDRs allowed to reach SSH. */
    readonly sshAllowedCidrs: readonly string[];
    /** The private IPv4 subnet, e.g. "10.77.0.0/16"; the hub is its first host. */
    readonly ipv4Subnet: string;
    /** The private IPv6 ULA prefix, e.g. "fd7a:c10d:9a1::/64"; the hub is its first host. */
    readonly ipv6Prefix: string;
    /** Absent in states written before it existed, and where the hub has no public IPv6 to manage. */
    readonly publicIpv6?: PublicIpv6State;
  };
  readonly mode: FirewallMode;
  readonly groups: readonly GroupState[];
  readonly peers: readonly PeerState[];
  readonly dns: DnsState;
}
