/**
 * Direct connections between devices: the words the hub's discovery service (agent/src/discovery.ts) and the
 * device helper (device/src/helper.ts) share, and the one rule on which pairs may go direct.
 *
 * A pair goes direct only when both devices run the helper and each device's group reaches the other's: on a
 * direct path the hub's firewall is no longer between them, so a one-way rule ("family reaches iot, iot reaches
 * nothing") could not be kept, and such a pair stays relayed. Everything else about a pair (its endpoints, its
 * NAT) is decided on the devices.
 */
import type { HubState, PeerState } from "./state";

/** TCP port of the discovery service, bound to the hub's tunnel IPv4 only. */
export const DISCOVERY_PORT = 51821;
/**
 * NAT detection needs two vantage points on the hub. They are two of the hub's public WireGuard ports (the listen
 * port and the first extra port, model/public-ports.ts), so no port is opened for it: a probe starts with
 * PROBE_MAGIC, which no WireGuard message starts with (its first byte is its type, 1-4, then three zeros), and the
 * hub's nftables redirect probes on the i-th vantage port to PROBE_PORT_BASE + i, where the discovery service's
 * reflector answers with the address and port the probe came from. One local port per vantage point: two
 * redirected flows from one device socket to one local port would share a reply tuple, and conntrack would
 * rewrite the second one's source port, faking a per-destination NAT.
 */
export const PROBE_PORT_BASE = 3479;

/** The hub ports a helper probes: the listen port and the first extra WireGuard port, when there is one. */
export function probeVantagePorts(listenPort: number, extraPorts: readonly number[]): number[] {
  return [listenPort, ...extraPorts.filter((p) => p !== listenPort)].slice(0, 2);
}

/** "CPNP" */
export const PROBE_MAGIC = 0x43504e50;
/** Probes are exactly this long and answers never longer, so the reflector amplifies nothing. */
export const PROBE_BYTES = 64;

/** How a device's NAT maps one local UDP port to public ones, as the helper measured it. */
export type NatMapping =
  /** Same public port towards both vantage points: a peer can reach the port the hub sees. */
  | "endpoint-independent"
  /** A new public port per destination ("symmetric" NAT): punching to the port the hub sees cannot work. */
  | "per-destination"
  /** Fewer than two vantage points answered. */
  | "unknown";

export type PathKind = "direct" | "relayed";

/** One pair's path as a helper reports it (and prints it). */
export interface PairReport {
  readonly path: PathKind;
  /** Why, in a few words: "handshake and probe passed", "symmetric NAT at laptop", "direct path failed at ...". */
  readonly reason: string;
  /** Unix milliseconds since this path and reason hold. */
  readonly since: number;
  /** The endpoint used for the direct attempt, when there was one. */
  readonly endpoint?: string;
}

/** What a helper sends to the hub, as JSON, on every exchange. */
export interface HelperReport {
  /** The WireGuard listen port on the device. */
  readonly listenPort: number;
  /** The device's own addresses with prefix, e.g. "192.168.1.20/24" (IPv4 only). */
  readonly lan: readonly string[];
  readonly nat: NatMapping;
  /** By peer name. */
  readonly pairs: Readonly<Record<string, PairReport>>;
  /** The answer generation the helper holds; the hub waits (long poll) while it is still current. */
  readonly have?: string;
  /** Whether the hub may hold the answer until something changes. */
  readonly wait?: boolean;
}

export interface DirectCandidate {
  readonly name: string;
  readonly publicKey: string;
  readonly ipv4: string;
  readonly ipv6: string;
  /** Whether the peer runs the helper (reported within HELPER_FRESH_MS). */
  readonly helper: boolean;
  /** Present only when helper: the peer's public endpoint as the hub's WireGuard sees it. */
  readonly endpoint?: string;
  readonly lan?: readonly string[];
  readonly listenPort?: number;
  readonly nat?: NatMapping;
}

/** The hub's answer to one device. */
export interface DiscoveryAnswer {
  readonly generation: string;
  /** The hub's public UDP ports the helper probes its NAT mapping at (probeVantagePorts). */
  readonly probePorts: readonly number[];
  readonly self: { readonly name: string; readonly endpoint?: string };
  /** The devices this one may go direct with (mutual reach), helper or not. */
  readonly peers: readonly DirectCandidate[];
}

/** A helper that has not asked for this long is taken as gone (its long poll is at most LONG_POLL_MS). */
export const HELPER_FRESH_MS = 60_000;
export const LONG_POLL_MS = 20_000;

/** The devices `peer` may go direct with: both groups reach each other. Never `peer` itself. */
export function directPeersOf(state: HubState, peer: PeerState): PeerState[] {
  const reaches = new Map(state.groups.map((g) => [g.name, new Set(g.reaches)]));
  const mutual = (a: PeerState, b: PeerState) =>
    (reaches.get(a.group)?.has(b.group) ?? false) && (reaches.get(b.group)?.has(a.group) ?? false);
  return state.peers.filter((p) => p.publicKey !== peer.publicKey && mutual(peer, p));
}

/** A probe or an answer: MAGIC, 8 nonce bytes, then (answers only) "ip:port" as ASCII, zero padded. */
export function probePacket(nonce: Buffer, observed?: string): Buffer {
  const b = Buffer.alloc(PROBE_BYTES);
  b.writeUInt32BE(PROBE_MAGIC, 0);
  nonce.copy(b, 4, 0, 8);
  if (observed !== undefined) b.write(observed.slice(0, PROBE_BYTES - 12), 12, "ascii");
  return b;
}

export function parseProbe(b: Buffer): { nonce: Buffer; observed?: string } | undefined {
  if (b.length !== PROBE_BYTES || b.readUInt32BE(0) !== PROBE_MAGIC) return undefined;
  const text = b.subarray(12).toString("ascii").replace(/\0+$/, "");
  return { nonce: Buffer.from(b.subarray(4, 12)), ...(text ? { observed: text } : {}) };
}
