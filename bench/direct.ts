/**
 * Direct connections, one run (README "Benchmarks"): two helper devices behind two NAT routers and the hub, in
 * network namespaces (test/e2e/netns/direct-lab.ts), real wireguard-go, agent and helper.
 *
 *   flock -x /tmp/cloudpal-heavy.lock npx ts-node --transpile-only bench/direct.ts
 *
 * - time to direct: from starting both helpers to both reporting the pair direct;
 * - fallback: a ping every 10 ms, the UDP path between the two NATs cut after 2 s: packets lost, as time;
 * - throughput: iperf3 (TCP, 5 s) from a to b direct, and relayed through the hub while the path is cut;
 * - back to direct: from restoring the path to both reporting direct.
 */
import { directLab } from "../test/e2e/netns/direct-lab";
import { Lab, waitFor } from "../test/e2e/netns/lab";

const CUT =
  "table ip lab_cut {\n  chain f {\n    type filter hook forward priority -5; policy accept;\n" +
  "    ip daddr 203.0.113.12 meta l4proto udp drop\n    ip saddr 203.0.113.12 meta l4proto udp drop\n  }\n}\n";

async function main(): Promise<void> {
  const lab = new Lab();
  const d = await directLab(lab, false, false);
  try {
    const [a, b] = [d.dev.a!, d.dev.b!];
    const started = Date.now();
    d.startHelper(a);
    d.startHelper(b);
    await d.waitDirect(a, b, 60_000);
    const toDirect = Date.now() - started;

    lab.daemon("iperf3", b.ns, "iperf3", ["-s", "-B", b.peer.ipv4]);
    await new Promise((r) => setTimeout(r, 500));
    const iperf = async () => {
      const r = await lab.exec(a.ns, "iperf3", ["-c", b.peer.ipv4, "-t", "5", "-J"], { timeoutMs: 60_000 });
      const j = JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } };
      return j.end.sum_received.bits_per_second / 1e6;
    };
    const directMbps = await iperf();
    const hubBefore = await d.hubForwarded(a, b);

    // -D: each reply's arrival time, so the gap is measured, not inferred from the interval.
    const pinging = lab
      .exec(a.ns, "ping", ["-D", "-n", "-c", "1000", "-i", "0.01", "-W", "1", b.peer.ipv4], {
        allowFailure: true,
        timeoutMs: 120_000,
      })
      .then((r) => {
        const times = [...r.stdout.matchAll(/^\[(\d+\.\d+)\] \d+ bytes from/gm)].map((m) => Number(m[1]));
        let gap = 0;
        for (let i = 1; i < times.length; i++) gap = Math.max(gap, times[i]! - times[i - 1]!);
        const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
        return { sent: Number(m?.[1] ?? 0), received: Number(m?.[2] ?? 0), gap };
      });
    await new Promise((r) => setTimeout(r, 2000));
    await lab.exec(d.natNs.nata!, "nft", ["-f", "-"], { input: CUT });
    const p = await pinging;
    await waitFor(async () => d.pathOf(a, "b")?.path === "relayed", 10_000, "relayed");
    const relayedMbps = await iperf();
    const hubDuring = await d.hubForwarded(a, b);

    const restored = Date.now();
    await lab.exec(d.natNs.nata!, "nft", ["delete", "table", "ip", "lab_cut"]);
    await d.waitDirect(a, b, 120_000);
    const backToDirect = Date.now() - restored;

    const lost = p.sent - p.received;
    const lines = [
      `time to direct (helpers started → both report direct): ${(toDirect / 1000).toFixed(2)} s`,
      `fallback: ${lost} of ${p.sent} pings (every 10 ms) lost when the direct path was cut; longest gap between replies ${p.gap.toFixed(2)} s`,
      `throughput a → b, iperf3 TCP 5 s: direct ${directMbps.toFixed(0)} Mbit/s, relayed through the hub ${relayedMbps.toFixed(0)} Mbit/s`,
      `packets a → b the hub forwarded: ${hubBefore} before the cut (all of them direct), ${hubDuring - hubBefore} while relayed`,
      `back to direct after the path was restored: ${(backToDirect / 1000).toFixed(2)} s`,
    ];
    process.stdout.write(lines.join("\n") + "\n");
  } finally {
    await d.cleanup();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
