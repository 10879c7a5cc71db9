/**
 * IPv6-only devices and IPv6-only networks (issue 12, bridging), in network namespaces this test creates:
 * real wireguard-go, nftables, the real agent bundle, the hub's unbound, tayga and a second unbound for DNS64,
 * and real clients (dig, curl, `wg-quick strip` + `wg setconf`).
 *
 *   v6only (family, nat64: only an IPv6 tunnel address) ─┐
 *   dual   (family, dual stack)                          ─┼─ hub ── internet: lab.example's authoritative
 *   kiosk  (offline group: no internet, nat64)           ─┘   │      server, an IPv4-only web server, and a
 *   roamer (an IPv6-only network; the endpoint is a name) ────┘      "metadata service" at 169.254.169.254
 *
 * The agent starts and stops the translator and the DNS64 resolver through CLOUDPAL_SERVICE_CONTROL, here a
 * script standing in for systemctl that runs the same commands as the units (cloud-init/units.ts) and records
 * what it was asked.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import * as path from "path";
import { buildAgentBundle } from "../../components/agent-bundle";
import { hubAddresses } from "../../model/addressing";
import { clientConfigInput, renderClientConfig } from "../../model/client-config";
import { NAT64, nat64TunCommands } from "../../model/nat64";
import type { HubState, PeerState } from "../../model/state";
import { fixedKeyPair, testPeer, TEST_SUBNETS } from "../../agent/test-support/state-fixtures";
import {
  agentEnv,
  INTERNET,
  INTERNET_HUB,
  LAB_UPSTREAM,
  startInternet,
  startWhoami,
  writeHubUnboundConfig,
} from "./netns/hub";
import { Lab, waitFor } from "./netns/lab";

jest.setTimeout(180_000);

const PORT = 51820;
const HUB = hubAddresses(TEST_SUBNETS);
const HUB6 = "fd7a:c10d:9a1::1";
/** An IPv4-only site (an A record, no AAAA) and a blocked name, both served by the internet's DNS. */
const V4ONLY = "v4only.lab.example";
const BLOCKED = "ads.lab.example";
/**
 * The IPv4-only site's address. Not a documentation address like the rest of the lab: tayga 0.9.2 refuses to
 * translate the Well-Known Prefix with 192.0.2/24, 198.51.100/24 or 203.0.113/24 too (is_private_ip4_addr in
 * its addrmap.c), as it refuses 10/8 or 169.254/16. 192.88.99.0/24 was the 6to4 relay anycast prefix, retired
 * by RFC 7526: global, and no real site uses it.
 */
const SITE4 = "192.88.99.10";
/** What DNS64 makes of SITE4 with the Well-Known Prefix. */
const V4ONLY_SYNTH = "64:ff9b::c058:630a";
const METADATA = "169.254.169.254";
/** The roamer's IPv6-only network to the hub, and the hub's name with both records. */
const ROAM_HUB6 = "2001:db8:77::1";
const ROAM_DEV6 = "2001:db8:77::2";
const HUB_NAME = "hub.lab.example";

const lab = new Lab();
const tag = lab.tag;
let dir: string;
let bundle: string;
let hubNs: string;
let internetNs: string;
const hubIf = `wgh${tag}`;
const hubKey = fixedKeyPair(`hub64-${tag}`);
const netnsEtc: string[] = [];

interface Device {
  readonly ns: string;
  readonly ifname: string;
  readonly peer: PeerState;
  readonly keys: { privateKey: string; publicKey: string };
}
const devices = new Map<string, Device>();
const dev = (name: string): Device => devices.get(name)!;

function state(nat64: readonly string[]): HubState {
  return {
    version: 1,
    hub: {
      privateKey: hubKey.privateKey,
      listenPort: PORT,
      endpoint: `${HUB_NAME}:${PORT}`,
      sshPort: 22,
      sshAllowedCidrs: ["192.0.2.0/24"],
      ...TEST_SUBNETS,
    },
    mode: "vpn",
    groups: [
      { name: "family", reaches: ["family"], internet: true },
      { name: "offline", reaches: [], internet: false },
    ],
    peers: [...devices.values()].map((d) =>
      nat64.includes(d.peer.name) ? { ...d.peer, nat64: true } : d.peer,
    ),
    dns: {
      blocklists: [],
      allow: [],
      deny: [BLOCKED],
      upstreams: [LAB_UPSTREAM],
      dnssec: false,
      queryLog: false,
    },
  };
}

const svcLog = () => path.join(dir, "svc.log");
const svcCalls = () => (existsSync(svcLog()) ? readFileSync(svcLog(), "utf8").trim().split("\n") : []);

function agent(args: string[], input?: string) {
  return lab.exec(
    hubNs,
    "env",
    [
      ...agentEnv(dir, hubIf),
      `CLOUDPAL_SERVICE_CONTROL=${JSON.stringify([path.join(dir, "svc.sh")])}`,
      process.execPath,
      bundle,
      ...args,
    ],
    { input, allowFailure: true, timeoutMs: 60_000 },
  );
}

async function apply(s: HubState): Promise<string> {
  const r = await agent(["apply"], JSON.stringify(s));
  if (r.code !== 0) throw new Error(`apply failed: ${r.stderr}`);
  return r.stdout + r.stderr;
}

/**
 * systemctl for the NAT64 units, as far as this lab needs it: `restart` runs what the units run (tayga --mktun,
 * the TUN device's host side from nat64TunCommands(), tayga, unbound -d -p -c), `disable --now` stops both and
 * removes the TUN device. Daemons are detached from the agent's pipes and tracked by PID files. Every command
 * runs with the capability bounding set of its unit (CapabilityBoundingSet=, cloud-init/units.ts) and no new
 * privileges, as systemd would run it, so a capability the units do not grant fails here too.
 */
function writeServiceControl(): void {
  const root = path.join(dir, "hub");
  const tayga = path.join(root, NAT64.files.tayga);
  const dns64 = path.join(root, NAT64.files.dns64);
  const wrapper = path.join(dir, "dns64-wrapper.conf");
  // The agent's file as the unit reads it, with logging to stderr for this test's output.
  writeFileSync(wrapper, `server:\n    use-syslog: no\n    verbosity: 1\ninclude: "${dns64}"\n`);
  const script = `#!/bin/bash
set -u
echo "$*" >> ${JSON.stringify(svcLog())}
d=${JSON.stringify(dir)}
t="setpriv --bounding-set=-all,+net_admin --inh-caps=-all --no-new-privs"
u="setpriv --bounding-set=-all,+setuid,+setgid,+net_bind_service --inh-caps=-all --no-new-privs"
stop() {
  for p in tayga dns64; do
    if [ -f "$d/$p.pid" ]; then kill "$(cat "$d/$p.pid")" 2>/dev/null; rm -f "$d/$p.pid"; fi
  done
  sleep 0.3
  $t tayga --rmtun --config ${JSON.stringify(tayga)} >/dev/null 2>&1 || true
}
start() {
  mkdir -p ${JSON.stringify(path.join(root, NAT64.dataDir))}
  $t tayga --mktun --config ${JSON.stringify(tayga)} || exit 1
${nat64TunCommands()
  .map((a) => `  $t ip ${a.join(" ")} || exit 1`)
  .join("\n")}
  setsid $t tayga --nodetach --config ${JSON.stringify(tayga)} >>"$d/tayga.out" 2>&1 </dev/null &
  echo $! > "$d/tayga.pid"
  setsid $u unbound -d -p -c ${JSON.stringify(wrapper)} >>"$d/dns64.out" 2>&1 </dev/null &
  echo $! > "$d/dns64.pid"
}
case "$1" in
  enable) ;;
  restart) stop; start ;;
  disable) stop ;;
  *) echo "svc.sh: unexpected $*" >&2; exit 2 ;;
esac
`;
  writeFileSync(path.join(dir, "svc.sh"), script);
  chmodSync(path.join(dir, "svc.sh"), 0o755);
}

function pidAlive(file: string): boolean {
  if (!existsSync(file)) return false;
  try {
    process.kill(Number(readFileSync(file, "utf8").trim()), 0);
    return true;
  } catch {
    return false;
  }
}

/** /etc/netns/<ns>/resolv.conf: `ip netns exec` bind-mounts it over /etc/resolv.conf (ip-netns(8)). */
function resolvConf(ns: string, nameserver: string): void {
  const etc = path.join("/etc/netns", ns);
  mkdirSync(etc, { recursive: true });
  netnsEtc.push(etc);
  writeFileSync(path.join(etc, "resolv.conf"), `nameserver ${nameserver}\noptions timeout:2 attempts:2\n`);
}

/**
 * A device namespace linked to the hub by `underlay` (its /30 or /64 on both ends), with a WireGuard interface
 * holding the device's tunnel addresses (`families`) and default routes into the tunnel for them.
 */
async function addDevice(
  name: string,
  group: string,
  i: number,
  families: readonly ("4" | "6")[],
  underlay: { hub: string; device: string },
): Promise<Device> {
  const ns = await lab.namespace(`n64${i}`);
  await lab.link(
    { ns: hubNs, ifname: `vh${i}${tag}`, cidr: underlay.hub },
    { ns, ifname: `vd${i}${tag}`, cidr: underlay.device },
  );
  const keys = fixedKeyPair(`${name}64-${tag}`);
  const peer: PeerState = { ...testPeer(name, group), publicKey: keys.publicKey };
  const d: Device = { ns, ifname: `wgd${i}${tag}`, peer, keys };
  await lab.wireguard(ns, d.ifname);
  const keyFile = path.join(dir, `${name}.key`);
  writeFileSync(keyFile, keys.privateKey + "\n", { mode: 0o600 });
  await lab.exec(ns, "wg", ["set", d.ifname, "private-key", keyFile]);
  if (families.includes("4")) {
    await lab.exec(ns, "ip", ["addr", "add", `${peer.ipv4}/32`, "dev", d.ifname]);
  }
  await lab.exec(ns, "ip", ["-6", "addr", "add", `${peer.ipv6}/128`, "dev", d.ifname, "nodad"]);
  await lab.exec(ns, "ip", ["link", "set", d.ifname, "up"]);
  if (families.includes("4")) await lab.exec(ns, "ip", ["route", "add", "default", "dev", d.ifname]);
  await lab.exec(ns, "ip", ["-6", "route", "add", "default", "dev", d.ifname]);
  devices.set(name, d);
  return d;
}

/** Point a device's tunnel at the hub's underlay address. */
async function dial(d: Device, endpoint: string): Promise<void> {
  await lab.exec(d.ns, "wg", [
    "set",
    d.ifname,
    "peer",
    hubKey.publicKey,
    "endpoint",
    endpoint,
    "allowed-ips",
    "0.0.0.0/0,::/0",
    "persistent-keepalive",
    "1",
  ]);
}

async function dig(d: Device, args: string[]): Promise<string> {
  const r = await lab.exec(d.ns, "dig", ["+tries=2", "+time=2", ...args], { allowFailure: true });
  return r.stdout;
}

const answers = (out: string, type: string) =>
  out
    .split("\n")
    .filter((l) => !l.startsWith(";") && l.split(/\s+/)[3] === type)
    .map((l) => l.split(/\s+/)[4]);
const status = (out: string) => /status: ([A-Z]+)/.exec(out)?.[1];

async function curl(d: Device, url: string, extra: string[] = []): Promise<{ code: number; body: string }> {
  const r = await lab.exec(d.ns, "curl", ["-s", "--max-time", "4", ...extra, url], { allowFailure: true });
  return { code: r.code, body: r.stdout.trim() };
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), `cloudpal-nat64-${tag}-`));
  bundle = path.join(dir, "cloudpal-agent.js");
  writeFileSync(bundle, buildAgentBundle().code);
  hubNs = await lab.namespace("hub64");
  internetNs = await startInternet(lab, hubNs, dir, {
    [V4ONLY]: SITE4,
    [BLOCKED]: INTERNET,
    [HUB_NAME]: INTERNET_HUB,
  });
  mkdirSync(path.join(dir, "www"));
  writeFileSync(path.join(dir, "www", "page.txt"), "an IPv4-only page\n");
  await lab.exec(internetNs, "ip", ["addr", "add", `${SITE4}/32`, "dev", "lo"]);
  await startWhoami(lab, internetNs, SITE4, 8080, path.join(dir, "www"), "www4");
  // A stand-in for the provider's metadata service, routed from the hub (as on a cloud server).
  await lab.exec(internetNs, "ip", ["addr", "add", `${METADATA}/32`, "dev", "lo"]);
  await startWhoami(lab, internetNs, METADATA, 8080, path.join(dir, "www"), "metadata");
  await lab.exec(hubNs, "ip", ["route", "add", "default", "via", INTERNET]);
  await lab.wireguard(hubNs, hubIf);
  await addDevice("v6only", "family", 0, ["6"], { hub: "192.0.2.1/30", device: "192.0.2.2/30" });
  await addDevice("dual", "family", 1, ["4", "6"], { hub: "192.0.2.5/30", device: "192.0.2.6/30" });
  await addDevice("kiosk", "offline", 2, ["6"], { hub: "192.0.2.9/30", device: "192.0.2.10/30" });
  // The roamer's network has IPv6 only: no IPv4 address, no IPv4 route.
  const roamer = await addDevice("roamer", "family", 3, ["4", "6"], {
    hub: `${ROAM_HUB6}/64`,
    device: `${ROAM_DEV6}/64`,
  });
  expect((await lab.exec(roamer.ns, "ip", ["-4", "route", "show"])).stdout.trim()).toBe(
    `default dev ${roamer.ifname} scope link`,
  );
  for (const [name, ip] of [
    ["v6only", "192.0.2.1"],
    ["dual", "192.0.2.5"],
    ["kiosk", "192.0.2.9"],
  ])
    await dial(dev(name), `${ip}:${PORT}`);
  resolvConf(dev("v6only").ns, HUB6);
  resolvConf(dev("dual").ns, HUB.ipv4);
  writeServiceControl();
  writeHubUnboundConfig(dir);
  const out = await apply(state(["v6only", "kiosk"]));
  expect(out).toContain("nat64");
  lab.daemon("hub-dns", hubNs, "unbound", ["-d", "-c", path.join(dir, "unbound-hub", "unbound.conf")]);
  await waitFor(
    async () =>
      (
        await lab.exec(hubNs, "dig", ["+tries=1", "+time=2", `@${HUB.ipv4}`, V4ONLY], { allowFailure: true })
      ).stdout.includes("status: NOERROR"),
    20_000,
    "the hub's resolver to answer",
  ).catch((e: Error) => {
    throw new Error(`${e.message}; unbound said: ${lab.daemonOutput("hub-dns").slice(-1500)}`);
  });
  await startFilter("filter");
});

/** The DNS filter as its unit runs it (cloudpal-dns-filter.service: serve, then the redirect once it answers). */
async function startFilter(name: string): Promise<void> {
  lab.daemon(name, hubNs, "env", [...agentEnv(dir, hubIf), process.execPath, bundle, "dns-filter", "serve"]);
  const on = await agent(["dns-filter", "redirect", "on"]);
  if (on.code !== 0) throw new Error(`redirect on failed: ${on.stderr}; ${lab.daemonOutput(name)}`);
}

afterAll(async () => {
  try {
    for (const p of ["tayga", "dns64"]) {
      const file = path.join(dir ?? "", `${p}.pid`);
      if (pidAlive(file)) process.kill(Number(readFileSync(file, "utf8").trim()), "SIGKILL");
    }
    await lab.cleanup();
  } finally {
    for (const etc of netnsEtc) rmSync(etc, { recursive: true, force: true });
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
});

describe("NAT64 and DNS64 for IPv6-only devices", () => {
  it("the agent started the translator and the DNS64 resolver, once", async () => {
    expect(svcCalls()).toEqual([
      `enable ${NAT64.units.translator} ${NAT64.units.dns64}`,
      `restart ${NAT64.units.translator} ${NAT64.units.dns64}`,
    ]);
    expect(pidAlive(path.join(dir, "tayga.pid"))).toBe(true);
    expect(pidAlive(path.join(dir, "dns64.pid"))).toBe(true);
    // The same state again: nothing to do, no service touched.
    const again = await apply(state(["v6only", "kiosk"]));
    expect(again).not.toMatch(/nat64/);
    expect(svcCalls()).toHaveLength(2);
  });

  it("an IPv6-only device resolves an IPv4-only name through DNS64 and fetches its page", async () => {
    await waitFor(
      async () => answers(await dig(dev("v6only"), [`@${HUB6}`, "AAAA", V4ONLY]), "AAAA").length > 0,
      15_000,
      "DNS64 to answer",
    );
    expect(answers(await dig(dev("v6only"), [`@${HUB6}`, "AAAA", V4ONLY]), "AAAA")).toEqual([V4ONLY_SYNTH]);
    // A resolver of its own choosing is answered by the hub's DNS64 too.
    expect(answers(await dig(dev("v6only"), ["@2001:4860:4860::8888", "AAAA", V4ONLY]), "AAAA")).toEqual([
      V4ONLY_SYNTH,
    ]);
    // curl resolves through the system resolver (resolv.conf: the hub), so the address is the synthesized one.
    const page = await curl(dev("v6only"), `http://${V4ONLY}:8080/page.txt`);
    expect(page).toEqual({ code: 0, body: "an IPv4-only page" });
    // The IPv4-only site sees the hub's one IPv4.
    expect((await curl(dev("v6only"), `http://${V4ONLY}:8080/whoami`)).body).toBe(INTERNET_HUB);
  });

  it("a dual-stack device gets no synthesized AAAA for the same name", async () => {
    const aaaa = await dig(dev("dual"), [`@${HUB6}`, "AAAA", V4ONLY]);
    expect(status(aaaa)).toBe("NOERROR");
    expect(answers(aaaa, "AAAA")).toEqual([]);
    expect(answers(await dig(dev("dual"), [`@${HUB.ipv4}`, "A", V4ONLY]), "A")).toEqual([SITE4]);
    expect((await curl(dev("dual"), `http://${V4ONLY}:8080/whoami`)).body).toBe(INTERNET_HUB);
  });

  it("a blocked name stays blocked for the NAT64 device: no address of either family", async () => {
    // The filter refuses it; unbound alone (which holds no blocklist) would answer it.
    const direct = await dig(dev("dual"), [`@${HUB6}`, "A", BLOCKED]);
    expect(status(direct)).toBe("REFUSED");
    // (From loopback: the filter's output redirect leaves those alone, so unbound itself answers.)
    const fromHub = await lab.exec(hubNs, "dig", [
      "+tries=2",
      "+time=2",
      "-b",
      "127.0.0.1",
      `@${HUB.ipv4}`,
      "A",
      BLOCKED,
    ]);
    expect(answers(fromHub.stdout, "A")).toEqual([INTERNET]);
    for (const type of ["AAAA", "A"]) {
      const out = await dig(dev("v6only"), [`@${HUB6}`, type, BLOCKED]);
      // unbound, as the DNS64 resolver, forwards to the filter and turns its REFUSED into SERVFAIL (a
      // forwarder that refuses is a failed server to unbound's iterator); either way there is no address.
      expect(["REFUSED", "SERVFAIL"]).toContain(status(out));
      expect(answers(out, type)).toEqual([]);
    }
  });

  it("while the DNS filter is down the NAT64 device still gets answers (unfiltered), as every device does", async () => {
    // As systemd does when the filter dies: the process is gone and ExecStopPost takes the redirect away.
    await lab.stopDaemon("filter");
    try {
      expect((await agent(["dns-filter", "redirect", "off"])).code).toBe(0);
      // unbound holds no blocklist, so the blocked name now resolves: DNS64 reached unbound without the filter.
      await waitFor(
        async () => answers(await dig(dev("v6only"), [`@${HUB6}`, "A", BLOCKED]), "A").length > 0,
        20_000,
        "DNS64 to answer without the filter",
      );
      expect(answers(await dig(dev("v6only"), [`@${HUB6}`, "A", BLOCKED]), "A")).toEqual([INTERNET]);
    } finally {
      await startFilter("filter-again");
    }
  });

  it("the metadata service and private addresses stay out of reach through the translator", async () => {
    // The "metadata service" answers the hub itself, so only the firewall and tayga stand in the way.
    const fromHub = await lab.exec(
      hubNs,
      "curl",
      ["-s", "--max-time", "4", `http://${METADATA}:8080/whoami`],
      {
        allowFailure: true,
      },
    );
    expect(fromHub.code).toBe(0);
    expect((await curl(dev("v6only"), "http://[64:ff9b::a9fe:a9fe]:8080/whoami")).code).not.toBe(0);
    // The hub's own tunnel IPv4 (10.77.0.1) and the internet link behind it through 64:ff9b::.
    expect((await curl(dev("v6only"), "http://[64:ff9b::a4d:1]:53/")).code).not.toBe(0);
  });

  it("group rules hold for translated traffic: a device without internet gets nothing through NAT64", async () => {
    expect((await curl(dev("v6only"), `http://[${V4ONLY_SYNTH}]:8080/whoami`)).code).toBe(0);
    expect((await curl(dev("kiosk"), `http://[${V4ONLY_SYNTH}]:8080/whoami`)).code).not.toBe(0);
  });

  it("a device without nat64 cannot use the translator", async () => {
    expect((await curl(dev("dual"), `http://[${V4ONLY_SYNTH}]:8080/whoami`, ["-6"])).code).not.toBe(0);
  });

  it("revoking the last nat64 device stops the translator and DNS64; the device gets plain DNS", async () => {
    const out = await apply(state([]));
    expect(out).toContain("nat64");
    expect(svcCalls().slice(2)).toEqual([`disable --now ${NAT64.units.translator} ${NAT64.units.dns64}`]);
    expect(pidAlive(path.join(dir, "tayga.pid"))).toBe(false);
    expect(existsSync(path.join(dir, "hub", NAT64.files.tayga))).toBe(false);
    expect(
      (await lab.exec(hubNs, "ip", ["link", "show", NAT64.tunDevice], { allowFailure: true })).code,
    ).not.toBe(0);
    const aaaa = await dig(dev("v6only"), [`@${HUB6}`, "AAAA", V4ONLY]);
    expect(status(aaaa)).toBe("NOERROR");
    expect(answers(aaaa, "AAAA")).toEqual([]);
    // And again: nothing left to stop.
    expect(await apply(state([]))).not.toMatch(/nat64/);
    expect(svcCalls()).toHaveLength(3);
  });
});

describe("the endpoint as a name with A and AAAA records", () => {
  it("a device on an IPv6-only network reaches the hub by name, over IPv6", async () => {
    const roamer = dev("roamer");
    // The roamer's resolver: an unbound of its own on ::1 with the hub's name, both families, as its network's
    // resolver would give them.
    const conf = path.join(dir, "roamer-dns.conf");
    writeFileSync(
      conf,
      [
        "server:",
        '  username: ""',
        '  chroot: ""',
        `  directory: "${dir}"`,
        '  pidfile: ""',
        "  use-syslog: no",
        "  interface: ::1",
        "  access-control: ::1 allow",
        `  local-zone: "lab.example." static`,
        `  local-data: "${HUB_NAME}. 60 IN A ${INTERNET_HUB}"`,
        `  local-data: "${HUB_NAME}. 60 IN AAAA ${ROAM_HUB6}"`,
        "remote-control:",
        "  control-enable: no",
        "",
      ].join("\n"),
    );
    lab.daemon("roamer-dns", roamer.ns, "unbound", ["-d", "-p", "-c", conf]);
    resolvConf(roamer.ns, "::1");
    await waitFor(
      async () =>
        // (Refused until unbound listens: allowFailure, so the wait goes on.)
        (
          await lab.exec(roamer.ns, "dig", ["+short", "+tries=1", "+time=1", "@::1", HUB_NAME, "AAAA"], {
            allowFailure: true,
          })
        ).stdout.trim() === ROAM_HUB6,
      10_000,
      "the roamer's resolver",
    );
    // The device config CloudPal renders (endpoint = the hub's name), loaded the way wg-quick loads it:
    // `wg-quick strip` leaves the [Interface]/[Peer] keys `wg setconf` takes; `wg` resolves the name then.
    const s = state([]);
    const config = renderClientConfig(clientConfigInput(s, "roamer", { privateKey: roamer.keys.privateKey }));
    expect(config).toContain(`Endpoint = ${HUB_NAME}:${PORT}`);
    const file = path.join(dir, `wgr${tag}.conf`);
    writeFileSync(file, config, { mode: 0o600 });
    const stripped = await lab.run("wg-quick", ["strip", file]);
    const setconf = path.join(dir, "roamer.setconf");
    writeFileSync(setconf, stripped.stdout, { mode: 0o600 });
    await lab.exec(roamer.ns, "wg", ["setconf", roamer.ifname, setconf]);
    // wg picked the AAAA: the first getaddrinfo() result, and glibc sorts an unreachable family last.
    const endpoints = await lab.exec(roamer.ns, "wg", ["show", roamer.ifname, "endpoints"]);
    expect(endpoints.stdout).toContain(`[${ROAM_HUB6}]:${PORT}`);
    // (The link's IPv6 addresses may still be tentative for a second or two: duplicate address detection.)
    await waitFor(
      async () =>
        (await lab.exec(roamer.ns, "ping", ["-n", "-c", "1", "-W", "1", HUB6], { allowFailure: true }))
          .code === 0,
      15_000,
      "the roamer's tunnel to answer",
    );
    const hubSide = await lab.exec(hubNs, "wg", ["show", hubIf, "endpoints"]);
    expect(hubSide.stdout).toContain(`[${ROAM_DEV6}]:`);
  });
});
