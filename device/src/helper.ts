#!/usr/bin/env node
/**
 * The device helper (`cloudpal-helper`): runs on a Linux or macOS device next to its WireGuard interface (brought
 * up by wg-quick from the stack's config) and manages the device's direct peers. README "Direct connections".
 *
 *   cloudpal-helper run --interface IF --hub-key KEY [--hub 10.77.0.1] [--status FILE]
 *   cloudpal-helper status [--status FILE]
 *
 * - It asks the hub's discovery service (through the tunnel, long poll) which devices it may go direct with,
 *   and tells it its LAN addresses, its WireGuard port, its NAT mapping and each pair's path.
 * - NAT: one UDP socket sends a probe to two of the hub's WireGuard ports (model/direct.ts); two different public
 *   ports mean a new mapping per destination ("symmetric" NAT), and such a device stays relayed.
 * - A pair where both run the helper: the other device is added as a WireGuard peer with its endpoint (its LAN
 *   address when both sit behind the same public address and share a LAN, else its public endpoint) and a
 *   1-second persistent keepalive, so both sides send at once (the punch) and WireGuard keeps retrying on its
 *   own. No AllowedIPs yet: traffic still goes through the hub.
 * - Direct: a handshake newer than the attempt and keepalives arriving from that peer (its received bytes grow)
 *   add the other device's /32 and /128 to the direct peer. They are more specific than the hub's AllowedIPs, so
 *   WireGuard's longest-prefix match sends the pair's traffic direct.
 * - Fallback: received bytes that stop growing for DEAD_MS remove the /32 and /128 again (the hub's route takes
 *   over at once). The peer stays, so WireGuard keeps trying; fresh bytes make it direct again, and the endpoint
 *   is set again from the hub's latest answer with a doubling backoff.
 * - A device gone from the hub's answer (revoked, or its group no longer reaches ours) is removed at once.
 */
import * as dgram from "dgram";
import { readFileSync } from "fs";
import * as http from "http";
import { networkInterfaces } from "os";
import { parseArgs } from "util";
import { readIfExists, writeFileAtomic } from "../../lib/atomic-file";
import { realRunner } from "../../lib/runner";
import {
  DISCOVERY_PORT,
  type DirectCandidate,
  type DiscoveryAnswer,
  type HelperReport,
  LONG_POLL_MS,
  type NatMapping,
  type PairReport,
  parseProbe,
  probePacket,
} from "../../model/direct";

const TICK_MS = 500;
/** No packet from a direct peer for this long: the direct path is dead. Keepalives come every second. */
const DEAD_MS = 3000;
/** An attempt without a handshake for this long is reported failed (WireGuard keeps trying). */
const ATTEMPT_MS = 10_000;
const BACKOFF_MIN_MS = 5000;
const BACKOFF_MAX_MS = 120_000;
const NAT_RECHECK_MS = 5 * 60_000;
const DEFAULT_STATUS = "/run/cloudpal-helper/status.json";

type Phase = "trying" | "direct" | "failed";

interface Pair {
  cand: DirectCandidate;
  phase: Phase;
  endpoint: string;
  triedAt: number;
  lastRx: number;
  lastRxChange: number;
  backoffMs: number;
  nextTryAt: number;
}

interface LivePeer {
  readonly endpoint?: string;
  readonly latestHandshake: number;
  readonly rx: number;
}

const runner = realRunner(() => undefined);
const log = (line: string) => process.stderr.write(`${new Date().toISOString()} ${line}\n`);
const clock = (ms: number) => new Date(ms).toISOString().slice(11, 19);

async function wg(args: string[]): Promise<string> {
  return (await runner.run("wg", args)).stdout;
}

function parseDump(text: string): { listenPort: number; peers: Map<string, LivePeer> } {
  const lines = text.trim().split("\n");
  const listenPort = Number(lines[0]?.split("\t")[2] ?? 0);
  const peers = new Map<string, LivePeer>();
  for (const line of lines.slice(1)) {
    const f = line.split("\t");
    if (f.length < 8) continue;
    peers.set(f[0]!, {
      ...(f[2] && f[2] !== "(none)" ? { endpoint: f[2] } : {}),
      latestHandshake: Number(f[4]),
      rx: Number(f[5]),
    });
  }
  return { listenPort, peers };
}

/** The device's IPv4 addresses with prefix, without loopback and without the tunnel interface's. */
function lanAddresses(tunnelIf: string): string[] {
  const out: string[] = [];
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    if (name === tunnelIf) continue;
    for (const a of addrs ?? [])
      if (a.family === "IPv4" && !a.internal && a.cidr && out.length < 16) out.push(a.cidr);
  }
  return out;
}

function toInt(ip: string): number {
  return ip.split(".").reduce((n, o) => n * 256 + Number(o), 0);
}
function sameSubnet(cidr: string, ip: string): boolean {
  const [net, bits] = cidr.split("/");
  const size = 2 ** (32 - Number(bits));
  return Math.floor(toInt(net!) / size) === Math.floor(toInt(ip) / size);
}
const hostOf = (endpoint: string) => endpoint.slice(0, endpoint.lastIndexOf(":"));

/** Where to reach a peer: its LAN address when both are behind one public address and share a LAN. */
export function chooseEndpoint(
  cand: DirectCandidate,
  selfPublic: string | undefined,
  lan: readonly string[],
): string | undefined {
  if (selfPublic && cand.endpoint && hostOf(selfPublic) === hostOf(cand.endpoint) && cand.listenPort) {
    for (const theirs of cand.lan ?? []) {
      const ip = theirs.split("/")[0]!;
      if (lan.some((mine) => sameSubnet(mine, ip))) return `${ip}:${cand.listenPort}`;
    }
  }
  return cand.endpoint;
}

/** One UDP socket, two of the hub's WireGuard ports: the same public port twice, or not. */
async function detectNat(hubEndpoint: string | undefined, ports: readonly number[]): Promise<NatMapping> {
  if (hubEndpoint === undefined || ports.length < 2) return "unknown";
  const host = hostOf(hubEndpoint);
  const socket = dgram.createSocket("udp4");
  await new Promise<void>((r) => socket.bind(0, r));
  const seen = new Map<number, string>();
  socket.on("message", (msg) => {
    const p = parseProbe(msg);
    if (p?.observed) seen.set(p.nonce.readUInt32BE(0), p.observed);
  });
  try {
    for (let round = 0; round < 3 && seen.size < 2; round++) {
      ports.slice(0, 2).forEach((port, i) => {
        const nonce = Buffer.alloc(8);
        nonce.writeUInt32BE(i, 0);
        socket.send(probePacket(nonce), port, host);
      });
      await new Promise((r) => setTimeout(r, 700));
    }
  } finally {
    socket.close();
  }
  const a = seen.get(0);
  const b = seen.get(1);
  log(`NAT probe: ${a ?? "no answer"} seen at port ${ports[0]}, ${b ?? "no answer"} at port ${ports[1]}`);
  if (a === undefined || b === undefined) return "unknown";
  return a === b ? "endpoint-independent" : "per-destination";
}

function post(hub: string, report: HelperReport, timeoutMs: number): Promise<DiscoveryAnswer> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify(report);
    const req = http.request(
      {
        host: hub,
        port: DISCOVERY_PORT,
        path: "/v1/exchange",
        method: "POST",
        timeout: timeoutMs,
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          if (res.statusCode !== 200)
            return reject(new Error(`hub answered ${res.statusCode}: ${text.trim()}`));
          try {
            resolve(JSON.parse(text) as DiscoveryAnswer);
          } catch (e) {
            reject(e as Error);
          }
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error("hub did not answer")));
    req.on("error", reject);
    req.end(body);
  });
}

interface HelperOptions {
  readonly ifname: string;
  readonly hub: string;
  readonly hubKey: string;
  readonly statusFile: string;
}

export async function runHelper(given: HelperOptions): Promise<void> {
  // macOS: wg-quick names the tunnel "cloudpal" but the interface is a utunN, written in this file.
  const o = {
    ...given,
    ifname: readIfExists(`/var/run/wireguard/${given.ifname}.name`)?.trim() || given.ifname,
  };
  const pairs = new Map<string, Pair>();
  const reports = new Map<string, PairReport>();
  let answer: DiscoveryAnswer | undefined;
  let nat: NatMapping = "unknown";
  let natAt = 0;
  let natFor: string | undefined;
  let listenPort = 0;
  let lan: string[] = [];
  let reportDirty = false;
  let natSelf: string | undefined;

  const setReport = (name: string, r: Omit<PairReport, "since">) => {
    const old = reports.get(name);
    if (old && old.path === r.path && old.reason === r.reason && old.endpoint === r.endpoint) return;
    reports.set(name, { ...r, since: Date.now() });
    reportDirty = true;
    log(`${name}: ${r.path}, ${r.reason}`);
  };
  const myReport = (wait: boolean): HelperReport => ({
    listenPort,
    lan,
    nat,
    pairs: Object.fromEntries(reports),
    ...(answer ? { have: answer.generation } : {}),
    wait,
  });
  const writeStatus = () =>
    writeFileAtomic(
      o.statusFile,
      JSON.stringify({
        written: Date.now(),
        interface: o.ifname,
        nat,
        self: answer?.self,
        pairs: Object.fromEntries(reports),
      }) + "\n",
      0o644,
      0o755,
    );
  const removePeer = async (key: string) => {
    await wg(["set", o.ifname, "peer", key, "remove"]);
  };
  const startAttempt = async (p: Pair, endpoint: string) => {
    p.endpoint = endpoint;
    p.triedAt = Date.now();
    p.phase = p.phase === "direct" ? "direct" : "trying";
    await wg(["set", o.ifname, "peer", p.cand.publicKey, "endpoint", endpoint, "persistent-keepalive", "1"]);
  };

  const applyAnswer = async (a: DiscoveryAnswer) => {
    answer = a;
    const wanted = new Set<string>();
    for (const cand of a.peers) {
      let why: string | undefined;
      if (!cand.helper) why = `no helper on ${cand.name}`;
      else if (cand.nat === "per-destination")
        why = `symmetric NAT at ${cand.name} (a new public port per destination)`;
      else if (nat === "per-destination")
        why = `symmetric NAT at ${a.self.name} (a new public port per destination)`;
      const endpoint = why ? undefined : chooseEndpoint(cand, a.self.endpoint, lan);
      if (!why && endpoint === undefined) why = `no endpoint known for ${cand.name}`;
      if (why || endpoint === undefined) {
        if (pairs.has(cand.name)) {
          await removePeer(pairs.get(cand.name)!.cand.publicKey);
          pairs.delete(cand.name);
        }
        setReport(cand.name, { path: "relayed", reason: why ?? "never tried" });
        continue;
      }
      wanted.add(cand.publicKey);
      const p = pairs.get(cand.name);
      if (p === undefined || p.cand.publicKey !== cand.publicKey) {
        if (p) await removePeer(p.cand.publicKey);
        const q: Pair = {
          cand,
          phase: "trying",
          endpoint,
          triedAt: 0,
          lastRx: 0,
          lastRxChange: 0,
          backoffMs: BACKOFF_MIN_MS,
          nextTryAt: 0,
        };
        pairs.set(cand.name, q);
        await startAttempt(q, endpoint);
        setReport(cand.name, { path: "relayed", reason: `trying direct to ${endpoint}`, endpoint });
      } else {
        p.cand = cand;
        // A new endpoint (new public address, sleep, network change): punch again at once unless direct.
        if (endpoint !== p.endpoint && p.phase !== "direct") await startAttempt(p, endpoint);
      }
    }
    // Revoked, or no longer reachable: gone at once, whatever its phase.
    const names = new Set(a.peers.map((c) => c.name));
    for (const [name, p] of [...pairs]) {
      if (!wanted.has(p.cand.publicKey)) {
        if (names.has(name)) continue;
        await removePeer(p.cand.publicKey);
        pairs.delete(name);
      }
    }
    for (const name of [...reports.keys()]) {
      if (names.has(name)) continue;
      reports.delete(name);
      reportDirty = true;
    }
    // Direct peers this helper did not make from the current answer (a previous run, a revoked device).
    const live = parseDump(await wg(["show", o.ifname, "dump"]));
    for (const key of live.peers.keys())
      if (key !== o.hubKey && ![...pairs.values()].some((p) => p.cand.publicKey === key))
        await removePeer(key);
    writeStatus();
  };

  const tick = async () => {
    const now = Date.now();
    const live = parseDump(await wg(["show", o.ifname, "dump"]));
    listenPort = live.listenPort;
    lan = lanAddresses(o.ifname);
    const hubEndpoint = live.peers.get(o.hubKey)?.endpoint;
    if (now - natAt > NAT_RECHECK_MS || hubEndpoint !== natFor || answer?.self.endpoint !== natSelf) {
      natAt = now;
      natFor = hubEndpoint;
      natSelf = answer?.self.endpoint;
      const before = nat;
      nat = await detectNat(hubEndpoint, answer?.probePorts ?? []);
      if (nat !== before) {
        log(`NAT mapping: ${nat}`);
        reportDirty = true;
        if (answer) await applyAnswer(answer);
      }
    }
    for (const [name, p] of pairs) {
      const l = live.peers.get(p.cand.publicKey);
      if (l === undefined) continue;
      if (l.rx !== p.lastRx) {
        p.lastRx = l.rx;
        p.lastRxChange = now;
      }
      // A session (handshake within WireGuard's 180-second key lifetime) and packets from the peer just now.
      const session = l.latestHandshake > 0 && now - l.latestHandshake * 1000 < 180_000;
      if (p.phase !== "direct" && session && now - p.lastRxChange < 1500) {
        await wg([
          "set",
          o.ifname,
          "peer",
          p.cand.publicKey,
          "allowed-ips",
          `${p.cand.ipv4}/32,${p.cand.ipv6}/128`,
        ]);
        p.phase = "direct";
        p.backoffMs = BACKOFF_MIN_MS;
        setReport(name, {
          path: "direct",
          reason: "handshake and keepalives passed",
          endpoint: l.endpoint ?? p.endpoint,
        });
      } else if (p.phase === "direct" && now - p.lastRxChange >= DEAD_MS) {
        await wg(["set", o.ifname, "peer", p.cand.publicKey, "allowed-ips", ""]);
        p.phase = "failed";
        p.nextTryAt = now + p.backoffMs;
        setReport(name, {
          path: "relayed",
          reason: `direct path failed at ${clock(now)}, retrying`,
          endpoint: p.endpoint,
        });
      } else if (p.phase === "trying" && now - p.triedAt > ATTEMPT_MS) {
        p.phase = "failed";
        p.nextTryAt = now + p.backoffMs;
        setReport(name, {
          path: "relayed",
          reason: `no direct handshake with ${p.endpoint} (tried at ${clock(p.triedAt)}), retrying`,
          endpoint: p.endpoint,
        });
      } else if (p.phase === "failed" && now >= p.nextTryAt) {
        p.backoffMs = Math.min(p.backoffMs * 2, BACKOFF_MAX_MS);
        p.nextTryAt = now + p.backoffMs;
        const endpoint = chooseEndpoint(p.cand, answer?.self.endpoint, lan) ?? p.endpoint;
        await startAttempt(p, endpoint);
        p.phase = "failed";
      }
    }
    if (reportDirty) writeStatus();
  };

  // The long poll, and a short report whenever a pair's path changes.
  const exchange = async () => {
    let failures = 0;
    for (;;) {
      try {
        reportDirty = false;
        const a = await post(o.hub, myReport(true), LONG_POLL_MS + 15_000);
        failures = 0;
        if (a.generation !== answer?.generation) await applyAnswer(a);
      } catch (e) {
        failures++;
        if (failures === 1 || failures % 20 === 0) log(`[!] discovery: ${(e as Error).message}`);
        await new Promise((r) => setTimeout(r, Math.min(1000 * failures, 5000)));
      }
    }
  };
  const pushReports = async () => {
    if (!reportDirty || answer === undefined) return;
    reportDirty = false;
    try {
      const a = await post(o.hub, myReport(false), 5000);
      if (a.generation !== answer?.generation) await applyAnswer(a);
    } catch {
      reportDirty = true;
    }
  };

  log(`cloudpal-helper on ${o.ifname}, hub ${o.hub}:${DISCOVERY_PORT}`);
  await tick();
  void exchange();
  let busy = false;
  setInterval(() => {
    if (busy) return;
    busy = true;
    tick()
      .then(pushReports)
      .catch((e: unknown) => log(`[!] ${(e as Error).message}`))
      .finally(() => (busy = false));
  }, TICK_MS);
}

function printStatus(file: string): number {
  let s: {
    written: number;
    interface: string;
    nat: string;
    self?: { name: string; endpoint?: string };
    pairs: Record<string, PairReport>;
  };
  try {
    s = JSON.parse(readFileSync(file, "utf8")) as typeof s;
  } catch {
    process.stderr.write(`no helper status at '${file}': is cloudpal-helper running?\n`);
    return 1;
  }
  const out = [
    `device ${s.self?.name ?? "?"} on ${s.interface}, public endpoint ${s.self?.endpoint ?? "unknown"}, NAT mapping ${s.nat}`,
    `status written ${clock(s.written)} UTC`,
  ];
  for (const [name, p] of Object.entries(s.pairs).sort())
    out.push(`  ${name}: ${p.path}, ${p.reason} (since ${clock(p.since)})`);
  if (Object.keys(s.pairs).length === 0) out.push("  (no device to go direct with)");
  process.stdout.write(out.join("\n") + "\n");
  return 0;
}

if (require.main === module) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      interface: { type: "string" },
      hub: { type: "string" },
      "hub-key": { type: "string" },
      status: { type: "string" },
    },
  });
  const statusFile = values.status ?? DEFAULT_STATUS;
  if (positionals[0] === "status") process.exitCode = printStatus(statusFile);
  else if (positionals[0] === "run" && values.interface && values["hub-key"])
    runHelper({
      ifname: values.interface,
      hub: values.hub ?? "10.77.0.1",
      hubKey: values["hub-key"],
      statusFile,
    }).catch((e: unknown) => {
      log((e as Error).message);
      process.exit(1);
    });
  else {
    process.stderr.write(
      "usage: cloudpal-helper run --interface IF --hub-key KEY [--hub ADDR] [--status FILE] | status [--status FILE]\n",
    );
    process.exitCode = 2;
  }
}
