/**
 * Reaching the hub through restrictive networks (issue 11, tier 1), in network namespaces this test creates:
 * real wireguard-go on both ends, the real agent bundle's `apply` (nftables, unbound) and `peer config --port`,
 * nftables in a "campus" that lets only some UDP ports out, and nmap scanning the hub from the internet.
 *
 *   device ── veth ── campus (nft: forward only UDP to the allowed ports; masquerade) ── veth ── hub ── internet
 *                                                                                          (nmap, dig, upstream DNS)
 *
 * The ports the hub should answer on come from model/public-ports.ts (through the agent's statePublicPorts),
 * never from a list written here. Needs root, nmap and scripts/install-test-deps.sh.
 */
import { mkdtempSync, rmSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import * as path from "path";
import { buildAgentBundle } from "../../components/agent-bundle";
import { statePublicPorts } from "../../agent/src/nftables-ruleset";
import { parseWgDump } from "../../agent/src/wireguard-config";
import { fixedKeyPair, testPeer, TEST_SUBNETS } from "../../agent/test-support/state-fixtures";
import { DEVICE_KEY_PLACEHOLDER } from "../../model/client-config";
import type { HubState } from "../../model/state";
import {
  agentEnv,
  INTERNET,
  INTERNET_HUB,
  LAB_UPSTREAM,
  startInternet,
  writeHubUnboundConfig,
} from "./netns/hub";
import { Lab, waitFor } from "./netns/lab";

jest.setTimeout(180_000);

const HUB_V4 = "10.77.0.1";
/** The hub's address on the campus side (its public address, as the device dials it). */
const HUB_PUBLIC = "203.0.113.1";
const CAMPUS_WAN = "203.0.113.2";
/** The same link's IPv6 ends (documentation prefix). */
const HUB_PUBLIC6 = "2001:db8:c::1";
const CAMPUS_WAN6 = "2001:db8:c::2";
const LISTEN_PORT = 51820;

const lab = new Lab();
const tag = lab.tag;
const hubIf = `wgh${tag}`;
const devIf = `wgd${tag}`;
/** The campus's interfaces: towards the device (LAN) and towards the hub (WAN). */
const campusLan = `vcd${tag}`;
const campusWan = `vch${tag}`;
const deviceKeys = fixedKeyPair(`reach-laptop-${tag}`);
const laptop = { ...testPeer("laptop", "family"), publicKey: deviceKeys.publicKey };
let dir: string;
let bundle: string;
let hubNs: string;
let campusNs: string;
let devNs: string;
let internetNs: string;

const state: HubState = {
  version: 1,
  hub: {
    privateKey: fixedKeyPair(`reach-hub-${tag}`).privateKey,
    listenPort: LISTEN_PORT,
    wireguardExtraPorts: [443, 53],
    endpoint: `${HUB_PUBLIC}:${LISTEN_PORT}`,
    sshPort: 22,
    // The internet namespace is where the scan comes from: SSH must answer it, as it answers the operator.
    sshAllowedCidrs: [`${INTERNET}/32`, `${CAMPUS_WAN6}/128`],
    ...TEST_SUBNETS,
  },
  mode: "vpn",
  groups: [{ name: "family", reaches: ["family"], internet: true }],
  peers: [laptop],
  dns: { blocklists: [], allow: [], deny: [], upstreams: [LAB_UPSTREAM], dnssec: false, queryLog: false },
};

async function agent(args: string[], input?: string) {
  return lab.exec(hubNs, "env", [...agentEnv(dir, hubIf), process.execPath, bundle, ...args], {
    input,
    allowFailure: true,
    timeoutMs: 60_000,
  });
}

/** The campus lets the LAN send UDP only to `ports`, and counts replies from the hub by source port. */
async function campusAllows(ports: readonly number[]): Promise<void> {
  const ruleset = [
    "table inet campus {}",
    "delete table inet campus",
    "table inet campus {",
    `  set udp_out { type inet_service; elements = { ${ports.join(", ")} } }`,
    "  counter from_dialled {}",
    "  counter from_listen_port {}",
    "  chain forward {",
    "    type filter hook forward priority filter; policy drop;",
    `    iifname "${campusWan}" udp sport @udp_out counter name "from_dialled"`,
    `    iifname "${campusWan}" udp sport ${LISTEN_PORT} counter name "from_listen_port"`,
    "    ct state established,related accept",
    `    iifname "${campusLan}" udp dport @udp_out accept`,
    "  }",
    "  chain postrouting {",
    "    type nat hook postrouting priority srcnat; policy accept;",
    `    oifname "${campusWan}" masquerade`,
    "  }",
    "}",
    "",
  ].join("\n");
  await lab.exec(campusNs, "nft", ["-f", "-"], { input: ruleset });
}

async function campusCounter(name: string): Promise<number> {
  const r = await lab.exec(campusNs, "nft", ["list", "counter", "inet", "campus", name]);
  return Number(/packets (\d+)/.exec(r.stdout)?.[1] ?? NaN);
}

/**
 * The device's config as the hub's agent prints it (`peer config laptop [--port P]`), with the device's own
 * private key filled in, loaded into the device's wireguard-go the way wg-quick would (`wg-quick strip`, then
 * `wg setconf`, which also drops any session, so the next packet needs a new handshake). Returns the text.
 */
async function deviceUses(port?: number, endpoint?: string): Promise<string> {
  const r = await agent([
    "peer",
    "config",
    "laptop",
    ...(port !== undefined ? ["--port", String(port)] : []),
    ...(endpoint !== undefined ? ["--endpoint", endpoint] : []),
  ]);
  if (r.code !== 0) throw new Error(`peer config failed: ${r.stderr}`);
  const file = path.join(dir, `${devIf}.conf`);
  writeFileSync(file, r.stdout.replace(DEVICE_KEY_PLACEHOLDER, deviceKeys.privateKey), { mode: 0o600 });
  const stripped = path.join(dir, "device.wg");
  writeFileSync(stripped, (await lab.run("wg-quick", ["strip", file])).stdout, { mode: 0o600 });
  await lab.exec(devNs, "wg", ["setconf", devIf, stripped]);
  return r.stdout;
}

async function handshake(): Promise<number> {
  const dump = parseWgDump((await lab.exec(devNs, "wg", ["show", devIf, "dump"])).stdout);
  return dump.peers[0]?.latestHandshake ?? 0;
}

/** Whether the device reaches the hub's tunnel address (a few rounds: a first handshake may take a moment). */
async function tunnelWorks(rounds = 3): Promise<boolean> {
  for (let i = 0; i < rounds; i++) {
    const r = await lab.exec(devNs, "ping", ["-n", "-c", "2", "-i", "0.2", "-W", "1", HUB_V4], {
      allowFailure: true,
    });
    if (r.code === 0) return true;
  }
  return false;
}

interface Scan {
  /** port → state, for every port nmap lists (those not in the "ignored" majority). */
  readonly listed: ReadonlyMap<number, string>;
  readonly ignored: { readonly state: string; readonly count: number } | undefined;
}

/** nmap from `from` (the internet namespace unless said) against `target`, read from its grepable output. */
async function scan(kind: "tcp" | "udp", target: string, ports: string, from = internetNs): Promise<Scan> {
  const r = await lab.exec(
    from,
    "nmap",
    [
      ...(target.includes(":") ? ["-6"] : []),
      kind === "tcp" ? "-sS" : "-sU",
      "-p",
      ports,
      "-n",
      "-Pn",
      "--min-rate",
      "20000",
      "--max-retries",
      "1",
      "--host-timeout",
      "60s",
      "-oG",
      "-",
      target,
    ],
    { timeoutMs: 90_000 },
  );
  const listed = new Map<number, string>();
  for (const entry of /\tPorts: ([^\t\n]*)/.exec(r.stdout)?.[1]?.split(", ") ?? []) {
    const [port, portState] = entry.split("/");
    listed.set(Number(port), portState);
  }
  const ignored = /Ignored State: (\S+) \((\d+)\)/.exec(r.stdout);
  return { listed, ignored: ignored ? { state: ignored[1], count: Number(ignored[2]) } : undefined };
}

/** Ports that answered: "open" (an application replied) or "closed" (the kernel did: RST or port unreachable). */
function answered(s: Scan): number[] {
  return [...s.listed]
    .filter(([, st]) => st === "open" || st === "closed")
    .map(([p]) => p)
    .sort((a, b) => a - b);
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), `cloudpal-reach-${tag}-`));
  bundle = path.join(dir, "cloudpal-agent.js");
  writeFileSync(bundle, buildAgentBundle().code);

  hubNs = await lab.namespace("hub");
  campusNs = await lab.namespace("campus");
  devNs = await lab.namespace("dev");
  internetNs = await startInternet(lab, hubNs, dir, { "www.lab.example": "198.51.100.80" });
  await lab.link(
    { ns: devNs, ifname: `vdc${tag}`, cidr: "192.168.50.2/24" },
    { ns: campusNs, ifname: campusLan, cidr: "192.168.50.1/24" },
  );
  await lab.link(
    { ns: campusNs, ifname: campusWan, cidr: `${CAMPUS_WAN}/24` },
    { ns: hubNs, ifname: `vhc${tag}`, cidr: `${HUB_PUBLIC}/24` },
  );
  await lab.exec(devNs, "ip", ["route", "add", "default", "via", "192.168.50.1"]);
  await lab.exec(campusNs, "sysctl", ["-q", "-w", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]);
  for (const [ns, dev, cidr] of [
    [devNs, `vdc${tag}`, "fd00:50::2/64"],
    [campusNs, campusLan, "fd00:50::1/64"],
    [campusNs, campusWan, `${CAMPUS_WAN6}/64`],
    [hubNs, `vhc${tag}`, `${HUB_PUBLIC6}/64`],
  ])
    await lab.exec(ns, "ip", ["-6", "addr", "add", cidr, "dev", dev, "nodad"]);
  await lab.exec(devNs, "ip", ["-6", "route", "add", "default", "via", "fd00:50::1"]);
  // The hub answers closed UDP ports with "port unreachable" as fast as nmap asks: without this the kernel's
  // ICMP rate limits (per namespace) would hide a port that the firewall wrongly lets through.
  await lab.exec(hubNs, "sysctl", [
    "-q",
    "-w",
    "net.ipv4.icmp_ratelimit=0",
    "net.ipv4.icmp_msgs_per_sec=1000000",
    "net.ipv4.icmp_msgs_burst=1000000",
    "net.ipv6.icmp.ratelimit=0",
  ]);

  await lab.wireguard(hubNs, hubIf);
  await lab.wireguard(devNs, devIf);
  await lab.exec(devNs, "ip", ["addr", "add", `${laptop.ipv4}/32`, "dev", devIf]);
  await lab.exec(devNs, "ip", ["link", "set", devIf, "up"]);
  await lab.exec(devNs, "ip", ["route", "add", TEST_SUBNETS.ipv4Subnet, "dev", devIf]);
});

afterAll(async () => {
  try {
    await lab.cleanup();
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
});

describe("reaching the hub through restrictive networks", () => {
  it("control: before the hub's firewall is applied, the scan sees every port of a range answer", async () => {
    // Shows that the scan below can see a port the firewall lets through (closed = the kernel answered).
    const tcp = await scan("tcp", INTERNET_HUB, "1000-1999");
    const udp = await scan("udp", INTERNET_HUB, "1000-1999");
    expect(tcp.ignored).toEqual({ state: "closed", count: 1000 });
    expect(udp.ignored).toEqual({ state: "closed", count: 1000 });
    expect((await scan("udp", HUB_PUBLIC6, "1000-1999", campusNs)).ignored).toEqual({
      state: "closed",
      count: 1000,
    });

    const unboundConf = writeHubUnboundConfig(dir);
    const applied = await agent(["apply"], JSON.stringify(state));
    expect({ code: applied.code, stderr: applied.stderr }).toEqual({ code: 0, stderr: expect.any(String) });
    // Like systemd at boot: unbound starts and reads the files the agent wrote.
    lab.daemon("hub-dns", hubNs, "unbound", ["-d", "-c", unboundConf]);
    // unbound's own line: status as a whole also reports the DNS filter, which this test does not run.
    await waitFor(
      async () => (await agent(["status"])).stdout.includes("ok   unbound"),
      10_000,
      "hub unbound",
    );
    // The redirect is part of the ruleset the agent compares with what is loaded: a second apply is a no-op.
    expect((await agent(["apply"], JSON.stringify(state))).stdout).toBe("applied: nothing changed\n");
  });

  it("behind a campus that lets only UDP 443 out: the normal config gets no handshake, the --port 443 one does, and replies leave from 443", async () => {
    await campusAllows([443]);
    const normal = await deviceUses();
    expect(normal).toContain(`Endpoint = ${HUB_PUBLIC}:${LISTEN_PORT}\n`);
    expect(await tunnelWorks(1)).toBe(false);
    expect(await handshake()).toBe(0);

    const alternate = await deviceUses(443);
    // The same device: same keys and addresses, only the endpoint's port differs.
    expect(alternate).toBe(normal.replace(`:${LISTEN_PORT}\n`, ":443\n"));
    expect(await tunnelWorks()).toBe(true);
    expect(await handshake()).toBeGreaterThan(0);
    // Conntrack undid the redirect on the way out: the campus saw replies from 443, none from the listen port.
    expect(await campusCounter("from_dialled")).toBeGreaterThan(0);
    expect(await campusCounter("from_listen_port")).toBe(0);
    // The hub's WireGuard knows the device at the campus's address, as for any endpoint.
    const hubDump = parseWgDump((await lab.exec(hubNs, "wg", ["show", hubIf, "dump"])).stdout);
    expect(hubDump.peers[0]?.endpoint).toMatch(new RegExp(`^${CAMPUS_WAN.replace(/\./g, "\\.")}:\\d+$`));
  });

  it("behind a campus that lets only UDP 53 out, the --port 53 config works, and public port 53 is no resolver", async () => {
    await campusAllows([53]);
    await deviceUses(53);
    expect(await tunnelWorks()).toBe(true);
    // The hub's resolver answers in the tunnel ...
    const inside = await lab.exec(devNs, "dig", ["+tries=1", "+time=2", `@${HUB_V4}`, "hub.pal", "A"]);
    expect(inside.stdout).toMatch(/status: NOERROR/);
    expect(inside.stdout).toMatch(
      new RegExp(`^hub\\.pal\\.\\s.*\\sA\\s+${HUB_V4.replace(/\./g, "\\.")}$`, "m"),
    );
    // ... and not on the hub's public addresses, from the campus or from the internet: port 53 there is WireGuard's.
    for (const [ns, target] of [
      [devNs, HUB_PUBLIC],
      [internetNs, INTERNET_HUB],
    ]) {
      for (const tcp of [false, true]) {
        const r = await lab.exec(
          ns,
          "dig",
          ["+tries=1", "+time=2", ...(tcp ? ["+tcp"] : []), `@${target}`, "hub.pal", "A"],
          { allowFailure: true },
        );
        expect({ target, tcp, dnsAnswer: /status:/.test(r.stdout), code: r.code }).toEqual({
          target,
          tcp,
          dnsAnswer: false,
          code: 9, // dig: "no reply from server"
        });
      }
    }
  });

  it("from outside, only SSH and the WireGuard ports answer (the hub's public ports, model/public-ports.ts)", async () => {
    const expected = statePublicPorts(state);
    const udpPorts = expected.filter((p) => p.protocol === "udp").map((p) => p.port);
    const tcpPorts = expected.filter((p) => p.protocol === "tcp").map((p) => p.port);
    expect(udpPorts).toEqual([LISTEN_PORT, 443, 53]);

    // Every UDP port on the list completes a WireGuard handshake from outside ...
    await campusAllows(udpPorts);
    for (const port of udpPorts) {
      await deviceUses(port);
      expect([port, await tunnelWorks()]).toEqual([port, true]);
    }
    // ... and no UDP port answers anything else: WireGuard ignores what is not a handshake, unbound is not public,
    // and the firewall drops the rest silently (a port it let through would answer "port unreachable").
    const udp = await scan("udp", INTERNET_HUB, "1-65535");
    expect(answered(udp).filter((p) => !udpPorts.includes(p))).toEqual([]);
    expect(udp.ignored?.state).toBe("open|filtered");
    // TCP: exactly the listed ports answer (SSH: no sshd in the lab, so the kernel's RST is the answer).
    const tcp = await scan("tcp", INTERNET_HUB, "1-65535");
    expect(answered(tcp)).toEqual([...tcpPorts].sort((a, b) => a - b));
    expect(tcp.ignored).toEqual({ state: "filtered", count: 65535 - tcpPorts.length });
  });

  it("over IPv6 too: the --port 443 config to the hub's IPv6 endpoint works behind the campus, and only the public ports answer", async () => {
    await campusAllows([443]);
    const text = await deviceUses(443, `[${HUB_PUBLIC6}]:${LISTEN_PORT}`);
    expect(text).toContain(`Endpoint = [${HUB_PUBLIC6}]:443\n`);
    expect(await tunnelWorks()).toBe(true);
    expect(await handshake()).toBeGreaterThan(0);
    expect(await campusCounter("from_listen_port")).toBe(0);

    const expected = statePublicPorts(state);
    const udpPorts = expected.filter((p) => p.protocol === "udp").map((p) => p.port);
    const tcpPorts = expected.filter((p) => p.protocol === "tcp").map((p) => p.port);
    // From the campus's own address, which is in sshAllowedCidrs.
    const udp = await scan("udp", HUB_PUBLIC6, "1-65535", campusNs);
    expect(answered(udp).filter((p) => !udpPorts.includes(p))).toEqual([]);
    expect(udp.ignored?.state).toBe("open|filtered");
    const tcp = await scan("tcp", HUB_PUBLIC6, "1-65535", campusNs);
    expect(answered(tcp)).toEqual([...tcpPorts].sort((a, b) => a - b));
  });
});
