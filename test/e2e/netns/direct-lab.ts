/**
 * The lab of the direct-connections test (test/e2e/netns-direct.test.ts) and benchmark (bench/direct.ts): a hub
 * running the real agent (apply, discovery) and devices running the real helper bundle behind nftables NAT
 * routers, all on one "wan" bridge.
 *
 *                         wan (a bridge: the internet)
 *     ┌─────────┬──────────────┼──────────────┬───────────────┬─────────┬────────┐
 *    hub     nat-a          nat-b          nat-lan         nat-sym    stock    guest
 *  (agent)     │              │            ┌──┴──┐            │     (no helper) (helper)
 *           dev a          dev b        lan1   lan2        dev sym
 *   nat-a, nat-b, nat-lan: masquerade (endpoint-independent mapping); nat-sym: masquerade random (per destination)
 *
 * `all: false` builds only the hub, a and b.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import * as path from "path";
import { buildAgentBundle } from "../../../components/agent-bundle";
import { buildHelperBundle } from "../../../components/helper-bundle";
import { publicKeyFromPrivate } from "../../../model/keys";
import type { PairReport } from "../../../model/direct";
import type { HubState, PeerState } from "../../../model/state";
import { fixedKeyPair, testPeer, TEST_SUBNETS } from "../../../agent/test-support/state-fixtures";
import { agentEnv, LAB_UPSTREAM, writeHubUnboundConfig } from "./hub";
import { Lab, waitFor } from "./lab";

export interface Device {
  readonly name: string;
  readonly ns: string;
  readonly ifname: string;
  readonly peer: PeerState;
  readonly statusFile: string;
}

export interface HelperStatus {
  nat: string;
  self?: { name: string; endpoint?: string };
  pairs: Record<string, PairReport>;
}

export type DirectLab = Awaited<ReturnType<typeof directLab>>;

export async function directLab(lab: Lab, all: boolean, startHelpers: boolean) {
  const PORT = 51820;
  const HUB_PUBLIC = "203.0.113.1";
  const HUB_V4 = "10.77.0.1";

  const tag = lab.tag;
  let dir = "";
  let agentBundle = "";
  let helperBundle = "";
  let hubNs = "";
  let wanNs = "";
  const hubIf = `wgh${tag}`;
  const hubKey = fixedKeyPair(`hub-${tag}`);
  const hubPublicKey = publicKeyFromPrivate(hubKey.privateKey);
  const natNs: Record<string, string> = {};
  const dev: Record<string, Device> = {};

  function state(peers: readonly PeerState[]): HubState {
    return {
      version: 1,
      hub: {
        privateKey: hubKey.privateKey,
        listenPort: PORT,
        // The extra WireGuard ports (model/public-ports.ts): 443 is the helpers' second NAT vantage point.
        wireguardExtraPorts: [443, 53],
        sshPort: 22,
        sshAllowedCidrs: ["192.0.2.0/24"],
        ...TEST_SUBNETS,
      },
      mode: "mesh-only",
      groups: [
        { name: "family", reaches: ["family"], internet: false },
        { name: "guest", reaches: [], internet: false },
      ],
      peers: [...peers],
      dns: { blocklists: [], allow: [], deny: [], upstreams: [LAB_UPSTREAM], dnssec: false, queryLog: false },
    };
  }

  async function agent(args: string[], input?: string) {
    return lab.exec(hubNs, "env", [...agentEnv(dir, hubIf), process.execPath, agentBundle, ...args], {
      input,
      allowFailure: true,
      timeoutMs: 60_000,
    });
  }

  async function apply(s: HubState): Promise<void> {
    const r = await agent(["apply"], JSON.stringify(s));
    if (r.code !== 0) throw new Error(`apply failed: ${r.stderr}`);
  }

  function helperStatus(d: Device): HelperStatus | undefined {
    try {
      return JSON.parse(readFileSync(d.statusFile, "utf8")) as HelperStatus;
    } catch {
      return undefined;
    }
  }

  const pathOf = (d: Device, other: string) => helperStatus(d)?.pairs[other];

  async function waitDirect(a: Device, b: Device, timeoutMs: number): Promise<number> {
    const start = Date.now();
    await waitFor(
      async () => pathOf(a, b.name)?.path === "direct" && pathOf(b, a.name)?.path === "direct",
      timeoutMs,
      `${a.name} ↔ ${b.name} direct (${JSON.stringify(pathOf(a, b.name))}, ${JSON.stringify(pathOf(b, a.name))})`,
    );
    return Date.now() - start;
  }

  /** Packets the hub forwarded from a to b (an nft counter in a table of the test's own). */
  async function hubForwarded(a: Device, b: Device): Promise<number> {
    const r = await lab.exec(hubNs, "nft", ["list", "chain", "inet", "lab_count", "count"]);
    const line = r.stdout
      .split("\n")
      .find((l) => l.includes(`ip saddr ${a.peer.ipv4} ip daddr ${b.peer.ipv4}`));
    return Number(/packets (\d+)/.exec(line ?? "")?.[1] ?? NaN);
  }

  async function ping(a: Device, to: string, count: number, interval = "0.2") {
    const r = await lab.exec(a.ns, "ping", ["-n", "-q", "-c", String(count), "-i", interval, "-W", "1", to], {
      allowFailure: true,
      timeoutMs: 120_000,
    });
    const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
    return { sent: Number(m?.[1] ?? 0), received: Number(m?.[2] ?? 0) };
  }

  async function wgPeers(d: Device): Promise<string[]> {
    return (await lab.exec(d.ns, "wg", ["show", d.ifname, "peers"])).stdout.split("\n").filter(Boolean);
  }

  /** A wireguard-go device in `ns` whose only peer is the hub, as a stock config makes it. */
  async function device(name: string, group: string, ns: string, i: number): Promise<Device> {
    const keys = fixedKeyPair(`${name}-${tag}`);
    const peer = { ...testPeer(name, group), publicKey: keys.publicKey };
    const d: Device = {
      name,
      ns,
      ifname: `wgd${i}${tag}`,
      peer,
      statusFile: path.join(dir, `${name}.status.json`),
    };
    await lab.wireguard(ns, d.ifname);
    const keyFile = path.join(dir, `${name}.key`);
    writeFileSync(keyFile, keys.privateKey + "\n", { mode: 0o600 });
    await lab.exec(ns, "wg", ["set", d.ifname, "private-key", keyFile]);
    await lab.exec(ns, "wg", [
      "set",
      d.ifname,
      "peer",
      hubPublicKey,
      "endpoint",
      `${HUB_PUBLIC}:${PORT}`,
      "allowed-ips",
      `${TEST_SUBNETS.ipv4Subnet},${TEST_SUBNETS.ipv6Prefix}`,
      "persistent-keepalive",
      "25",
    ]);
    await lab.exec(ns, "ip", ["addr", "add", `${peer.ipv4}/32`, "dev", d.ifname]);
    await lab.exec(ns, "ip", ["addr", "add", `${peer.ipv6}/128`, "dev", d.ifname]);
    await lab.exec(ns, "ip", ["link", "set", d.ifname, "up"]);
    await lab.exec(ns, "ip", ["route", "add", TEST_SUBNETS.ipv4Subnet, "dev", d.ifname]);
    await lab.exec(ns, "ip", ["route", "add", TEST_SUBNETS.ipv6Prefix, "dev", d.ifname]);
    dev[name] = d;
    return d;
  }

  function startHelper(d: Device): void {
    lab.daemon(`helper ${d.name}`, d.ns, process.execPath, [
      helperBundle,
      "run",
      "--interface",
      d.ifname,
      "--hub",
      HUB_V4,
      "--hub-key",
      hubPublicKey,
      "--status",
      d.statusFile,
    ]);
  }

  /** A NAT router on the wan at `wanIp`, with a LAN bridge; returns its namespace. */
  async function nat(role: string, wanIp: string, lanPrefix: string, random = false): Promise<string> {
    const ns = await lab.namespace(role);
    await lab.plug(wanNs, "br0", `w${role.slice(-1)}${tag}`, { ns, ifname: "wan0", cidr: `${wanIp}/24` });
    await lab.bridge(ns, "lan0");
    await lab.exec(ns, "ip", ["addr", "add", `${lanPrefix}.1/24`, "dev", "lan0"]);
    await lab.natRouter(ns, "wan0", random);
    natNs[role] = ns;
    return ns;
  }

  let lanPorts = 0;

  /** A device namespace on a NAT router's LAN at `ip`. */
  async function onLan(natRole: string, name: string, ip: string, lanPrefix: string): Promise<string> {
    const ns = await lab.namespace(name);
    await lab.plug(natNs[natRole]!, "lan0", `l${++lanPorts}${tag}`, {
      ns,
      ifname: "eth0",
      cidr: `${ip}/24`,
    });
    await lab.exec(ns, "ip", ["route", "add", "default", "via", `${lanPrefix}.1`]);
    return ns;
  }

  async function cleanup(): Promise<void> {
    if (process.env.DIRECT_DEBUG)
      for (const n of lab.daemonNames()) process.stdout.write(`--- ${n}\n${lab.daemonOutput(n)}\n`);
    try {
      await lab.cleanup();
    } finally {
      if (dir) rmSync(dir, { recursive: true, force: true });
    }
  }

  try {
    dir = mkdtempSync(path.join(tmpdir(), `cloudpal-direct-${tag}-`));
    agentBundle = path.join(dir, "cloudpal-agent.js");
    writeFileSync(agentBundle, buildAgentBundle().code);
    helperBundle = path.join(dir, "cloudpal-helper.js");
    writeFileSync(helperBundle, buildHelperBundle().code);

    wanNs = await lab.namespace("wan");
    await lab.bridge(wanNs, "br0");
    hubNs = await lab.namespace("hub");
    await lab.plug(wanNs, "br0", `wh${tag}`, { ns: hubNs, ifname: "eth0", cidr: `${HUB_PUBLIC}/24` });
    await lab.wireguard(hubNs, hubIf);

    await nat("nata", "203.0.113.11", "192.168.11");
    await nat("natb", "203.0.113.12", "192.168.12");
    if (all) {
      await nat("natl", "203.0.113.13", "192.168.13");
      await nat("nats", "203.0.113.14", "192.168.14", true);
    }

    await device("a", "family", await onLan("nata", "a", "192.168.11.2", "192.168.11"), 1);
    await device("b", "family", await onLan("natb", "b", "192.168.12.2", "192.168.12"), 2);
    if (all) {
      await device("lan1", "family", await onLan("natl", "lan1", "192.168.13.2", "192.168.13"), 3);
      await device("lan2", "family", await onLan("natl", "lan2", "192.168.13.3", "192.168.13"), 4);
      await device("sym", "family", await onLan("nats", "sym", "192.168.14.2", "192.168.14"), 5);
      const stockNs = await lab.namespace("stock");
      await lab.plug(wanNs, "br0", `wp${tag}`, { ns: stockNs, ifname: "eth0", cidr: "203.0.113.20/24" });
      await device("stock", "family", stockNs, 6);
      const guestNs = await lab.namespace("guest");
      await lab.plug(wanNs, "br0", `wg${tag}`, { ns: guestNs, ifname: "eth0", cidr: "203.0.113.21/24" });
      await device("guest", "guest", guestNs, 7);
    }

    await apply(state(Object.values(dev).map((d) => d.peer)));
    lab.daemon("hub-dns", hubNs, "unbound", ["-d", "-c", writeHubUnboundConfig(dir)]);
    // What the hub forwards between a and b, counted by the test's own table.
    const [a, b] = [dev.a!, dev.b!];
    await lab.exec(hubNs, "nft", ["-f", "-"], {
      input: [
        "table inet lab_count {",
        "  chain count {",
        "    type filter hook forward priority -10; policy accept;",
        `    ip saddr ${a.peer.ipv4} ip daddr ${b.peer.ipv4} counter`,
        `    ip saddr ${b.peer.ipv4} ip daddr ${a.peer.ipv4} counter`,
        "  }",
        "}",
        "",
      ].join("\n"),
    });
    lab.daemon("discovery", hubNs, "env", [
      ...agentEnv(dir, hubIf),
      process.execPath,
      agentBundle,
      "discovery",
    ]);
    await waitFor(
      async () => lab.daemonOutput("discovery").includes("listening"),
      10_000,
      "discovery to listen",
    );
    if (startHelpers)
      for (const name of ["a", "b", "lan1", "lan2", "sym", "guest"]) if (dev[name]) startHelper(dev[name]!);
  } catch (e) {
    await cleanup();
    throw e;
  }
  return {
    dev,
    natNs,
    hubNs,
    hubPublicKey,
    state,
    agent,
    apply,
    helperStatus,
    pathOf,
    waitDirect,
    hubForwarded,
    ping,
    wgPeers,
    startHelper,
    cleanup,
  };
}
