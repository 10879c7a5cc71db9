/**
 * The hub's public IPv6 end to end, in network namespaces this test creates: real wireguard-go, nftables, the
 * real agent bundle (`apply`, `reconcile`, `sessions watch`) and a real HTTP server that reports who called.
 *
 *   laptop  (family, session)  ─┐
 *   phone   (family, per-site) ─┼─ hub ── internet: routes 2001:db8:1::/64 (Linode-style range) and
 *   visitor (guest,  off)      ─┘                    2001:db8:5::10 (DigitalOcean-style reserved IPv6) to the hub;
 *                                                    2001:db8:2::/64 on the link itself (Vultr-style)
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import * as path from "path";
import * as ipaddr from "ipaddr.js";
import { buildAgentBundle } from "../../components/agent-bundle";
import { publicKeyFromPrivate } from "../../model/keys";
import { peerGlobalIpv6 } from "../../model/public-ipv6";
import type { HubState, PeerState, PublicIpv6Mode, PublicIpv6State } from "../../model/state";
import { fixedKeyPair, testPeer, TEST_SUBNETS } from "../../agent/test-support/state-fixtures";
import { agentEnv, LAB_UPSTREAM, linkInternetIpv6, startInternet, startWhoami } from "./netns/hub";
import { Lab, waitFor } from "./netns/lab";

jest.setTimeout(180_000);

const PORT = 51820;
const ROUTED = "2001:db8:1::/64";
const RESERVED = "2001:db8:5::10";
const ON_LINK = "2001:db8:2::/64";
/** Three web servers in the internet, on addresses of their own. */
const SERVERS = ["2001:db8:eeee::1", "2001:db8:eeee::2", "2001:db8:eeee::3"];

interface Device {
  readonly ns: string;
  readonly ifname: string;
  readonly peer: PeerState;
  readonly underlayHub: string;
}

const lab = new Lab();
const tag = lab.tag;
let dir: string;
let bundle: string;
let hubNs: string;
let internetNs: string;
const hubIf = `wgh${tag}`;
const devices: Device[] = [];
const hubKey = fixedKeyPair(`hub6-${tag}`);
const ROUTED_HUB: PublicIpv6State = {
  addresses: [RESERVED],
  prefix: ROUTED,
  sessionIdle: 2,
  deviceAddresses: true,
};

function state(publicIpv6: PublicIpv6State, peers = devices.map((d) => d.peer)): HubState {
  return {
    version: 1,
    hub: {
      privateKey: hubKey.privateKey,
      listenPort: PORT,
      sshPort: 22,
      sshAllowedCidrs: ["192.0.2.0/24"],
      ...TEST_SUBNETS,
      publicIpv6,
    },
    mode: "vpn",
    groups: [
      { name: "family", reaches: ["family"], internet: true },
      { name: "guest", reaches: [], internet: true },
    ],
    peers: [...peers],
    dns: { blocklists: [], allow: [], deny: [], upstreams: [LAB_UPSTREAM], dnssec: false, queryLog: false },
  };
}

async function agent(args: string[], input?: string) {
  return lab.exec(hubNs, "env", [...agentEnv(dir, hubIf), process.execPath, bundle, ...args], {
    input,
    allowFailure: true,
    timeoutMs: 60_000,
  });
}

async function apply(s: HubState): Promise<string> {
  const r = await agent(["apply"], JSON.stringify(s));
  if (r.code !== 0) throw new Error(`apply failed: ${r.stderr}`);
  return r.stdout;
}

async function ping(ns: string, to: string, count = 3): Promise<boolean> {
  const r = await lab.exec(ns, "ping", ["-n", "-c", String(count), "-i", "0.2", "-W", "1", to], {
    allowFailure: true,
  });
  return r.code === 0;
}

async function reachable(ns: string, to: string): Promise<boolean> {
  for (let round = 0; round < 3; round++) if (await ping(ns, to)) return true;
  return false;
}

/** The source address the server at `server` saw, asked from the device over HTTP. */
async function whoami(d: Device, server: string): Promise<string> {
  const r = await lab.exec(d.ns, "curl", ["-s", "--max-time", "5", `http://[${server}]:8080/whoami`], {
    allowFailure: true,
  });
  if (r.code !== 0) throw new Error(`curl to ${server} from ${d.peer.name} failed (${r.code}): ${r.stderr}`);
  return ipaddr.parse(r.stdout.trim()).toString();
}

function inPrefix(address: string, prefix: string): boolean {
  return ipaddr.IPv6.parse(address).match(ipaddr.IPv6.parseCIDR(prefix));
}

/** The device's global address on the current prefix, set on its tunnel interface (as its config would). */
async function setGlobal(d: Device, publicIpv6: PublicIpv6State, old?: PublicIpv6State): Promise<string> {
  const hub = { ipv4Subnet: TEST_SUBNETS.ipv4Subnet, publicIpv6 };
  if (old !== undefined) {
    const previous = peerGlobalIpv6({ ipv4Subnet: TEST_SUBNETS.ipv4Subnet, publicIpv6: old }, d.peer)!;
    await lab.exec(d.ns, "ip", ["-6", "addr", "del", `${previous}/128`, "dev", d.ifname]);
  }
  const global = peerGlobalIpv6(hub, d.peer)!;
  await lab.exec(d.ns, "ip", ["-6", "addr", "add", `${global}/128`, "dev", d.ifname, "nodad"]);
  return global;
}

/** Drop the device's session with the hub, so the next packet needs a fresh handshake. */
async function resetDeviceSession(d: Device): Promise<void> {
  const hubPublic = publicKeyFromPrivate(hubKey.privateKey);
  await lab.exec(d.ns, "wg", ["set", d.ifname, "peer", hubPublic, "remove"]);
  await lab.exec(d.ns, "wg", [
    "set",
    d.ifname,
    "peer",
    hubPublic,
    "endpoint",
    `${d.underlayHub}:${PORT}`,
    "allowed-ips",
    "0.0.0.0/0,::/0",
  ]);
}

const sessionCount = () => (lab.daemonOutput("sessions").match(/new session: laptop/g) ?? []).length;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), `cloudpal-ipv6-${tag}-`));
  bundle = path.join(dir, "cloudpal-agent.js");
  writeFileSync(bundle, buildAgentBundle().code);
  hubNs = await lab.namespace("hub");
  internetNs = await startInternet(lab, hubNs, dir, {});
  await linkInternetIpv6(lab, hubNs, internetNs, {
    routed: [ROUTED, `${RESERVED}/128`],
    onLink: [{ prefix: ON_LINK, internet: "2001:db8:2::2", hub: "2001:db8:2::5" }],
  });
  mkdirSync(path.join(dir, "www"));
  for (const [i, server] of SERVERS.entries()) {
    await lab.exec(internetNs, "ip", ["-6", "addr", "add", `${server}/128`, "dev", "lo"]);
    await startWhoami(lab, internetNs, server, 8080, path.join(dir, "www"), `www${i}`);
  }
  await lab.wireguard(hubNs, hubIf);
  const modes: [string, string, PublicIpv6Mode][] = [
    ["laptop", "family", "session"],
    ["phone", "family", "per-site"],
    ["visitor", "guest", "off"],
  ];
  for (const [i, [name, group, mode]] of modes.entries()) {
    const ns = await lab.namespace(`d6${i}`);
    const underlayHub = `192.0.2.${4 * i + 1}`;
    await lab.link(
      { ns: hubNs, ifname: `vh${i}${tag}`, cidr: `${underlayHub}/30` },
      { ns, ifname: `vd${i}${tag}`, cidr: `192.0.2.${4 * i + 2}/30` },
    );
    const keys = fixedKeyPair(`${name}6-${tag}`);
    const peer: PeerState = { ...testPeer(name, group), publicKey: keys.publicKey, publicIpv6: mode };
    const d: Device = { ns, ifname: `wgd${i}${tag}`, peer, underlayHub };
    await lab.wireguard(ns, d.ifname);
    const keyFile = path.join(dir, `${name}.key`);
    writeFileSync(keyFile, keys.privateKey + "\n", { mode: 0o600 });
    await lab.exec(ns, "wg", ["set", d.ifname, "private-key", keyFile]);
    await resetDeviceSession(d);
    await lab.exec(ns, "ip", ["addr", "add", `${peer.ipv4}/32`, "dev", d.ifname]);
    await lab.exec(ns, "ip", ["-6", "addr", "add", `${peer.ipv6}/128`, "dev", d.ifname, "nodad"]);
    await lab.exec(ns, "ip", ["link", "set", d.ifname, "up"]);
    await lab.exec(ns, "ip", ["route", "add", TEST_SUBNETS.ipv4Subnet, "dev", d.ifname]);
    await lab.exec(ns, "ip", ["-6", "route", "add", "default", "dev", d.ifname]);
    devices.push(d);
    await setGlobal(d, ROUTED_HUB);
  }
  await apply(state(ROUTED_HUB));
});

/** The hub's session watcher, as its systemd unit runs it. */
function startSessionWatcher(): void {
  lab.daemon("sessions", hubNs, "env", [
    ...agentEnv(dir, hubIf),
    process.execPath,
    bundle,
    "sessions",
    "watch",
  ]);
}

afterAll(async () => {
  try {
    await lab.cleanup();
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
});

const [laptop, phone, visitor] = [0, 1, 2].map((i) => () => devices[i]);

describe("public IPv6 in network namespaces", () => {
  it("configures the DigitalOcean-style reserved IPv6 on the hub, and again after a reboot", async () => {
    expect(await reachable(internetNs, RESERVED)).toBe(true);
    // A reboot loses every address the kernel held; the boot unit runs `cloudpal-agent reconcile`.
    await lab.exec(hubNs, "ip", ["-6", "addr", "del", `${RESERVED}/128`, "dev", `vhi${tag}`]);
    expect(await ping(internetNs, RESERVED, 2)).toBe(false);
    const r = await agent(["reconcile"]);
    expect(`${r.stdout}${r.stderr}`).toContain("public ipv6");
    expect(await reachable(internetNs, RESERVED)).toBe(true);
  });

  it("gives devices global addresses that the group rules cover, and that the internet cannot open", async () => {
    const laptopGlobal = peerGlobalIpv6(state(ROUTED_HUB).hub, laptop().peer)!;
    const phoneGlobal = peerGlobalIpv6(state(ROUTED_HUB).hub, phone().peer)!;
    expect(inPrefix(laptopGlobal, ROUTED)).toBe(true);
    expect(await reachable(phone().ns, laptopGlobal)).toBe(true);
    expect(await reachable(laptop().ns, phoneGlobal)).toBe(true);
    // The guest reaches the hub (so its tunnel works) but no family device, by either address.
    expect(await reachable(visitor().ns, "fd7a:c10d:9a1::1")).toBe(true);
    expect(await ping(visitor().ns, laptopGlobal, 2)).toBe(false);
    expect(await ping(visitor().ns, laptop().peer.ipv6, 2)).toBe(false);
    // The prefix is routed to the hub, but nothing from the internet may open a connection to a device.
    expect(await ping(internetNs, laptopGlobal, 2)).toBe(false);
  });

  it("'off': the internet sees the hub's own (reserved) address", async () => {
    expect(await whoami(visitor(), SERVERS[0])).toBe(RESERVED);
    expect(await whoami(visitor(), SERVERS[1])).toBe(RESERVED);
  });

  it("'per-site': each site sees its own stable address from the hub's prefix", async () => {
    const seen = [];
    for (const server of SERVERS) seen.push(await whoami(phone(), server));
    for (const [i, server] of SERVERS.entries()) expect(await whoami(phone(), server)).toBe(seen[i]);
    for (const a of seen) expect(inPrefix(a, ROUTED)).toBe(true);
    expect(new Set(seen).size).toBeGreaterThan(1);
    expect(seen).not.toContain(peerGlobalIpv6(state(ROUTED_HUB).hub, phone().peer));
  });

  it("'session': one stable address per session, a new one after the device was silent", async () => {
    startSessionWatcher();
    expect(await reachable(laptop().ns, "fd7a:c10d:9a1::1")).toBe(true);
    await waitFor(async () => sessionCount() >= 1, 10_000, "the watcher to see the first session");
    const first = await whoami(laptop(), SERVERS[0]);
    expect(inPrefix(first, ROUTED)).toBe(true);
    expect(await whoami(laptop(), SERVERS[1])).toBe(first);
    expect(await whoami(laptop(), SERVERS[0])).toBe(first);
    // A connection opened in this session and still open when the next one starts keeps working.
    const held = lab.daemon("held", laptop().ns, "bash", [
      "-c",
      `exec 3<>/dev/tcp/${SERVERS[2]}/8080; sleep 6; printf 'GET /whoami HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3`,
    ]);
    // Silent for longer than sessionIdle (2 s), then a fresh handshake: a new session.
    await new Promise((r) => setTimeout(r, 3000));
    await resetDeviceSession(laptop());
    expect(await reachable(laptop().ns, "fd7a:c10d:9a1::1")).toBe(true);
    await waitFor(async () => sessionCount() >= 2, 10_000, "the watcher to see the second session");
    const second = await whoami(laptop(), SERVERS[0]);
    expect(inPrefix(second, ROUTED)).toBe(true);
    expect(second).not.toBe(first);
    expect(await whoami(laptop(), SERVERS[1])).toBe(second);
    await new Promise<void>((r) => (held.exitCode !== null ? r() : held.once("exit", () => r())));
    expect(lab.daemonOutput("held")).toContain(first);
  });

  it("an on-link /64 (Vultr-style): the hub answers neighbour discovery for the addresses it uses", async () => {
    const onLink: PublicIpv6State = { prefix: ON_LINK, onLink: true, sessionIdle: 2, deviceAddresses: true };
    for (const d of devices) await setGlobal(d, onLink, ROUTED_HUB);
    await apply(state(onLink));
    // The hub re-added the peers whose addresses changed, so their tunnels start again.
    await resetDeviceSession(phone());
    expect(await reachable(phone().ns, "fd7a:c10d:9a1::1")).toBe(true);
    const seen = [];
    try {
      for (const server of SERVERS) seen.push(await whoami(phone(), server));
    } catch (e) {
      const show = async (ns: string, args: string[]) =>
        (await lab.exec(ns, "ip", args, { allowFailure: true })).stdout;
      process.stdout.write(
        `[debug] hub proxies:\n${(await show(hubNs, ["-6", "neigh", "show", "proxy"])).split("\n").length} lines\n` +
          `[debug] inet neigh:\n${await show(internetNs, ["-6", "neigh"])}\n[debug] hub addr:\n${await show(hubNs, ["-6", "addr"])}\n` +
          `[debug] hub route:\n${await show(hubNs, ["-6", "route"])}\n[debug] phone addr:\n${await show(phone().ns, ["-6", "addr"])}\n` +
          `[debug] nft:\n${(await lab.exec(hubNs, "nft", ["list", "chain", "inet", "cloudpal", "postrouting"], { allowFailure: true })).stdout.slice(0, 3000)}\n`,
      );
      throw e;
    }
    for (const a of seen) expect(inPrefix(a, "2001:db8:2:0:8000::/65")).toBe(true);
    expect(new Set(seen).size).toBeGreaterThan(1);
    // The hub's own global address in the tunnel half answers from the internet, through the proxy.
    expect(await reachable(internetNs, "2001:db8:2:0:8000::1")).toBe(true);
    const neigh = await lab.exec(internetNs, "ip", ["-6", "neigh", "show", seen[0]]);
    expect(neigh.stdout).toMatch(/lladdr/);
  });
});
