/**
 * Where CloudPal lives on a hub. The cloud-init renderer, the agent and the delivery step all read these
 * constants, so the three can never disagree on a path, a unit name or a user.
 */
export const LAYOUT = {
  /** The agent bundle (one file, plain `node`). */
  agentBundle: "/usr/local/lib/cloudpal/cloudpal-agent.js",
  /** Wrapper on PATH: `cloudpal-agent apply|status|peer config`. */
  agentBin: "/usr/local/bin/cloudpal-agent",
  /**
   * Every file holding key material lives in this directory (0700): the persisted desired state and the
   * rendered WireGuard config. On DigitalOcean and Vultr the provider's volume is mounted here, because their
   * instance disks are not documented as encrypted at rest; see `stateVolume`.
   */
  stateDir: "/var/lib/cloudpal",
  /** Persisted desired state (holds the hub private key and every preshared key): mode 0600. */
  stateFile: "/var/lib/cloudpal/state.json",
  /** Last good blocklists, one file per source URL. */
  blocklistDir: "/var/lib/cloudpal/blocklists",
  /** Rendered WireGuard config consumed by `wg syncconf` (0600; holds the private and preshared keys). */
  wireguardConfig: "/var/lib/cloudpal/wg0.conf",
  /**
   * The volume that holds `stateDir` where the provider offers one: an ext4 filesystem found by its label
   * (ext4 labels are at most 16 bytes), mounted by a systemd mount unit whose name is `stateDir` escaped as
   * `systemd-escape --path` does.
   */
  stateVolume: {
    label: "cloudpal-state",
    fsType: "ext4",
    mountUnit: "var-lib-cloudpal.mount",
  },
  /** Loaded by Debian's nftables.service at boot; the agent rewrites it and loads it with `nft -f`. */
  nftablesConfig: "/etc/nftables.conf",
  /** The one nftables table CloudPal owns. */
  nftTable: "cloudpal",
  /** unbound reads every file in unbound.conf.d; CloudPal owns this one. */
  unboundConfig: "/etc/unbound/unbound.conf.d/cloudpal.conf",
  /** systemd units the bootstrap installs and the agent relies on. */
  units: {
    /** oneshot at boot: re-applies the persisted state (brings wg0 up after a reboot). */
    agent: "cloudpal-agent.service",
    /** refreshes blocklists on a timer with jitter. */
    blocklists: "cloudpal-blocklists.service",
    blocklistsTimer: "cloudpal-blocklists.timer",
    /** The DNS filter before unbound (agent/src/dns-filter.ts); Restart=always. */
    dnsFilter: "cloudpal-dns-filter.service",
    /** long-running: endpoint discovery for the device helpers (direct connections, agent/src/discovery.ts). */
    discovery: "cloudpal-discovery.service",
    /** watches handshakes for "session" devices' public IPv6 (agent/src/session-watch.ts). */
    sessions: "cloudpal-sessions.service",
  },
  /**
   * The TCP path (agent/src/tcp-relay/): its service runs the agent bundle's `tcp serve` as its own user, which
   * binds the public port with CAP_NET_BIND_SERVICE; the agent pushes keys over the control socket.
   */
  tcpRelay: {
    unit: "cloudpal-tcp.service",
    user: "cloudpal-tcp",
    runtimeDir: "/run/cloudpal-tcp",
    controlSocket: "/run/cloudpal-tcp/control.sock",
  },
  /** WireGuard interface name on the hub. */
  interface: "wg0",
  /** Private DNS zone for peer names: laptop.pal. */
  dnsZone: "pal",
} as const;

/** Header every generated config file starts with (comment syntax is '#' for wg, nft and unbound alike). */
export const MANAGED_HEADER =
  "# Managed by CloudPal; do not edit. Changes are overwritten on the next apply.";

/**
 * The port the DNS filter (agent/src/dns-filter.ts) listens on, on the hub's tunnel addresses: the target of the
 * redirect of tunnel DNS and of the hub's own queries to those addresses (the TCP path's relay).
 */
export const DNS_FILTER_PORT = 5300;

/**
 * Node's flags for the DNS filter, and NODE_OPTIONS for the blocklist refresh (cloud-init/units.ts; the benchmark
 * and the namespace tests run them the same way). A 1 MiB semi-space: V8's young generation is otherwise up to
 * three 16 MiB semi-spaces on 64-bit Node 18, which the filter's per-query garbage and the refresh's per-name
 * garbage filled (bench/dns-filter.ts). The refresh's 64 MiB old space: V8 sizes its heap growth by the cap, and
 * without one the refresh at 1,000,000 names peaked at 97 MiB RSS (55 MiB anonymous) against 80 (39) with it;
 * a 32 MiB cap measured the same as 64, and a hub with 10,000 devices refreshes under 64 too (bench/dns-filter.ts
 * with BENCH_PEERS=10000).
 */
export const DNS_FILTER_NODE_FLAGS = ["--max-semi-space-size=1", "--max-old-space-size=96"] as const;
export const REFRESH_NODE_OPTIONS = "--max-semi-space-size=1 --max-old-space-size=64";
/**
 * The share of the hub's memory all DNS processes together may take (unbound, the DNS filter, the refreshing
 * agent): the blocklist entry cap is computed from it (agent/src/blocklist.ts maxBlocklistEntries) and the filter
 * unit's MemoryMax is set to it (cloud-init/units.ts), so a list the cap admits never gets the filter killed.
 */
export const DNS_MEMORY_SHARE = 0.4;
