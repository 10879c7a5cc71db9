/**
 * What the per-group site policies add to an answer (agent/src/site-policy.ts SiteSets): the DNS filter holds
 * an allow-list group's answer until its addresses are in the group's nft set. Measured with real nftables in a
 * network namespace this script makes (and deletes), with the sites table the agent renders:
 * - one answer at a time, each with a new address (the worst case: one `nft -f -` per answer);
 * - a burst of answers arriving together (they share transactions);
 * - an answer whose address the set already holds for longer (no nft at all: the common case, since unbound's
 *   cached TTLs count down).
 * Run as root, on a quiet machine:
 *   flock -x /tmp/cloudpal-heavy.lock npx ts-node --transpile-only bench/site-sets.ts [N]
 */
import { realRunner } from "../lib/runner";
import { NftSession, SiteSets, type AddressRecord, type NftScriptRunner } from "../agent/src/site-policy";
import { renderSitesTable } from "../agent/src/site-policy-nft";
import { testPeer, testState } from "../agent/test-support/state-fixtures";

const N = Number(process.argv[2] ?? 500);
const ns = `cpsites${process.pid}`;

function pct(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}
const ms = (x: number) => `${x.toFixed(2)} ms`;

async function main(): Promise<void> {
  const state = {
    ...testState(),
    groups: [
      { name: "kids", reaches: [], internet: true, allow: ["school.example"], sites: "allow-list" as const },
    ],
    peers: [testPeer("kid", "kids")],
  };
  const runner = realRunner(() => undefined);
  const run = async (args: string[], input?: string) =>
    (await runner.run("ip", ["netns", "exec", ns, ...args], { input })).stdout;
  await runner.run("ip", ["netns", "add", ns]);
  try {
    await run(["nft", "-f", "-"], renderSitesTable(state, "cloudpal", "wg0"));
    const addr = (i: number): AddressRecord => ({
      family: 4,
      address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
      ttl: 300,
    });
    // Baseline: the bare cost of starting `ip netns exec nft` with an empty script (what the namespace adds).
    const bare: number[] = [];
    for (let i = 0; i < 50; i++) {
      const t = process.hrtime.bigint();
      await runner.run("ip", ["netns", "exec", ns, "nft", "-f", "-"], { input: "\n" });
      bare.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
    console.log(`site sets, ${N} answers each (real nftables in a namespace)`);
    console.log(`  ip netns exec nft -f -, empty script: p50 ${ms(pct(bare, 50))}  p99 ${ms(pct(bare, 99))}`);

    const session = new NftSession(["ip", "netns", "exec", ns, "nft", "-i"]);
    const runners: [string, NftScriptRunner, number][] = [
      // What the filter uses: one persistent nft -i (started inside the namespace here).
      ["nft -i session (the filter's)", session.run, 0],
      // One `nft -f -` per transaction, for comparison.
      [
        "nft -f - per transaction",
        async (script) => {
          await runner.run("ip", ["netns", "exec", ns, "nft", "-f", "-"], { input: script });
        },
        1_000_000,
      ],
    ];
    for (const [label, nftRun, base] of runners) {
      const sets = new SiteSets("cloudpal", nftRun);
      const one: number[] = [];
      for (let i = 0; i < N; i++) {
        const t = process.hrtime.bigint();
        await sets.add("kids", "allow", [addr(base + i)]);
        one.push(Number(process.hrtime.bigint() - t) / 1e6);
      }
      const burst: number[] = [];
      const t0 = process.hrtime.bigint();
      const batchesBefore = sets.stats.batches;
      await Promise.all(
        Array.from({ length: N }, async (_, i) => {
          const t = process.hrtime.bigint();
          await sets.add("kids", "allow", [addr(base + N + i)]);
          burst.push(Number(process.hrtime.bigint() - t) / 1e6);
        }),
      );
      const burstMs = Number(process.hrtime.bigint() - t0) / 1e6;
      const burstBatches = sets.stats.batches - batchesBefore;
      const known: number[] = [];
      for (let i = 0; i < N; i++) {
        const t = process.hrtime.bigint();
        await sets.add("kids", "allow", [{ ...addr(base + i), ttl: 200 }]);
        known.push(Number(process.hrtime.bigint() - t) / 1e6);
      }
      if (sets.stats.failures > 0) throw new Error(`${label}: ${sets.stats.failures} failed updates`);
      console.log(`  ${label}:`);
      console.log(
        `    one answer, new address:             p50 ${ms(pct(one, 50))}  p99 ${ms(pct(one, 99))}`,
      );
      console.log(
        `    ${N} answers at once, new addresses: p50 ${ms(pct(burst, 50))}  p99 ${ms(pct(burst, 99))}  (${burstBatches} transactions, ${ms(burstMs)} in all)`,
      );
      console.log(
        `    address already held longer:         p50 ${ms(pct(known, 50))}  p99 ${ms(pct(known, 99))}`,
      );
    }
    session.close();
    const listed = await run(["nft", "list", "set", "inet", "cloudpal_sites", "allow4_kids"]);
    const held = listed.match(/expires/g)?.length ?? 0;
    if (held !== 4 * N) throw new Error(`${held} elements in the set, expected ${4 * N}`);
    console.log(`  elements in the set at the end: ${held} (every one added)`);
  } finally {
    await runner.run("ip", ["netns", "del", ns], { allowFailure: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
