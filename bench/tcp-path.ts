/**
 * The TCP path against WireGuard on this machine, one run each, side by side (issue 11): iperf3 from a device
 * namespace to the lab's internet, through wireguard-go (the tunnel) and through the relay (Debian's
 * `ss-tunnel` on the device forwarding a local port to the iperf3 server over the TCP path). Throughput, and
 * the CPU seconds the hub's and the device's processes spent per GB moved. Then the relay's memory with 100
 * devices configured for the TCP path: idle, and with 8 parallel streams.
 *
 *   flock -x /tmp/cloudpal-heavy.lock npx ts-node --transpile-only bench/tcp-path.ts
 *
 * Needs root, scripts/install-test-deps.sh (wireguard-go, nftables, unbound, shadowsocks-libev, iperf3).
 */
import { randomBytes } from "crypto";
import { chmodSync, chownSync, mkdirSync, readFileSync, writeFileSync } from "fs";
import * as path from "path";
import { publicKeyFromPrivate } from "../model/keys";
import type { HubState, PeerState } from "../model/state";
import { fixedKeyPair, testPeer, TEST_SUBNETS } from "../agent/test-support/state-fixtures";
import { hubRoot } from "../test/e2e/netns/hub";
import { waitFor } from "../test/e2e/netns/lab";
import { HubLab, INTERNET, LAB_UPSTREAM } from "./agent-hub-lab";

const SECONDS = 10;
const RELAY_UID = 64_500 + (process.pid % 400);
const HUB_UNDERLAY = "192.0.2.1";

function ticks(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = f.slice(f.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]); // utime + stime, in clock ticks (100 Hz)
}

function rssKiB(pid: number): { rss: number; hwm: number } {
  const s = readFileSync(`/proc/${pid}/status`, "utf8");
  return { rss: Number(/VmRSS:\s+(\d+)/.exec(s)?.[1]), hwm: Number(/VmHWM:\s+(\d+)/.exec(s)?.[1]) };
}

async function main(): Promise<void> {
  const hub = new HubLab();
  const lab = hub.lab;
  try {
    await hub.start({ internet: true });
    chmodSync(hub.dir, 0o711);
    chmodSync(hub.bundle, 0o644);
    const hubKey = fixedKeyPair("bench-tcp-hub");
    const devKeys = fixedKeyPair("bench-tcp-dev");
    const devNs = await lab.namespace("bdev");
    await lab.link(
      { ns: hub.hubNs, ifname: `vbh${lab.tag}`, cidr: `${HUB_UNDERLAY}/30` },
      { ns: devNs, ifname: `vbd${lab.tag}`, cidr: "192.0.2.2/30" },
    );
    // 100 devices with a TCP-path key; the first is the one measured, over both paths.
    const peers: PeerState[] = Array.from({ length: 100 }, (_, i) => ({
      ...testPeer(`dev${i}`, "family"),
      publicKey: i === 0 ? devKeys.publicKey : fixedKeyPair(`bench-tcp-${i}`).publicKey,
      tcpKey: randomBytes(32).toString("base64url"),
    }));
    const state: HubState = {
      version: 1,
      hub: {
        privateKey: hubKey.privateKey,
        listenPort: 51820,
        tcpPort: 443,
        sshPort: 22,
        sshAllowedCidrs: ["192.0.2.0/24"],
        ...TEST_SUBNETS,
      },
      mode: "vpn",
      groups: [{ name: "family", reaches: ["family"], internet: true }],
      peers,
      dns: { blocklists: [], allow: [], deny: [], upstreams: [LAB_UPSTREAM], dnssec: false, queryLog: false },
    };
    const env = [...hub.env(), `CLOUDPAL_TCP_RELAY_USER=${RELAY_UID}`];
    const runtime = path.join(hubRoot(hub.dir), "run", "cloudpal-tcp");
    mkdirSync(path.dirname(runtime), { recursive: true, mode: 0o755 });
    mkdirSync(runtime, { mode: 0o700 });
    chownSync(runtime, RELAY_UID, RELAY_UID);
    const relay = lab.daemon("relay", hub.hubNs, "env", [
      ...env,
      "setpriv",
      `--reuid=${RELAY_UID}`,
      `--regid=${RELAY_UID}`,
      "--clear-groups",
      "--inh-caps=+net_bind_service",
      "--ambient-caps=+net_bind_service",
      process.execPath,
      hub.bundle,
      "tcp",
      "serve",
    ]);
    await waitFor(async () => lab.daemonOutput("relay").includes("waiting for keys"), 10_000, "relay");
    const applied = await lab.exec(hub.hubNs, "env", [...env, process.execPath, hub.bundle, "apply"], {
      input: JSON.stringify(state),
      allowFailure: true,
      timeoutMs: 120_000,
    });
    if (applied.code !== 0) throw new Error(`apply failed: ${applied.stderr}`);
    // setpriv execs node: the daemon's PID is the relay's.
    const relayPid = relay.pid!;
    const idle = rssKiB(relayPid);

    // The WireGuard device.
    const wgIf = `wgbd${lab.tag}`;
    await lab.wireguard(devNs, wgIf);
    const keyFile = path.join(hub.dir, "dev.key");
    writeFileSync(keyFile, devKeys.privateKey + "\n", { mode: 0o600 });
    await lab.exec(devNs, "wg", [
      "set",
      wgIf,
      "private-key",
      keyFile,
      "peer",
      publicKeyFromPrivate(hubKey.privateKey),
      "endpoint",
      `${HUB_UNDERLAY}:51820`,
      "allowed-ips",
      "0.0.0.0/0",
    ]);
    await lab.exec(devNs, "ip", ["addr", "add", `${peers[0].ipv4}/32`, "dev", wgIf]);
    await lab.exec(devNs, "ip", ["link", "set", wgIf, "up"]);
    await lab.exec(devNs, "ip", ["route", "add", "198.51.100.0/24", "dev", wgIf]);

    // iperf3 in the internet; ss-tunnel on the device forwards 127.0.0.1:5202 to it over the TCP path.
    lab.daemon("iperf3", hub.internetNs, "iperf3", ["-s", "-B", INTERNET, "-p", "5201"]);
    const conf = path.join(hub.dir, "ss.json");
    writeFileSync(
      conf,
      JSON.stringify({
        server: HUB_UNDERLAY,
        server_port: 443,
        local_address: "127.0.0.1",
        local_port: 5202,
        password: peers[0].tcpKey,
        method: "chacha20-ietf-poly1305",
        timeout: 60,
      }),
      { mode: 0o600 },
    );
    const tunnel = lab.daemon("ss-tunnel", devNs, "ss-tunnel", ["-c", conf, "-L", `${INTERNET}:5201`]);
    await new Promise((r) => setTimeout(r, 1500));
    // The two wireguard-go processes, by their exact command line (names carry this run's PID).
    const pidOf = async (ifname: string) =>
      Number((await lab.run("pgrep", ["-xf", `wireguard-go ${ifname}`])).stdout.trim());

    async function run(label: string, host: string, port: number, procs: number[], parallel = 1) {
      const before = procs.map(ticks);
      const r = await lab.exec(
        devNs,
        "iperf3",
        ["-c", host, "-p", String(port), "-t", String(SECONDS), "-P", String(parallel), "-J"],
        { timeoutMs: 120_000 },
      );
      const cpu = procs.map((p, i) => (ticks(p) - before[i]) / 100);
      const j = JSON.parse(r.stdout) as { end: { sum_received: { bytes: number; bits_per_second: number } } };
      const gb = j.end.sum_received.bytes / 1e9;
      return {
        label,
        mbps: j.end.sum_received.bits_per_second / 1e6,
        gb,
        cpu,
        cpuPerGb: cpu.map((c) => c / gb),
      };
    }
    await waitFor(
      async () =>
        (await lab.exec(devNs, "ping", ["-c1", "-W1", INTERNET], { allowFailure: true })).code === 0,
      10_000,
      "the tunnel",
    );
    const wg = await run("WireGuard (wireguard-go)", INTERNET, 5201, [
      await pidOf(hub.hubIf),
      await pidOf(wgIf),
    ]);
    const tcp = await run("TCP path (relay, ss-tunnel)", "127.0.0.1", 5202, [relayPid, tunnel.pid!]);
    const loaded = await run("TCP path, 8 streams", "127.0.0.1", 5202, [relayPid, tunnel.pid!], 8);
    const after = rssKiB(relayPid);

    const lines = [
      `| path | throughput | hub process CPU | device process CPU | hub CPU per GB |`,
      `| --- | --- | --- | --- | --- |`,
      ...[wg, tcp, loaded].map(
        (r) =>
          `| ${r.label} | ${r.mbps.toFixed(0)} Mbit/s | ${r.cpu[0].toFixed(2)} s | ${r.cpu[1].toFixed(2)} s | ${r.cpuPerGb[0].toFixed(2)} s |`,
      ),
      "",
      `relay with 100 device keys: RSS idle ${(idle.rss / 1024).toFixed(1)} MiB; after 1 and 8 streams RSS ${(after.rss / 1024).toFixed(1)} MiB, peak ${(after.hwm / 1024).toFixed(1)} MiB`,
      `(${SECONDS} s per run, iperf3 device → internet; CPU is user+system of the named processes during the run)`,
    ];
    process.stdout.write(lines.join("\n") + "\n");
  } finally {
    await hub.cleanup();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
