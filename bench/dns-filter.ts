/**
 * Benchmark: the DNS filter (agent/src/dns-filter*.ts) before unbound, against the old design (one unbound
 * local-zone per name) in the same run. Per list size: the RSS of every DNS process (unbound, the filter), the
 * refresh (wall time, the agent's peak RSS, the filter's and unbound's peak RSS while it runs), and latency
 * p50/p99 at a paced 5,000 q/s for a blocked name, an allowed cached name and allowed uncached names (each
 * query a new name: forwarded over DNS-over-TLS to the lab's authoritative server). Run as root, alone:
 *   flock -x /tmp/cloudpal-heavy.lock npx ts-node --transpile-only bench/dns-filter.ts [--no-baseline] [SIZES...]
 * (default: 100000 1000000 2000000; the local-zone baseline is measured up to 1,000,000 unless --no-baseline).
 * BENCH_PEERS sets the hub's device count (default 10). BENCH_REFRESH_NODE_OPTIONS replaces the refresh unit's NODE_OPTIONS (model/layout.ts) for an experiment.
 * Needs dnsperf (scripts/install-test-deps.sh installs it).
 */
import { createWriteStream, readdirSync, readFileSync, writeFileSync } from "fs";
import { cpus, loadavg } from "os";
import * as path from "path";
import { DNS_FILTER_NODE_FLAGS, REFRESH_NODE_OPTIONS } from "../model/layout";
import type { HubState } from "../model/state";
import { buildDnsFilter } from "../agent/src/blocklist";
import { readStoredList } from "../agent/src/blocklist-fetch";
import { pathsUnder } from "../agent/src/options";
import { renderBlocklistZones } from "../agent/src/unbound-config";
import { waitFor } from "../test/e2e/netns/lab";
import { hubRoot } from "../test/e2e/netns/hub";
import { syntheticPeers, syntheticState } from "./agent-fixtures";
import { HubLab, LAB_UPSTREAM, mib, rssKiB } from "./agent-hub-lab";

interface PacedResult {
  readonly sent: number;
  readonly answered: number;
  readonly rcodes: Record<string, number>;
  readonly p50us: number;
  readonly p99us: number;
  readonly p999us: number;
  readonly qps: number;
}

const RATE = 5000;
const SECONDS = 4;

/** Rounds per latency line: the machine is shared, so one 4 s round can land in another job's burst. */
const ROUNDS = 5;
/** Names per list file: a 1,000,000-name hosts file is ~39 MB, under the refresh's 64 MiB bound for one list. */
const PER_LIST = 1_000_000;

/** Names [from, to) as a hosts-format list. */
async function writeList(file: string, from: number, to: number): Promise<void> {
  const out = createWriteStream(file);
  for (let i = from; i < to; i++) {
    const line = `0.0.0.0 ad${i.toString(36)}.tracker${i % 997}.example${i % 13}.com\n`;
    if (!out.write(line)) await new Promise<void>((r) => out.once("drain", () => r()));
  }
  await new Promise<void>((resolve, reject) => out.end((e?: Error | null) => (e ? reject(e) : resolve())));
}

function blockedName(n: number): string {
  const i = n - 1;
  return `ad${i.toString(36)}.tracker${i % 997}.example${i % 13}.com`;
}

/** The Node baseline: a UDP server on 10.77.0.1:5301 that answers every query REFUSED, question copied. */
const NODE_ECHO = `const s = require("dgram").createSocket("udp4");
s.on("message", (m, r) => { const a = Buffer.from(m); a[2] |= 0x80; a[3] = 0x85; s.send(a, r.port, r.address); });
s.bind(5301, "10.77.0.1", () => console.log("ready"));`;

/**
 * A paced load from dnsperf (DNS-OARC's load generator, in C: a Node client on this 2-core machine added more
 * to the tail than the server it measured), RATE q/s for SECONDS, the names taken in turn from `names` (a '%' in
 * a name becomes a number unique to each query: always a cache miss). Latencies are dnsperf's own, per answer
 * (`-v`); a query dnsperf saw no answer to within its 5 s timeout counts as sent, not answered.
 */
async function oneRound(hub: HubLab, port: number, names: string[]): Promise<PacedResult> {
  const total = RATE * SECONDS;
  const file = path.join(hub.dir, "queries.txt");
  const lines: string[] = [];
  for (let i = 0; i < total; i++) lines.push(`${names[i % names.length].replace("%", String(i))} A`);
  writeFileSync(file, lines.join("\n") + "\n");
  const r = await hub.lab.exec(
    hub.hubNs,
    "dnsperf",
    ["-s", "10.77.0.1", "-p", String(port), "-d", file, "-n", "1", "-Q", String(RATE), "-v", "-t", "5"],
    { timeoutMs: 120_000 },
  );
  const latencies: number[] = [];
  const rcodes: Record<string, number> = {};
  for (const m of r.stdout.matchAll(/^> (\S+) \S+ \S+ ([\d.]+)$/gm)) {
    latencies.push(Number(m[2]) * 1e6);
    rcodes[m[1]] = (rcodes[m[1]] ?? 0) + 1;
  }
  const sent = Number(/Queries sent:\s+(\d+)/.exec(r.stdout)?.[1] ?? 0);
  const runTime = Number(/Run time \(s\):\s+([\d.]+)/.exec(r.stdout)?.[1] ?? 1);
  latencies.sort((x, y) => x - y);
  const at = (q: number) =>
    Math.round(latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * q))] ?? 0);
  return {
    sent,
    answered: latencies.length,
    rcodes,
    p50us: at(0.5),
    p99us: at(0.99),
    p999us: at(0.999),
    qps: Math.round(latencies.length / runTime),
  };
}

interface Memory {
  rss: number;
  pss: number;
  anon: number;
}

/** A process's memory in KiB from /proc/PID/smaps_rollup: resident, proportional (shared pages split), anonymous. */
function memoryOf(pid: number): Memory {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? 0);
  return { rss: field("Rss"), pss: field("Pss"), anon: field("Anonymous") };
}

/** The refreshing agent, found by its command line (it runs under /usr/bin/time, so its PID is not ours). */
function agentPid(bundle: string): number | undefined {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
      if (argv[0] === process.execPath && argv.includes(bundle) && argv.includes("refresh"))
        return Number(entry);
    } catch {
      // Gone meanwhile.
    }
  }
  return undefined;
}

interface Peaks {
  /** Each process's own peak: unbound, filter, agent. */
  readonly each: Memory[];
  /** The largest sum over the processes at one moment (sampled every 20 ms). */
  readonly together: Memory;
}

/**
 * Samples unbound, the filter and the refreshing agent every 20 ms while `work` runs: each one's peak, and the
 * peak of their sum at one moment. RSS counts the pages two Node processes share (the node binary's code, ~40
 * MiB, mapped by both) once in each; PSS splits them, so the sum of PSS is the memory the three take together.
 */
async function peakDuring<T>(
  pids: (() => number)[],
  bundle: string,
  work: Promise<T>,
): Promise<{ result: T; peaks: Peaks }> {
  const zero = (): Memory => ({ rss: 0, pss: 0, anon: 0 });
  const each = [zero(), zero(), zero()];
  const together = zero();
  let done = false;
  let agent: number | undefined;
  const sampler = (async () => {
    while (!done) {
      agent ??= agentPid(bundle);
      const now = zero();
      const current = pids.map((p) => {
        try {
          return p();
        } catch {
          return undefined; // unbound's pid file is rewritten while it reloads
        }
      });
      [...current, agent].forEach((p, i) => {
        if (p === undefined) return;
        let m: Memory;
        try {
          m = memoryOf(p);
        } catch {
          // The agent has ended, or unbound is between a stop and a start: no memory at this moment. A
          // throw here would end the bench without its cleanup (an async loop nobody awaits yet).
          return;
        }
        for (const k of ["rss", "pss", "anon"] as const) {
          each[i][k] = Math.max(each[i][k], m[k]);
          now[k] += m[k];
        }
      });
      for (const k of ["rss", "pss", "anon"] as const) together[k] = Math.max(together[k], now[k]);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  try {
    return { result: await work, peaks: { each, together } };
  } finally {
    // Also when the work fails: a sampler left running would keep the bench alive, its namespaces with it.
    done = true;
    await sampler;
  }
}

/** ROUNDS rounds of the paced load; the line reports the median round's p50 and p99, and the p99s' range. */
async function pacedLoad(hub: HubLab, port: number, names: string[]): Promise<Rounds> {
  const rounds: PacedResult[] = [];
  for (let i = 0; i < ROUNDS; i++) rounds.push(await oneRound(hub, port, names));
  return rounds;
}

type Rounds = PacedResult[];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function line(rounds: Rounds): string {
  const p99s = rounds.map((r) => r.p99us);
  const sent = rounds.reduce((n, r) => n + r.sent, 0);
  const answered = rounds.reduce((n, r) => n + r.answered, 0);
  const codes: Record<string, number> = {};
  for (const r of rounds) for (const [c, k] of Object.entries(r.rcodes)) codes[c] = (codes[c] ?? 0) + k;
  return `${rounds.length} rounds: p50 ${median(rounds.map((r) => r.p50us))} us, p99 ${median(p99s)} us (rounds ${Math.min(...p99s)}-${Math.max(...p99s)}), p99.9 ${median(rounds.map((r) => r.p999us))} us, ${median(rounds.map((r) => r.qps))} q/s, ${answered} of ${sent} answered (${Object.entries(
    codes,
  )
    .map(([c, k]) => `${c} ${k}`)
    .join(", ")})`;
}

async function main(): Promise<void> {
  const baseline = !process.argv.includes("--no-baseline");
  // The refresh's Node options, as the unit sets them, unless an experiment names others.
  const refreshOptions = process.env.BENCH_REFRESH_NODE_OPTIONS ?? REFRESH_NODE_OPTIONS;
  const args = process.argv
    .slice(2)
    .filter((a) => !a.startsWith("--"))
    .map(Number);
  const sizes = args.length > 0 ? args : [100_000, 1_000_000, 2_000_000];
  const out = (text: string) => process.stdout.write(text + "\n");
  const hub = new HubLab();
  try {
    await hub.start({ internet: true });
    // BENCH_PEERS: a larger hub, to check the refresh's heap cap holds its state too.
    const base = syntheticState(syntheticPeers(Number(process.env.BENCH_PEERS ?? 10)));
    const st = (blocklists: string[]): HubState => ({
      ...base,
      // Validation on (unbound's validator module) and DNS-over-TLS to the lab's upstream, as on a hub.
      dns: { ...base.dns, blocklists, allow: [], deny: [], dnssec: true, upstreams: [LAB_UPSTREAM] },
    });
    await hub.apply(st([]));
    await hub.startUnbound();
    const filterChild = hub.lab.daemon("filter", hub.hubNs, "env", [
      ...hub.env(),
      "MALLOC_ARENA_MAX=2",
      process.execPath,
      ...DNS_FILTER_NODE_FLAGS,
      hub.bundle,
      "dns-filter",
      "serve",
    ]);
    await waitFor(async () => hub.lab.daemonOutput("filter").includes("listening"), 10_000, "the filter");
    const filterPid = filterChild.pid ?? 0;
    out(`refresh NODE_OPTIONS: ${refreshOptions}`);
    out(
      `machine: ${cpus().length} CPUs, load average ${loadavg()[0].toFixed(1)}; paced load ${RATE} q/s for ${SECONDS} s`,
    );
    out(`no list: unbound RSS ${mib(rssKiB(hub.unboundPid()))}, filter RSS ${mib(rssKiB(filterPid))}`);
    // What Node itself costs in the tail: the same load against a Node UDP server that only answers REFUSED
    // (no table, no forwarding) and against unbound's own port (a cached name), before any list.
    hub.lab.daemon("echo", hub.hubNs, process.execPath, ["--max-semi-space-size=1", "-e", NODE_ECHO]);
    await waitFor(async () => hub.lab.daemonOutput("echo").includes("ready"), 10_000, "the Node echo");
    out(
      `baseline: a Node UDP server answering REFUSED: ${line(await pacedLoad(hub, 5301, ["x.example.com"]))}`,
    );
    await pacedLoad(hub, 53, ["www.lab.example"]);
    out(`baseline: unbound, a cached name: ${line(await pacedLoad(hub, 53, ["www.lab.example"]))}`);
    await hub.lab.stopDaemon("echo");
    const paths = pathsUnder(hubRoot(hub.dir));

    for (const n of sizes) {
      // Lists of at most PER_LIST names each: 2,000,000 names are two lists, as a user would combine them.
      const urls: string[] = [];
      for (let from = 0; from < n; from += PER_LIST) {
        const file = path.join(hub.dir, `list-${n}-${from}.txt`);
        await writeList(file, from, Math.min(n, from + PER_LIST));
        urls.push(`file://${file}`);
      }
      await hub.apply(st(urls));
      const loads = (hub.lab.daemonOutput("filter").match(/table loaded/g) ?? []).length;
      const { result: refresh, peaks } = await peakDuring(
        [() => hub.unboundPid(), () => filterPid],
        hub.bundle,
        // As the refresh unit runs it (cloud-init/units.ts).
        hub.agent(["blocklists", "refresh"], undefined, [
          "MALLOC_ARENA_MAX=2",
          `NODE_OPTIONS=${refreshOptions}`,
        ]),
      );
      try {
        process.kill(filterPid, 0);
      } catch {
        throw new Error(`the filter died: ${hub.lab.daemonOutput("filter").slice(-1500)}`);
      }
      const t0 = Date.now();
      await waitFor(
        async () => (hub.lab.daemonOutput("filter").match(/table loaded/g) ?? []).length > loads,
        10_000,
        "the new table",
      );
      const [u, f, a] = peaks.each;
      // The agent is found by its command line; a bench that never saw it would understate every sum.
      if (a.rss === 0)
        throw new Error("the refreshing agent was never sampled: its figures would be missing");
      const t = peaks.together;
      out(
        `filter ${n}: refresh (read, parse, store, build table) ${refresh.seconds.toFixed(1)} s wall, agent peak RSS ${mib(refresh.rssKiB)} (GNU time); table in use ${((Date.now() - t0) / 1000).toFixed(1)} s after`,
      );
      out(
        `filter ${n}: peaks during the refresh, RSS / PSS / anonymous: unbound ${mib(u.rss)} / ${mib(u.pss)} / ${mib(u.anon)}, filter ${mib(f.rss)} / ${mib(f.pss)} / ${mib(f.anon)}, agent ${mib(a.rss)} / ${mib(a.pss)} / ${mib(a.anon)}`,
      );
      out(
        `filter ${n}: all DNS processes together at one moment, at most: RSS ${mib(t.rss)}, PSS ${mib(t.pss)}, anonymous ${mib(t.anon)}; the sum of the RSS peaks ${mib(u.rss + f.rss + refresh.rssKiB)}`,
      );
      await new Promise((r) => setTimeout(r, 1500));
      out(
        `filter ${n}: steady RSS unbound ${mib(rssKiB(hub.unboundPid()))} + filter ${mib(rssKiB(filterPid))}`,
      );
      out(`filter ${n}: blocked: ${line(await pacedLoad(hub, 5300, [blockedName(n)]))}`);
      await pacedLoad(hub, 5300, ["www.lab.example"]);
      out(`filter ${n}: allowed, cached: ${line(await pacedLoad(hub, 5300, ["www.lab.example"]))}`);
      out(`filter ${n}: allowed, uncached: ${line(await pacedLoad(hub, 5300, [`u%.lab.example`]))}`);
      out(
        `filter ${n}: after load RSS unbound ${mib(rssKiB(hub.unboundPid()))} + filter ${mib(rssKiB(filterPid))}`,
      );

      if (n > 1_000_000 || !baseline) continue;
      // The old design, same list, same unbound: every name a local-zone, queried on unbound's own port.
      const lists = urls.map((url) => readStoredList(paths.blocklistDir, url));
      writeFileSync(paths.unboundBlocklist, renderBlocklistZones(buildDnsFilter(lists, [], []), "baseline"));
      const reloadStart = Date.now();
      await hub.unboundControl(["reload"]);
      await hub.waitUnbound();
      out(
        `local-zone ${n}: unbound reload ${((Date.now() - reloadStart) / 1000).toFixed(1)} s (no DNS meanwhile), RSS ${mib(rssKiB(hub.unboundPid()))}`,
      );
      out(`local-zone ${n}: blocked: ${line(await pacedLoad(hub, 53, [blockedName(n)]))}`);
      await pacedLoad(hub, 53, ["www.lab.example"]);
      out(`local-zone ${n}: allowed, cached: ${line(await pacedLoad(hub, 53, ["www.lab.example"]))}`);
      out(`local-zone ${n}: allowed, uncached: ${line(await pacedLoad(hub, 53, [`v%.lab.example`]))}`);
      // Back to the filter's empty zone file (the next apply rebuilds it: its inputs no longer match).
      writeFileSync(paths.unboundBlocklist, renderBlocklistZones({ blocked: [], exempt: [] }, "none"));
      // A fresh unbound, so the next size's figures do not carry the baseline's zones in its heap (a reload
      // gives little of it back: 69 MiB at the next size in the first run).
      await hub.stopUnbound();
      await hub.startUnbound();
    }
    out(`load average at end ${loadavg()[0].toFixed(1)}`);
  } finally {
    await hub.cleanup();
  }
}

main().catch((e) => {
  process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
  process.exitCode = 1;
});
