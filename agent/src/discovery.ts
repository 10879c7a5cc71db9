/**
 * `cloudpal-agent discovery`: the hub's endpoint discovery for direct connections (README "Direct connections").
 *
 * - An HTTP service bound to the hub's tunnel IPv4 only (DISCOVERY_PORT), so only devices inside the tunnel reach
 *   it. The caller is the device whose tunnel address the request comes from: WireGuard accepts that source only
 *   from that device's key (its AllowedIPs) and the firewall drops any other source on wg0, so the address is
 *   the identity. A device learns, for each device it may go direct with (model/direct.ts: both groups reach
 *   each other), its public key and, when it runs the helper, its public endpoint as the hub's WireGuard sees it
 *   (`wg show <if> endpoints`), its LAN addresses and its NAT mapping. A guest never learns a family device's
 *   endpoint: the family device is not in its answer at all.
 * - A long poll: the helper sends the generation it holds and the answer waits until it changes (a peer revoked
 *   by an apply, a new public address, a helper appearing) or LONG_POLL_MS pass. The state file and the
 *   endpoints are read every TICK_MS while someone waits, so a revocation reaches every online helper within
 *   about one tick of the apply that saved it.
 * - A UDP reflector behind two of the hub's public WireGuard ports (model/direct.ts PROBE_PORT_BASE: nftables
 *   redirects probes there): it answers a probe with the address and port it came from, so a helper sees its
 *   NAT from two vantage points.
 * - What the helpers report (their path per pair, and why) is written to a status file that
 *   `cloudpal-agent status` prints.
 */
import { createHash } from "crypto";
import * as dgram from "dgram";
import * as http from "http";
import * as path from "path";
import { readIfExists, writeFileAtomic } from "../../lib/atomic-file";
import type { Runner } from "../../lib/runner";
import { hubAddresses } from "../../model/addressing";
import {
  DISCOVERY_PORT,
  directPeersOf,
  type DirectCandidate,
  type DiscoveryAnswer,
  HELPER_FRESH_MS,
  type HelperReport,
  LONG_POLL_MS,
  type NatMapping,
  type PairReport,
  parseProbe,
  PROBE_PORT_BASE,
  probePacket,
  probeVantagePorts,
} from "../../model/direct";
import type { HubState, PeerState } from "../../model/state";
import { parseHubState } from "../../model/state-schema";
import type { AgentOptions } from "./options";

const TICK_MS = 500;
const MAX_BODY = 64 * 1024;

export function directStatusFile(options: AgentOptions): string {
  return path.join(options.paths.stateDir, "direct-status.json");
}

interface Seen {
  readonly at: number;
  readonly report: HelperReport;
}

/** What the status file holds: each helper's last report, by device name. */
export interface DirectStatus {
  readonly written: number;
  readonly helpers: Record<string, { readonly at: number; readonly endpoint?: string } & HelperReport>;
}

const NAT: readonly NatMapping[] = ["endpoint-independent", "per-destination", "unknown"];
const SAFE_TEXT = /^[\x20-\x7e]{0,160}$/;
const LAN = /^(\d{1,3}\.){3}\d{1,3}\/\d{1,2}$/;

/** The report as sent, or why not; only printable, bounded text reaches the status file. */
export function parseReport(text: string): HelperReport | string {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return "not JSON";
  }
  if (typeof raw !== "object" || raw === null) return "not an object";
  const r = raw as Record<string, unknown>;
  const port = r.listenPort;
  if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) return "listenPort";
  if (!Array.isArray(r.lan) || r.lan.length > 16 || !r.lan.every((a) => typeof a === "string" && LAN.test(a)))
    return "lan";
  if (typeof r.nat !== "string" || !NAT.includes(r.nat as NatMapping)) return "nat";
  if (typeof r.pairs !== "object" || r.pairs === null || Object.keys(r.pairs).length > 512) return "pairs";
  const pairs: Record<string, PairReport> = {};
  for (const [name, p] of Object.entries(r.pairs as Record<string, unknown>)) {
    const q = p as Record<string, unknown>;
    if (
      !/^[a-z0-9-]{1,32}$/.test(name) ||
      typeof q !== "object" ||
      q === null ||
      (q.path !== "direct" && q.path !== "relayed") ||
      typeof q.reason !== "string" ||
      !SAFE_TEXT.test(q.reason) ||
      typeof q.since !== "number" ||
      (q.endpoint !== undefined && (typeof q.endpoint !== "string" || !SAFE_TEXT.test(q.endpoint)))
    )
      return `pairs.${name.slice(0, 32)}`;
    pairs[name] = {
      path: q.path,
      reason: q.reason,
      since: q.since,
      ...(q.endpoint ? { endpoint: q.endpoint as string } : {}),
    };
  }
  if (r.have !== undefined && (typeof r.have !== "string" || !/^[0-9a-f]{1,64}$/.test(r.have))) return "have";
  return {
    listenPort: port,
    lan: r.lan as string[],
    nat: r.nat as NatMapping,
    pairs,
    ...(r.have !== undefined ? { have: r.have as string } : {}),
    wait: r.wait === true,
  };
}

/** `wg show <if> endpoints`: public key → "ip:port" (peers without one are left out). */
export function parseEndpoints(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split("\n")) {
    const [key, endpoint] = line.trim().split(/\s+/);
    if (key && endpoint && endpoint !== "(none)") out.set(key, endpoint);
  }
  return out;
}

/** The answer for one device, from the state, the live endpoints and the helpers heard from. */
export function answerFor(
  state: HubState,
  device: PeerState,
  endpoints: ReadonlyMap<string, string>,
  seen: ReadonlyMap<string, Seen>,
  now: number,
): DiscoveryAnswer {
  const fresh = (p: PeerState) => {
    const s = seen.get(p.publicKey);
    return s !== undefined && now - s.at < HELPER_FRESH_MS ? s : undefined;
  };
  const peers: DirectCandidate[] = directPeersOf(state, device).map((p) => {
    const s = fresh(p);
    const base = { name: p.name, publicKey: p.publicKey, ipv4: p.ipv4, ipv6: p.ipv6 };
    if (s === undefined) return { ...base, helper: false };
    const endpoint = endpoints.get(p.publicKey);
    return {
      ...base,
      helper: true,
      ...(endpoint ? { endpoint } : {}),
      lan: s.report.lan,
      listenPort: s.report.listenPort,
      nat: s.report.nat,
    };
  });
  const self = {
    name: device.name,
    ...(endpoints.has(device.publicKey) ? { endpoint: endpoints.get(device.publicKey) } : {}),
  };
  const probePorts = probeVantagePorts(state.hub.listenPort, state.hub.wireguardExtraPorts ?? []);
  const body = { probePorts, self, peers };
  const generation = createHash("sha256").update(JSON.stringify(body)).digest("hex").slice(0, 32);
  return { generation, ...body };
}

interface Waiter {
  readonly device: string;
  readonly have: string;
  readonly until: number;
  readonly reply: (answer: DiscoveryAnswer) => void;
}

export interface DiscoveryServer {
  readonly close: () => Promise<void>;
}

/**
 * Runs until closed. Binding waits for the tunnel address (the interface may come up after this starts at boot).
 */
export async function serveDiscovery(
  options: AgentOptions,
  runner: Runner,
  log: (line: string) => void,
): Promise<DiscoveryServer> {
  const seen = new Map<string, Seen>();
  let waiters: Waiter[] = [];
  let state: HubState | undefined;
  let stateText: string | undefined;
  let endpoints = new Map<string, string>();

  const loadState = (): HubState | undefined => {
    const text = readIfExists(options.paths.stateFile);
    if (text !== stateText) {
      stateText = text;
      try {
        state = text === undefined ? undefined : parseHubState(text);
      } catch (e) {
        log(`[!] discovery: the saved state is invalid, answering nothing: ${(e as Error).message}`);
        state = undefined;
      }
      // Helpers of devices no longer in the state are forgotten at once.
      const keys = new Set(state?.peers.map((p) => p.publicKey) ?? []);
      for (const k of [...seen.keys()]) if (!keys.has(k)) seen.delete(k);
      writeStatus();
    }
    return state;
  };
  const refreshEndpoints = async () => {
    const r = await runner.run("wg", ["show", options.interface, "endpoints"], { allowFailure: true });
    if (r.code === 0) endpoints = parseEndpoints(r.stdout);
  };
  const writeStatus = () => {
    const byKey = new Map(state?.peers.map((p) => [p.publicKey, p]) ?? []);
    const helpers: DirectStatus["helpers"] = {};
    for (const [key, s] of seen) {
      const p = byKey.get(key);
      if (p === undefined) continue;
      const endpoint = endpoints.get(key);
      helpers[p.name] = {
        at: s.at,
        ...(endpoint ? { endpoint } : {}),
        ...s.report,
        have: undefined,
        wait: undefined,
      };
    }
    const status: DirectStatus = { written: Date.now(), helpers };
    writeFileAtomic(directStatusFile(options), JSON.stringify(status) + "\n", 0o600, 0o700);
  };

  const tick = async () => {
    if (waiters.length === 0) {
      loadState();
      return;
    }
    await refreshEndpoints();
    const s = loadState();
    const now = Date.now();
    const keep: Waiter[] = [];
    for (const w of waiters) {
      const device = s?.peers.find((p) => p.publicKey === w.device);
      if (device === undefined || s === undefined) {
        w.reply({ generation: "0", probePorts: [], self: { name: "" }, peers: [] });
        continue;
      }
      const answer = answerFor(s, device, endpoints, seen, now);
      if (answer.generation !== w.have || now >= w.until) w.reply(answer);
      else keep.push(w);
    }
    waiters = keep;
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const send = (code: number, body: unknown) => {
      if (res.writableEnded) return;
      res.writeHead(code, { "content-type": "application/json" });
      res.end(JSON.stringify(body) + "\n");
    };
    if (req.method !== "POST" || req.url !== "/v1/exchange") return send(404, { error: "POST /v1/exchange" });
    const s = loadState();
    const source = (req.socket.remoteAddress ?? "").replace(/^::ffff:/, "");
    const device = s?.peers.find((p) => p.ipv4 === source);
    if (s === undefined || device === undefined) return send(403, { error: "not a device of this hub" });
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of req) {
      size += (c as Buffer).length;
      if (size > MAX_BODY) return send(413, { error: "report too large" });
      chunks.push(c as Buffer);
    }
    const report = parseReport(Buffer.concat(chunks).toString("utf8"));
    if (typeof report === "string") return send(400, { error: `bad report: ${report}` });
    const before = seen.get(device.publicKey);
    seen.set(device.publicKey, { at: Date.now(), report });
    if (before === undefined) await refreshEndpoints();
    writeStatus();
    const answer = answerFor(s, device, endpoints, seen, Date.now());
    if (report.wait && report.have === answer.generation) {
      waiters.push({
        device: device.publicKey,
        have: report.have,
        until: Date.now() + LONG_POLL_MS,
        reply: (a) => send(200, a),
      });
      req.socket.once(
        "close",
        () => (waiters = waiters.filter((w) => w.device !== device.publicKey || w.have !== report.have)),
      );
      return;
    }
    send(200, answer);
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      log(`[!] discovery: ${(e as Error).message}`);
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
  server.keepAliveTimeout = LONG_POLL_MS + 10_000;
  server.requestTimeout = LONG_POLL_MS + 10_000;

  // One socket per vantage point: the local ports the firewall redirects probes on the public ports to.
  const reflectors = [PROBE_PORT_BASE, PROBE_PORT_BASE + 1].map((port) => {
    const socket = dgram.createSocket("udp4");
    socket.on("message", (msg, rinfo) => {
      const probe = parseProbe(msg);
      if (probe === undefined || probe.observed !== undefined) return;
      socket.send(probePacket(probe.nonce, `${rinfo.address}:${rinfo.port}`), rinfo.port, rinfo.address);
    });
    socket.on("error", (e) => log(`[!] discovery reflector: ${e.message}`));
    return { socket, port };
  });
  for (const r of reflectors) await new Promise<void>((resolve) => r.socket.bind(r.port, resolve));

  // Bind to the tunnel address once it exists.
  for (;;) {
    const s = loadState();
    const address = s ? hubAddresses(s.hub).ipv4 : undefined;
    if (address !== undefined) {
      const ok = await new Promise<boolean>((resolve) => {
        const onError = (e: Error) => {
          log(`discovery: waiting for ${address}:${DISCOVERY_PORT} (${e.message})`);
          resolve(false);
        };
        server.once("error", onError);
        server.listen(DISCOVERY_PORT, address, () => {
          server.off("error", onError);
          resolve(true);
        });
      });
      if (ok) {
        log(
          `discovery: listening on ${address}:${DISCOVERY_PORT}, NAT reflector on UDP ${PROBE_PORT_BASE} and ${PROBE_PORT_BASE + 1}`,
        );
        break;
      }
    }
    await new Promise((r) => setTimeout(r, 2000));
  }
  let ticking = false;
  const timer = setInterval(() => {
    if (ticking) return;
    ticking = true;
    tick()
      .catch((e: unknown) => log(`[!] discovery: ${(e as Error).message}`))
      .finally(() => (ticking = false));
  }, TICK_MS);
  return {
    close: async () => {
      clearInterval(timer);
      for (const w of waiters) w.reply({ generation: "0", probePorts: [], self: { name: "" }, peers: [] });
      for (const r of reflectors) r.socket.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** The status file, or undefined when the discovery service has not written one. */
export function readDirectStatus(options: AgentOptions): DirectStatus | undefined {
  const text = readIfExists(directStatusFile(options));
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as DirectStatus;
  } catch {
    return undefined;
  }
}

/**
 * One line per pair that may go direct (mutual reach): direct when both helpers say so, otherwise relayed and
 * why, from what each side reported.
 */
export function formatDirectPaths(state: HubState, status: DirectStatus | undefined, now: number): string[] {
  const lines: string[] = [];
  const helpers = status?.helpers ?? {};
  const fresh = (name: string) => {
    const h = helpers[name];
    return h !== undefined && now - h.at < HELPER_FRESH_MS ? h : undefined;
  };
  const names = [...state.peers].sort((a, b) => a.name.localeCompare(b.name));
  for (const a of names) {
    for (const b of directPeersOf(state, a)) {
      if (b.name <= a.name) continue;
      const ha = fresh(a.name);
      const hb = fresh(b.name);
      let text: string;
      if (ha === undefined || hb === undefined) {
        const missing = [ha ? undefined : a.name, hb ? undefined : b.name].filter(Boolean).join(" and ");
        text = `relayed: no helper on ${missing}`;
      } else {
        const ab = ha.pairs[b.name];
        const ba = hb.pairs[a.name];
        if (ab?.path === "direct" && ba?.path === "direct")
          text = `direct (${a.name} → ${ab.endpoint ?? "?"}, ${b.name} → ${ba.endpoint ?? "?"})`;
        else {
          const why = [ab ? `${a.name}: ${ab.reason}` : undefined, ba ? `${b.name}: ${ba.reason}` : undefined]
            .filter(Boolean)
            .join("; ");
          text = `relayed: ${why || "never tried"}`;
        }
      }
      lines.push(`  ${a.name} ↔ ${b.name}: ${text}`);
    }
  }
  return lines;
}
