/**
 * The hub's WireGuard config, in the stripped form `wg syncconf` takes (no Address/DNS lines: wg-quick
 * extensions that `wg` rejects; addresses are set with `ip addr`). One [Peer] per device whose AllowedIPs are
 * exactly its /32 and /128: WireGuard's cryptokey routing then drops any packet from a peer whose source is
 * not its own address, which is the first layer of anti-spoofing (nftables adds the second).
 */
import { MANAGED_HEADER } from "../../model/layout";
import type { HubState, PeerState } from "../../model/state";
import * as ipaddr from "ipaddr.js";
import { canonicalIpv6 } from "../../model/ip-text";
import { peerGlobalIpv6 } from "../../model/public-ipv6";

type HubAddressing = Pick<HubState["hub"], "ipv4Subnet" | "publicIpv6">;

/** Its /32 and ULA /128, and its global /128 where the hub has a public prefix (model/public-ipv6.ts). */
export function peerAllowedIps(peer: { ipv4: string; ipv6: string }, hub?: HubAddressing): string[] {
  const global = hub === undefined ? undefined : peerGlobalIpv6(hub, peer);
  return [
    `${peer.ipv4}/32`,
    `${canonicalIpv6(peer.ipv6)}/128`,
    ...(global !== undefined ? [`${global}/128`] : []),
  ];
}

function byKey(a: { publicKey: string }, b: { publicKey: string }): number {
  return a.publicKey < b.publicKey ? -1 : a.publicKey > b.publicKey ? 1 : 0;
}

function peerSections(peers: readonly PeerState[], hub: HubAddressing): string[] {
  const lines: string[] = [];
  for (const peer of [...peers].sort(byKey)) {
    lines.push("", `# ${peer.name}`, "[Peer]", `PublicKey = ${peer.publicKey}`);
    if (peer.presharedKey) lines.push(`PresharedKey = ${peer.presharedKey}`);
    lines.push(`AllowedIPs = ${peerAllowedIps(peer, hub).join(", ")}`);
  }
  return lines;
}

/** Peers sorted by public key so the file does not change when the list is reordered. */
export function renderWireguardConfig(state: HubState): string {
  const lines = [
    MANAGED_HEADER,
    "[Interface]",
    `PrivateKey = ${state.hub.privateKey}`,
    `ListenPort = ${state.hub.listenPort}`,
  ];
  return [...lines, ...peerSections(state.peers, state.hub)].join("\n") + "\n";
}

/** Only peer sections, for `wg addconf`: no interface line, so the key and the socket are left alone. */
export function renderWireguardPeers(peers: readonly PeerState[], hub: HubAddressing): string {
  return [MANAGED_HEADER, "[Interface]", ...peerSections(peers, hub)].join("\n") + "\n";
}

export interface WgDumpPeer {
  readonly publicKey: string;
  readonly presharedKey?: string;
  readonly endpoint?: string;
  readonly allowedIps: readonly string[];
  /** Unix seconds; 0 = never. */
  readonly latestHandshake: number;
  readonly rxBytes: number;
  readonly txBytes: number;
}

export interface WgDump {
  readonly privateKey: string;
  readonly publicKey: string;
  readonly listenPort: number;
  readonly peers: readonly WgDumpPeer[];
}

/** Parses `wg show IFACE dump` (tab-separated; first line the interface, then one line per peer). */
export function parseWgDump(text: string): WgDump {
  const rows = text
    .split("\n")
    .filter((l) => l.length > 0)
    .map((l) => l.split("\t"));
  if (rows.length === 0 || rows[0].length < 4)
    throw new Error(`unexpected 'wg show dump' output: ${JSON.stringify(text.slice(0, 100))}`);
  const none = (v: string) => (v === "(none)" ? undefined : v);
  return {
    privateKey: rows[0][0],
    publicKey: rows[0][1],
    listenPort: Number(rows[0][2]),
    peers: rows.slice(1).map((r) => ({
      publicKey: r[0],
      presharedKey: none(r[1]),
      endpoint: none(r[2]),
      allowedIps: r[3] === "(none)" ? [] : r[3].split(","),
      latestHandshake: Number(r[4]),
      rxBytes: Number(r[5]),
      txBytes: Number(r[6]),
    })),
  };
}

/** wg prints addresses canonically; ours are canonical too, so most need no parsing (which is slow in bulk). */
function canonicalCidr(cidr: string): string {
  return /^[0-9.]+\/32$/.test(cidr) ? cidr : ipaddr.parseCIDR(cidr).toString();
}

/** What `wg syncconf` would set, in a form comparable with the live dump. */
function fingerprint(
  privateKey: string,
  listenPort: number,
  peers: readonly { publicKey: string; presharedKey?: string; allowedIps: readonly string[] }[],
): string {
  const rows = peers
    .map((p) => `${p.publicKey} ${p.presharedKey ?? "-"} ${p.allowedIps.map(canonicalCidr).sort().join(",")}`)
    .sort();
  return [privateKey, String(listenPort), ...rows].join("\n");
}

/** True when the live interface already has exactly the desired keys, port, peers and AllowedIPs. */
export function wireguardMatches(state: HubState, live: WgDump): boolean {
  const desired = fingerprint(
    state.hub.privateKey,
    state.hub.listenPort,
    state.peers.map((p) => ({
      publicKey: p.publicKey,
      presharedKey: p.presharedKey,
      allowedIps: peerAllowedIps(p, state.hub),
    })),
  );
  return desired === fingerprint(live.privateKey, live.listenPort, live.peers);
}

export interface PeerDiff {
  /** Public keys to remove: gone from the state, or changed (removed, then added again). */
  readonly remove: string[];
  /** Peers to add: new, or changed. */
  readonly add: PeerState[];
}

/**
 * The peer changes that take the live interface to the state, or undefined when the interface itself (key or
 * port) differs and a full `wg syncconf` is needed.
 */
export function diffPeers(state: HubState, live: WgDump): PeerDiff | undefined {
  if (live.privateKey !== state.hub.privateKey || live.listenPort !== state.hub.listenPort) return undefined;
  const norm = (ips: readonly string[]) => ips.map(canonicalCidr).sort().join(",");
  const liveByKey = new Map(live.peers.map((p) => [p.publicKey, p]));
  const wanted = new Set(state.peers.map((p) => p.publicKey));
  const remove = live.peers.filter((p) => !wanted.has(p.publicKey)).map((p) => p.publicKey);
  const add: PeerState[] = [];
  for (const peer of state.peers) {
    const current = liveByKey.get(peer.publicKey);
    if (current === undefined) {
      add.push(peer);
    } else if (
      current.presharedKey !== peer.presharedKey ||
      norm(current.allowedIps) !== norm(peerAllowedIps(peer, state.hub))
    ) {
      remove.push(peer.publicKey);
      add.push(peer);
    }
  }
  return { remove, add };
}
