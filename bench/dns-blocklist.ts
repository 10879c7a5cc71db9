/**
 * Benchmark: unbound with large blocklists (memory, load time, live apply) and DNS latency/throughput for a
 * blocked and a cached name. Run as root:
 *   npx ts-node --transpile-only bench/dns-blocklist.ts [SIZES...]     (default: 100000 1000000)
 * Lists are synthetic hosts files; the hub runs the real agent, unbound and an authoritative upstream in
 * network namespaces (plain DNS upstream: test-only override).
 */
import { createWriteStream } from "fs";
import { cpus, loadavg } from "os";
import * as path from "path";
import type { HubState } from "../model/state";
import { syntheticPeers, syntheticState } from "./agent-fixtures";
import { HubLab, LAB_UPSTREAM, mib, rssKiB } from "./agent-hub-lab";

async function writeList(file: string, n: number): Promise<void> {
  const out = createWriteStream(file);
  for (let i = 0; i < n; i++) {
    const line = `0.0.0.0 ad${i.toString(36)}.tracker${i % 997}.example${i % 13}.com\n`;
    if (!out.write(line)) await new Promise<void>((r) => out.once("drain", () => r()));
  }
  await new Promise<void>((resolve, reject) => out.end((e?: Error | null) => (e ? reject(e) : resolve())));
}

async function dnsLoad(hub: HubLab, name: string) {
  const r = await hub.lab.exec(
    hub.hubNs,
    process.execPath,
    [
      "-r",
      "ts-node/register/transpile-only",
      path.join(__dirname, "dns-load.ts"),
      "10.77.0.1",
      name,
      "2000",
      "20000",
      "32",
    ],
    {
      timeoutMs: 300_000,
    },
  );
  return JSON.parse(r.stdout) as { rcode: string; p50us: number; p99us: number; qps: number; lost: number };
}

async function main(): Promise<void> {
  const sizes = process.argv.slice(2).map(Number);
  const out = (line: string) => process.stdout.write(line + "\n");
  const hub = new HubLab();
  try {
    await hub.start({ internet: true });
    const base = syntheticState(syntheticPeers(10));
    const st = (blocklists: string[]): HubState => ({
      ...base,
      dns: {
        ...base.dns,
        blocklists,
        dnssec: false,
        upstreams: [LAB_UPSTREAM],
      },
    });
    await hub.apply(st([]));
    await hub.startUnbound();
    out(`machine: ${cpus().length} CPUs, load average ${loadavg()[0].toFixed(1)}`);
    out(`unbound RSS with no blocklist: ${mib(rssKiB(hub.unboundPid()))}`);

    for (const n of sizes.length > 0 ? sizes : [100_000, 1_000_000]) {
      const file = path.join(hub.dir, `list-${n}.txt`);
      await writeList(file, n);
      const url = `file://${file}`;
      await hub.apply(st([url]));
      const refresh = await hub.agent(["blocklists", "refresh"]);
      out(
        `${n} domains: 'blocklists refresh' (read file://, parse, store, unbound reload) ${refresh.seconds.toFixed(1)} s wall, ${refresh.cpuSeconds.toFixed(1)} s agent CPU, agent peak RSS ${mib(refresh.rssKiB)} -> ${refresh.stdout.trim().split("\n").pop()}`,
      );
      // `unbound-control reload` returns before unbound has re-read everything; status answers once it has.
      await hub.waitUnbound();
      out(`${n} domains: unbound RSS after that reload ${mib(rssKiB(hub.unboundPid()))}`);
      const reloadStart = Date.now();
      await hub.unboundControl(["reload"]);
      await hub.waitUnbound();
      out(
        `${n} domains: unbound-control reload (re-reads the zones file) ${((Date.now() - reloadStart) / 1000).toFixed(1)} s`,
      );
      await hub.stopUnbound();
      const loadMs = await hub.startUnbound();
      out(
        `${n} domains: unbound cold start until it answers ${(loadMs / 1000).toFixed(1)} s, RSS ${mib(rssKiB(hub.unboundPid()))}`,
      );
      const peerChange = await hub.apply({ ...st([url]), peers: base.peers.slice(1) });
      out(
        `${n} domains: apply of a one-peer change with this list loaded ${peerChange.seconds.toFixed(2)} s wall, ${peerChange.cpuSeconds.toFixed(2)} s agent CPU, agent peak RSS ${mib(peerChange.rssKiB)}`,
      );

      const blocked = await dnsLoad(
        hub,
        `ad${(n - 1).toString(36)}.tracker${(n - 1) % 997}.example${(n - 1) % 13}.com`,
      );
      await dnsLoad(hub, "www.lab.example"); // warm the cache
      const cached = await dnsLoad(hub, "www.lab.example");
      for (const [label, r] of [
        ["blocked name", blocked],
        ["cached name", cached],
      ] as const) {
        out(
          `${n} domains: ${label} -> ${r.rcode}: latency p50 ${r.p50us.toFixed(0)} us, p99 ${r.p99us.toFixed(0)} us (2000 sequential); throughput ${r.qps.toFixed(0)} q/s (20000 queries, 32 in flight, ${r.lost} lost)`,
        );
      }
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
