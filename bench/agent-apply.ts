/**
 * Benchmark: the agent applying large peer lists, and how fast one peer change takes effect.
 * Run as root (network namespaces, real wireguard-go, nft, unbound):
 *   npx ts-node --transpile-only bench/agent-apply.ts
 * Prints figures; asserts nothing (targets are in bench/README-agent.md).
 */
import { cpus, loadavg } from "os";
import * as path from "path";
import { writeFileSync } from "fs";
import { fixedKeyPair } from "../agent/test-support/state-fixtures";
import { hubAddresses } from "../model/addressing";
import { publicKeyFromPrivate } from "../model/keys";
import type { HubState, PeerState } from "../model/state";
import { waitFor } from "../test/e2e/netns/lab";
import { SUBNETS, syntheticPeers, syntheticState } from "./agent-fixtures";
import { HubLab, LAB_UPSTREAM, mib } from "./agent-hub-lab";

async function main(): Promise<void> {
  const hub = new HubLab();
  const lab = hub.lab;
  const out = (line: string) => process.stdout.write(line + "\n");
  try {
    await hub.start({ internet: false });
    const base = syntheticState([]);
    const st = (peers: PeerState[]): HubState => ({
      ...base,
      peers,
      dns: { ...base.dns, upstreams: [LAB_UPSTREAM] },
    });
    await hub.apply(st([]));
    await hub.startUnbound();
    out(`machine: ${cpus().length} CPUs, load average ${loadavg()[0].toFixed(1)} at start`);

    for (const n of [1000, 10000]) {
      await hub.apply(st([]));
      const peers = syntheticPeers(n);
      const first = await hub.apply(st(peers));
      const again = await hub.apply(st(peers));
      out(
        `apply ${n} peers onto an empty hub: ${first.seconds.toFixed(2)} s wall, ${first.cpuSeconds.toFixed(2)} s agent CPU, agent peak RSS ${mib(first.rssKiB)}`,
      );
      out(
        `apply the same ${n} peers again (no change): ${again.seconds.toFixed(2)} s wall, ${again.cpuSeconds.toFixed(2)} s agent CPU, agent peak RSS ${mib(again.rssKiB)} -> ${again.stdout.trim()}`,
      );
    }

    // One peer change within 1,000: a real device (probe) is added; its first ping reply through the tunnel is the effect.
    const peers = syntheticPeers(1000);
    await hub.apply(st([]));
    await hub.apply(st(peers));
    const probeNs = await lab.namespace("bprobe");
    await lab.link(
      { ns: hub.hubNs, ifname: `vbp${lab.tag}`, cidr: "192.0.2.1/30" },
      { ns: probeNs, ifname: `vpr${lab.tag}`, cidr: "192.0.2.2/30" },
    );
    const probeIf = `wgp${lab.tag}`;
    await lab.wireguard(probeNs, probeIf);
    const keys = fixedKeyPair(`probe-${lab.tag}`);
    const keyFile = path.join(hub.dir, "probe.key");
    writeFileSync(keyFile, keys.privateKey + "\n", { mode: 0o600 });
    const probe: PeerState = {
      name: "probe",
      publicKey: keys.publicKey,
      ipv4: "10.77.200.200",
      ipv6: "fd7a:c10d:9a1::c8c8",
      group: "family",
    };
    const hubPublic = publicKeyFromPrivate(base.hub.privateKey);
    await lab.exec(probeNs, "wg", [
      "set",
      probeIf,
      "private-key",
      keyFile,
      "peer",
      hubPublic,
      "endpoint",
      "192.0.2.1:51820",
      "allowed-ips",
      "10.77.0.0/16",
    ]);
    /** Forget the probe's session with the hub, so its next packet needs a new handshake. */
    const freshProbeSession = async () => {
      await lab.exec(probeNs, "wg", ["set", probeIf, "peer", hubPublic, "remove"]);
      await lab.exec(probeNs, "wg", [
        "set",
        probeIf,
        "peer",
        hubPublic,
        "endpoint",
        "192.0.2.1:51820",
        "allowed-ips",
        "10.77.0.0/16",
      ]);
    };
    await lab.exec(probeNs, "ip", ["addr", "add", `${probe.ipv4}/32`, "dev", probeIf]);
    await lab.exec(probeNs, "ip", ["link", "set", probeIf, "up"]);
    await lab.exec(probeNs, "ip", ["route", "add", SUBNETS.ipv4Subnet, "dev", probeIf]);
    const samples: number[] = [];
    const applies: number[] = [];
    const cpu: number[] = [];
    for (let i = 0; i < 5; i++) {
      lab.daemon(`probe-ping-${i}`, probeNs, "ping", ["-n", "-D", "-i", "0.01", hubAddresses(SUBNETS).ipv4]);
      await new Promise((r) => setTimeout(r, 300));
      const t0 = Date.now();
      const r = await hub.apply(st([...peers, probe]));
      applies.push(r.seconds * 1000);
      cpu.push(r.cpuSeconds * 1000);
      // A device whose handshake was ignored retries only every 5 s (WireGuard's REKEY_TIMEOUT); a device that
      // just got its config (a new phone) starts a fresh one. Start a fresh one now, so the figure is the hub's.
      await freshProbeSession();
      await waitFor(
        async () => /\[(\d+\.\d+)\] \d+ bytes from/.test(lab.daemonOutput(`probe-ping-${i}`)),
        10_000,
        "probe ping reply",
      );
      const ts = Number(/\[(\d+\.\d+)\] \d+ bytes from/.exec(lab.daemonOutput(`probe-ping-${i}`))![1]) * 1000;
      samples.push(ts - t0);
      await lab.stopDaemon(`probe-ping-${i}`);
      await hub.apply(st(peers));
      // Drop the probe's session so the next round needs a new handshake.
      await freshProbeSession();
    }
    const fmt = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(", ");
    out(
      `one peer added within 1000, apply start -> first ping reply through the tunnel (ms, 5 runs): ${fmt(samples)}`,
    );
    out(
      `  of which the agent process (node start + validate + wg + nft + unbound) took (ms): ${fmt(applies)}`,
    );
    const removeTimes: number[] = [];
    for (let i = 0; i < 3; i++) {
      await hub.apply(st([...peers, probe]));
      removeTimes.push((await hub.apply(st(peers))).seconds * 1000);
    }
    out(`one peer removed within 1000, whole apply (ms, 3 runs): ${fmt(removeTimes)}`);
    out(`load average at end ${loadavg()[0].toFixed(1)}`);
  } finally {
    await hub.cleanup();
  }
}

main().catch((e) => {
  process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
  process.exitCode = 1;
});
