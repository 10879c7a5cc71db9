/**
 * Where this agent process reads and writes, and which interface, table and unbound it drives.
 *
 * Production uses LAYOUT unchanged. Tests (unit and network-namespace) run many agents on one machine, so every
 * path can be moved under a root directory and every name overridden, through one function and environment
 * variables the CLI reads. Nothing else in the agent consults the environment.
 */
import { totalmem } from "os";
import * as path from "path";
import { LAYOUT } from "../../model/layout";
import { NAT64 } from "../../model/nat64";

export interface AgentPaths {
  readonly stateDir: string;
  readonly stateFile: string;
  readonly blocklistDir: string;
  readonly wireguardConfig: string;
  readonly nftablesConfig: string;
  /** Server settings and upstreams: a change needs `unbound-control reload`. */
  readonly unboundConfig: string;
  /** Peer names and blocklist zones: changes are applied live with `unbound-control local_zones/local_datas`. */
  readonly unboundZones: string;
  /** Blocklist zones: large, so kept apart and rebuilt only when a list, 'allow' or 'deny' changed. */
  readonly unboundBlocklist: string;
  /** The DNS filter's table (agent/src/dns-filter-table.ts), rebuilt with the lists, 'allow' and 'deny'. */
  readonly dnsFilterTable: string;
  /**
   * The CA certificates unbound checks its DNS-over-TLS upstreams against: the distribution's bundle, or, under
   * a test root, the test's own CA for its own upstream (test/e2e/netns/hub.ts).
   */
  readonly caBundle: string;
  /** Where IP forwarding is switched on (`/proc/sys`); per network namespace. */
  readonly sysctlDir: string;
  /** The current public IPv6 session address of each "session" device (agent/src/public-ipv6.ts). */
  readonly sessionsFile: string;
  /**
   * The mount unit the bootstrap writes when `stateDir` must be a volume. Its presence is the hub's declaration
   * that key material may only be written once that volume is mounted (agent/src/secret-storage.ts).
   */
  readonly stateMountUnit: string;
  /** The kernel's mount table for this process (`/proc/self/mountinfo`); a fixture file in unit tests. */
  readonly mountInfo: string;
  /** The TCP path relay's control socket (agent/src/tcp-relay/), in its service's runtime directory. */
  readonly tcpControlSocket: string;
  /** tayga's and the DNS64 resolver's configs (model/nat64.ts), written while some device has nat64. */
  readonly taygaConfig: string;
  readonly dns64Config: string;
  /** tayga's data-dir (its dynamic map), made by the translator unit (StateDirectory=). */
  readonly nat64DataDir: string;
}

export interface AgentOptions {
  readonly paths: AgentPaths;
  /** WireGuard interface name: tests need one unique name per run (wireguard-go sockets are global). */
  readonly interface: string;
  readonly nftTable: string;
  /** Arguments put before every unbound-control command, e.g. ["-c", "/tmp/x/unbound.conf"] in tests. */
  readonly unboundControlArgs: readonly string[];
  /** How unbound is restarted when its listen addresses change (a reload keeps the old sockets). */
  readonly unboundRestartCommand: readonly string[];
  /** Bounds on one blocklist download. */
  readonly blocklistMaxBytes: number;
  readonly blocklistTimeoutMs: number;
  /** The TCP path relay's user (name or uid): the nftables output chain holds it (agent/src/tcp-relay/nft.ts). */
  readonly tcpRelayUser: string;
  /** How long the relay waits for a connection's first chunk, probes alike (agent/src/tcp-relay/server.ts). */
  readonly tcpHandshakeTimeoutMs: number;
  /** How the NAT64 units are enabled, started and stopped (agent/src/nat64.ts): `systemctl` on a hub. */
  readonly serviceControl: readonly string[];
}

export const UNBOUND_ZONES_FILE = "cloudpal-zones.conf";
export const UNBOUND_BLOCKLIST_FILE = "cloudpal-blocklist.conf";

export function productionPaths(): AgentPaths {
  return {
    stateDir: LAYOUT.stateDir,
    stateFile: LAYOUT.stateFile,
    blocklistDir: LAYOUT.blocklistDir,
    wireguardConfig: LAYOUT.wireguardConfig,
    nftablesConfig: LAYOUT.nftablesConfig,
    unboundConfig: LAYOUT.unboundConfig,
    unboundZones: path.join(path.dirname(LAYOUT.unboundConfig), UNBOUND_ZONES_FILE),
    unboundBlocklist: path.join(path.dirname(LAYOUT.unboundConfig), UNBOUND_BLOCKLIST_FILE),
    dnsFilterTable: path.join(LAYOUT.stateDir, "dns-filter.table"),
    // Debian's ca-certificates bundle (Ubuntu's is the same file).
    caBundle: "/etc/ssl/certs/ca-certificates.crt",
    sysctlDir: "/proc/sys",
    sessionsFile: path.join(LAYOUT.stateDir, "ipv6-sessions.json"),
    stateMountUnit: path.join("/etc/systemd/system", LAYOUT.stateVolume.mountUnit),
    mountInfo: "/proc/self/mountinfo",
    tcpControlSocket: LAYOUT.tcpRelay.controlSocket,
    taygaConfig: NAT64.files.tayga,
    dns64Config: NAT64.files.dns64,
    nat64DataDir: NAT64.dataDir,
  };
}

/** Every LAYOUT path moved under `root` (sysctlDir and mountInfo excepted: they are the kernel's, not ours). */
export function pathsUnder(root: string, sysctlDir = "/proc/sys"): AgentPaths {
  const p = productionPaths();
  const under = (f: string): string => path.join(root, f);
  return {
    stateDir: under(p.stateDir),
    stateFile: under(p.stateFile),
    blocklistDir: under(p.blocklistDir),
    wireguardConfig: under(p.wireguardConfig),
    nftablesConfig: under(p.nftablesConfig),
    unboundConfig: under(p.unboundConfig),
    unboundZones: under(p.unboundZones),
    unboundBlocklist: under(p.unboundBlocklist),
    dnsFilterTable: under(p.dnsFilterTable),
    caBundle: under(p.caBundle),
    sysctlDir,
    sessionsFile: under(p.sessionsFile),
    stateMountUnit: under(p.stateMountUnit),
    mountInfo: p.mountInfo,
    tcpControlSocket: under(p.tcpControlSocket),
    taygaConfig: under(p.taygaConfig),
    dns64Config: under(p.dns64Config),
    nat64DataDir: under(p.nat64DataDir),
  };
}

export function defaultOptions(paths: AgentPaths = productionPaths()): AgentOptions {
  return {
    paths,
    interface: LAYOUT.interface,
    nftTable: LAYOUT.nftTable,
    unboundControlArgs: [],
    unboundRestartCommand: ["systemctl", "restart", "unbound.service"],
    // A download is held whole while it is parsed (about three times its size at the peak), so the cap
    // follows the hub's memory: 16 MiB on a 512 MB hub, 64 MiB from 2 GB up. The entry cap
    // (blocklist.ts maxBlocklistEntries) is the tighter bound on what is loaded either way.
    blocklistMaxBytes: Math.min(64 * 1024 * 1024, Math.floor(totalmem() / 32)),
    blocklistTimeoutMs: 60_000,
    tcpRelayUser: LAYOUT.tcpRelay.user,
    tcpHandshakeTimeoutMs: 60_000,
    serviceControl: ["systemctl"],
  };
}

/**
 * Options from the environment:
 * CLOUDPAL_ROOT (prefix for every path), CLOUDPAL_SYSCTL_DIR, CLOUDPAL_INTERFACE, CLOUDPAL_NFT_TABLE,
 * CLOUDPAL_UNBOUND_CONTROL_CONFIG (unbound-control -c), CLOUDPAL_UNBOUND_RESTART (JSON argument array),
 * CLOUDPAL_TCP_RELAY_USER (name or uid), CLOUDPAL_TCP_HANDSHAKE_TIMEOUT_MS, CLOUDPAL_SERVICE_CONTROL (JSON argument
 * array instead of `systemctl`).
 */
export function optionsFromEnv(env: NodeJS.ProcessEnv): AgentOptions {
  const sysctlDir = env.CLOUDPAL_SYSCTL_DIR || "/proc/sys";
  const paths = env.CLOUDPAL_ROOT
    ? pathsUnder(env.CLOUDPAL_ROOT, sysctlDir)
    : { ...productionPaths(), sysctlDir };
  const base = defaultOptions(paths);
  const ifname = env.CLOUDPAL_INTERFACE || base.interface;
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(ifname)) {
    throw new Error(
      `'CLOUDPAL_INTERFACE' (${JSON.stringify(ifname)}) is not an interface name: use 1 to 15 letters, digits, '_', '.' or '-'.`,
    );
  }
  const table = env.CLOUDPAL_NFT_TABLE || base.nftTable;
  if (!/^[A-Za-z][A-Za-z0-9_]{0,31}$/.test(table)) {
    throw new Error(
      `'CLOUDPAL_NFT_TABLE' (${JSON.stringify(table)}) is not an nftables table name: use a letter then up to 31 letters, digits or '_'.`,
    );
  }
  const serviceControl = env.CLOUDPAL_SERVICE_CONTROL
    ? commandFromEnv("CLOUDPAL_SERVICE_CONTROL", env.CLOUDPAL_SERVICE_CONTROL)
    : base.serviceControl;
  let restart = base.unboundRestartCommand;
  if (env.CLOUDPAL_UNBOUND_RESTART) {
    const parsed: unknown = JSON.parse(env.CLOUDPAL_UNBOUND_RESTART);
    if (!Array.isArray(parsed) || parsed.length === 0 || !parsed.every((a) => typeof a === "string")) {
      throw new Error(
        `'CLOUDPAL_UNBOUND_RESTART' (${JSON.stringify(env.CLOUDPAL_UNBOUND_RESTART)}) is not a JSON array of strings: give the command as an argument array.`,
      );
    }
    restart = parsed as string[];
  }
  const relayUser = env.CLOUDPAL_TCP_RELAY_USER || base.tcpRelayUser;
  if (!/^([a-z][a-z0-9_-]{0,31}|[0-9]{1,9})$/.test(relayUser)) {
    throw new Error(
      `'CLOUDPAL_TCP_RELAY_USER' (${JSON.stringify(relayUser)}) is not a user: give a user name or a numeric uid.`,
    );
  }
  const handshake = env.CLOUDPAL_TCP_HANDSHAKE_TIMEOUT_MS
    ? Number(env.CLOUDPAL_TCP_HANDSHAKE_TIMEOUT_MS)
    : base.tcpHandshakeTimeoutMs;
  if (!Number.isInteger(handshake) || handshake < 100 || handshake > 3_600_000) {
    throw new Error(
      `'CLOUDPAL_TCP_HANDSHAKE_TIMEOUT_MS' (${JSON.stringify(env.CLOUDPAL_TCP_HANDSHAKE_TIMEOUT_MS)}) is not a timeout: give milliseconds from 100 to 3600000.`,
    );
  }
  return {
    ...base,
    serviceControl,
    tcpRelayUser: relayUser,
    tcpHandshakeTimeoutMs: handshake,
    interface: ifname,
    nftTable: table,
    unboundRestartCommand: restart,
    unboundControlArgs: env.CLOUDPAL_UNBOUND_CONTROL_CONFIG
      ? ["-c", env.CLOUDPAL_UNBOUND_CONTROL_CONFIG]
      : [],
  };
}

function commandFromEnv(name: string, value: string): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    parsed = undefined;
  }
  if (!Array.isArray(parsed) || parsed.length === 0 || !parsed.every((a) => typeof a === "string")) {
    throw new Error(
      `'${name}' (${JSON.stringify(value)}) is not a JSON array of strings: give the command as an argument array, e.g. ["systemctl"].`,
    );
  }
  return parsed as string[];
}
