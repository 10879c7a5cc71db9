/**
 * The hub's public IPv6 (model/public-ipv6.ts) made live, and the per-session addresses of "session" devices.
 *
 * - Addresses: `hub.publicIpv6.addresses` (DigitalOcean's reserved IPv6) are added as /128s to the interface
 *   that holds the IPv6 default route. Run by every apply and by the boot unit (`reconcile`), so the address is
 *   back after a reboot without a distribution-specific network file.
 * - On-link prefix (Vultr): the hub answers neighbour solicitations on that interface for every address of
 *   the tunnel it uses (its own, the devices', the session and per-site addresses): `proxy_ndp` and one
 *   `ip -6 neigh add proxy` per address, through one `ip -batch`.
 * - Sessions: `cloudpal-agent sessions watch` polls `wg show dump` (latest handshake and endpoint per peer).
 *   A "session" device starts a new session when its endpoint changes, or when its latest handshake comes
 *   more than `sessionIdle` seconds after the one before (WireGuard re-handshakes every 2 minutes while a
 *   tunnel carries traffic, so a longer gap means the device was silent). A new session gets a random
 *   address of the prefix (model/public-ipv6.ts randomSessionAddress); the address is kept in
 *   `sessionsFile`, rendered into the `session6` map, and loaded with the same one-transaction reload an apply
 *   uses. Connections opened before keep their address (conntrack), and on-link hubs keep answering for the
 *   last few addresses of each device, so those connections are not left half-working.
 */
import { writeFileSync } from "fs";
import * as path from "path";
import * as ipaddr from "ipaddr.js";
import { readIfExists, writeFileAtomic } from "../../lib/atomic-file";
import type { Logger, Runner } from "../../lib/runner";
import {
  addressInPrefix,
  peerGlobalIpv6,
  perSiteAddresses,
  randomSessionAddress,
  tunnelGlobalPrefix,
} from "../../model/public-ipv6";
import type { HubState } from "../../model/state";
import type { AgentOptions, AgentPaths } from "./options";
import type { WgDump } from "./wireguard-config";

/** Seconds of silence that end a session when the state does not say. */
export const DEFAULT_SESSION_IDLE = 300;
/** Earlier addresses of a device the hub keeps answering for (on-link prefixes), for connections still open. */
const KEEP_PREVIOUS = 4;

export interface SessionRecord {
  readonly address: string;
  /** The latest handshake (unix seconds) seen in this session. */
  readonly handshake: number;
  readonly endpoint: string;
  readonly previous: readonly string[];
}

export type Sessions = Readonly<Record<string, SessionRecord>>;

export function readSessions(paths: Pick<AgentPaths, "sessionsFile">): Sessions {
  const text = readIfExists(paths.sessionsFile);
  if (text === undefined) return {};
  try {
    const parsed = JSON.parse(text) as unknown;
    return parsed !== null && typeof parsed === "object" ? (parsed as Sessions) : {};
  } catch {
    // A broken file starts every device on a new session: safe, since addresses are only ever fresh.
    return {};
  }
}

export function writeSessions(paths: Pick<AgentPaths, "sessionsFile">, sessions: Sessions): void {
  writeFileAtomic(paths.sessionsFile, JSON.stringify(sessions) + "\n", 0o600, 0o700);
}

/** peer name → current session address, for the nftables renderer. */
export function sessionAddresses(sessions: Sessions): Record<string, string> {
  return Object.fromEntries(Object.entries(sessions).map(([name, r]) => [name, r.address]));
}

/**
 * The sessions after one look at the live tunnel; `changed` names the devices that started a new session.
 * Pure: `fresh` makes a new address (random in production, fixed in tests).
 */
export function nextSessions(
  state: HubState,
  live: WgDump,
  previous: Sessions,
  fresh: (prefix: string) => string = randomSessionAddress,
): { sessions: Sessions; changed: string[] } {
  const prefix = tunnelGlobalPrefix(state.hub.publicIpv6);
  if (prefix === undefined) return { sessions: {}, changed: [] };
  const idle = state.hub.publicIpv6?.sessionIdle ?? DEFAULT_SESSION_IDLE;
  const net = ipaddr.IPv6.parseCIDR(prefix);
  const byKey = new Map(live.peers.map((p) => [p.publicKey, p]));
  const out: Record<string, SessionRecord> = {};
  const changed: string[] = [];
  for (const peer of state.peers) {
    if (peer.publicIpv6 !== "session") continue;
    const before = previous[peer.name];
    const now = byKey.get(peer.publicKey);
    const handshake = now?.latestHandshake ?? 0;
    const endpoint = now?.endpoint ?? "(none)";
    const inPrefix = before !== undefined && ipaddr.IPv6.parse(before.address).match(net);
    if (handshake === 0) {
      // No tunnel yet (or the hub restarted): keep what there was, if it still fits the prefix.
      if (before !== undefined && inPrefix) out[peer.name] = before;
      continue;
    }
    const newSession =
      before === undefined ||
      !inPrefix ||
      endpoint !== before.endpoint ||
      (handshake > before.handshake && handshake - before.handshake > idle);
    if (newSession) {
      const kept = before === undefined || !inPrefix ? [] : [before.address, ...before.previous];
      out[peer.name] = {
        address: fresh(prefix),
        handshake,
        endpoint,
        previous: kept.slice(0, KEEP_PREVIOUS),
      };
      changed.push(peer.name);
    } else {
      out[peer.name] = handshake > before.handshake ? { ...before, handshake } : before;
    }
  }
  return { sessions: out, changed };
}

/** Every tunnel address the hub must answer neighbour solicitations for on an on-link prefix. */
export function proxiedAddresses(state: HubState, sessions: Sessions): string[] {
  const pub = state.hub.publicIpv6;
  const prefix = tunnelGlobalPrefix(pub);
  if (prefix === undefined || !pub?.onLink) return [];
  const out = new Set<string>([addressInPrefix(prefix, 1n)]);
  for (const p of state.peers) {
    const global = peerGlobalIpv6(state.hub, p);
    if (global !== undefined) out.add(global);
    if (p.publicIpv6 === "per-site")
      for (const a of perSiteAddresses(state.hub.privateKey, p.name, prefix).addresses) out.add(a);
    const s = sessions[p.name];
    if (p.publicIpv6 === "session" && s !== undefined) for (const a of [s.address, ...s.previous]) out.add(a);
  }
  return [...out];
}

/** The interface that holds the IPv6 default route (the hub's internet side), if there is one. */
export async function ipv6Egress(runner: Runner): Promise<string | undefined> {
  const r = await runner.run("ip", ["-j", "-6", "route", "show", "default"], { allowFailure: true });
  if (r.code !== 0) return undefined;
  const routes = JSON.parse(r.stdout || "[]") as { dev?: string }[];
  return routes.find((x) => x.dev !== undefined)?.dev;
}

/**
 * The hub's public addresses and neighbour proxies, made to match the state. Returns whether anything changed.
 * Only adds addresses (a provider's own addresses on the interface are not ours to remove); proxies are
 * replaced wholesale inside the tunnel's prefix.
 */
export async function reconcilePublicIpv6(
  ctx: { readonly runner: Runner; readonly options: AgentOptions; readonly log: Logger },
  state: HubState,
  sessions: Sessions,
): Promise<boolean> {
  const pub = state.hub.publicIpv6;
  const addresses = pub?.addresses ?? [];
  const proxied = proxiedAddresses(state, sessions);
  if (addresses.length === 0 && proxied.length === 0) return false;
  const { runner } = ctx;
  const egress = await ipv6Egress(runner);
  if (egress === undefined) {
    ctx.log("[!] the hub has no IPv6 default route: its public IPv6 addresses are not configured yet");
    return false;
  }
  let changed = false;
  const shown = await runner.run("ip", ["-j", "-6", "addr", "show", "dev", egress]);
  const have = new Set(
    (JSON.parse(shown.stdout || "[]") as { addr_info?: { local: string }[] }[]).flatMap((l) =>
      (l.addr_info ?? []).map((a) => ipaddr.IPv6.parse(a.local).toString()),
    ),
  );
  for (const a of addresses) {
    if (have.has(a)) continue;
    // nodad: the provider routes this address to the hub alone, and a tentative address cannot be a source.
    await runner.run("ip", ["-6", "addr", "add", `${a}/128`, "dev", egress, "nodad"]);
    changed = true;
  }
  if (pub?.onLink) {
    const file = path.join(ctx.options.paths.sysctlDir, "net/ipv6/conf", egress, "proxy_ndp");
    if (readIfExists(file)?.trim() !== "1") {
      writeFileSync(file, "1");
      changed = true;
    }
    const prefix = ipaddr.IPv6.parseCIDR(tunnelGlobalPrefix(pub) ?? "::/128");
    const listed = await runner.run("ip", ["-6", "neigh", "show", "proxy", "dev", egress]);
    const live = new Set(
      listed.stdout
        .split("\n")
        .map((l) => l.trim().split(/\s+/)[0])
        .filter((a) => a !== undefined && ipaddr.IPv6.isValid(a))
        .map((a) => ipaddr.IPv6.parse(a))
        .filter((a) => a.match(prefix))
        .map((a) => a.toString()),
    );
    const want = new Set(proxied);
    const batch = [
      ...[...live].filter((a) => !want.has(a)).map((a) => `neigh del proxy ${a} dev ${egress}`),
      ...[...want].filter((a) => !live.has(a)).map((a) => `neigh add proxy ${a} dev ${egress}`),
    ];
    if (batch.length > 0) {
      await runner.run("ip", ["-batch", "-"], { input: batch.join("\n") + "\n" });
      changed = true;
    }
  }
  return changed;
}
