/**
 * Where CloudPal lives on a hub. The cloud-init renderer, the agent and the delivery step all read these
 * constants, so the three can never disagree on a path, a unit name or a user.
 */
export const LAYOUT = {
  /** System user the unprivileged parts (blocklist downloads) run as. */
  user: "cloudpal",
  /** The agent bundle (one file, plain `node`). */
  agentBundle: "/usr/local/lib/cloudpal/cloudpal-agent.js",
  /** Wrapper on PATH: `cloudpal-agent apply|status|peer config`. */
  agentBin: "/usr/local/bin/cloudpal-agent",
  /** Persisted desired state (holds the hub private key): mode 0600, directory 0700. */
  stateDir: "/var/lib/cloudpal",
  stateFile: "/var/lib/cloudpal/state.json",
  /** Last good blocklists, one file per source URL. */
  blocklistDir: "/var/lib/cloudpal/blocklists",
  /** Rendered WireGuard config consumed by `wg syncconf` (0600). */
  wireguardConfig: "/etc/wireguard/wg0.conf",
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
  },
  /** WireGuard interface name on the hub. */
  interface: "wg0",
  /** Private DNS zone for peer names: laptop.pal. */
  dnsZone: "pal",
} as const;

/** Header every generated config file starts with (comment syntax is '#' for wg, nft and unbound alike). */
export const MANAGED_HEADER =
  "# Managed by CloudPal; do not edit. Changes are overwritten on the next apply.";
