/**
 * Benchmark: the DNS filter (agent/src/dns-filter*.ts) before unbound, against the old design (one unbound
 * local-zone per name) in the same run. Per list size: the RSS of every DNS process (unbound, the filter), the
 * refresh (wall time, the agent's peak RSS, the filter's and unbound's peak RSS while it runs), and latency
 * p50/p99 at a paced 5,000 q/s for a blocked name, an allowed cached name and allowed uncached names (each
 * query a new name: forwarded over DNS-over-TLS to the lab's authoritative server). Run as root, alone:
 *   flock -x /tmp/cloudpal-heavy.lock npx ts-node --transpile-only bench/dns-filter.ts [SIZES...]
 * (default: 100000 1000000 2000000; the local-zone baseline is measured up to 1,000,000).
 */
import { createWriteStream, writeFileSync } from "fs";
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
import type { PacedResult } from "./dns-paced";

const RATE = 5000;
const SECONDS = 4;

async function writeList(file: string, n: number): Promise<void> {
  const out = createWriteStream(file);
  for (let i = 0; i < n; i++) {
    const line = `0.0.0.0 ad${i.toString(36)}.tracker${i % 997}.example${i % 13}.com\n`;
    if (!out.write(line)) await new Promise<void>((r) => out.once("drain", () => r()));
  }
  await new Promise<void>((resolve, reject) => out.end((e?: Error | null) => (e ? reject(e) : resolve())));
}

function blockedName(n: number): string {
  const i = n - 1;
  return `ad${i.toString(36)}.tracker${i % 997}.example${i % 13}.com`;
}

async function pacedLoad(hub: HubLab, port: number, names: string[]): Promise<PacedResult> {
  const r = await hub.lab.exec(
    hub.hubNs,
    process.execPath,
    [
      "-r",
      "ts-node/register/transpile-only",
      path.join(__dirname, "dns-paced.ts"),
      "10.77.0.1",
      String(port),
      String(RATE),
      String(SECONDS),
      ...names,
    ],
    { timeoutMs: 120_000 },
  );
  return JSON.parse(r.stdout) as PacedResult;
}

let hubOutput = (): string => "";

/** Samples the largest RSS of `pids` while `work` runs. */
async function peakDuring<T>(pids: number[], work: Promise<T>): Promise<{ result: T; peaks: number[] }> {
  const peaks = pids.map(() => 0);
  let done = false;
  const sampler = (async () => {
    while (!done) {
      pids.forEach((p, i) => {
        try {
          peaks[i] = Math.max(peaks[i], rssKiB(p));
        } catch {
          throw new Error(`process ${p} is gone: filter said ${hubOutput().slice(-1500)}`);
        }
      });
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  const result = await work;
  done = true;
  await sampler;
  return { result, peaks };
}

function line(r: PacedResult): string {
  const codes = Object.entries(r.rcodes)
    .map(
      ([c, k]) =>
        `${["NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"][Number(c)] ?? c} ${k}`,
    )
    .join(", ");
  return `p50 ${r.p50us} us, p99 ${r.p99us} us, ${r.qps} q/s answered of ${RATE} sent/s, ${r.lost} lost (${codes})`;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2).map(Number);
  const sizes = args.length > 0 ? args : [100_000, 1_000_000, 2_000_000];
  const out = (text: string) => process.stdout.write(text + "\n");
  const hub = new HubLab();
  try {
    await hub.start({ internet: true });
    const base = syntheticState(syntheticPeers(10));
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
    hubOutput = () => hub.lab.daemonOutput("filter");
    out(
      `machine: ${cpus().length} CPUs, load average ${loadavg()[0].toFixed(1)}; paced load ${RATE} q/s for ${SECONDS} s`,
    );
    out(`no list: unbound RSS ${mib(rssKiB(hub.unboundPid()))}, filter RSS ${mib(rssKiB(filterPid))}`);
    const paths = pathsUnder(hubRoot(hub.dir));

    for (const n of sizes) {
      const file = path.join(hub.dir, `list-${n}.txt`);
      await writeList(file, n);
      const url = `file://${file}`;
      await hub.apply(st([url]));
      const loads = (hub.lab.daemonOutput("filter").match(/table loaded/g) ?? []).length;
      const { result: refresh, peaks } = await peakDuring(
        [hub.unboundPid(), filterPid],
        // As the refresh unit runs it (cloud-init/units.ts).
        hub.agent(["blocklists", "refresh"], undefined, [
          "MALLOC_ARENA_MAX=2",
          `NODE_OPTIONS=${REFRESH_NODE_OPTIONS}`,
        ]),
      );
      const t0 = Date.now();
      await waitFor(
        async () => (hub.lab.daemonOutput("filter").match(/table loaded/g) ?? []).length > loads,
        10_000,
        "the new table",
      );
      out(
        `filter ${n}: refresh (read, parse, store, build table) ${refresh.seconds.toFixed(1)} s wall, agent peak RSS ${mib(refresh.rssKiB)}; during it unbound peak ${mib(peaks[0])}, filter peak ${mib(peaks[1])}; table in use ${((Date.now() - t0) / 1000).toFixed(1)} s after`,
      );
      // Peaks taken apart, so their sum bounds what the three processes held at any one moment.
      out(
        `filter ${n}: all DNS processes during the refresh, at most ${mib(refresh.rssKiB + peaks[0] + peaks[1])} (agent + unbound + filter peaks)`,
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

      if (n > 1_000_000) continue;
      // The old design, same list, same unbound: every name a local-zone, queried on unbound's own port.
      const lists = [readStoredList(paths.blocklistDir, url)];
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
