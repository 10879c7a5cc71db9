/**
 * The TCP path end to end (issue 11, tier 2), in network namespaces this test creates: the real agent bundle's
 * `apply` and `tcp serve` (run as its own uid, as the cloudpal-tcp unit does), real nftables, unbound and
 * wireguard-go on the hub, and Debian's `ss-local` (shadowsocks-libev) as the client, behind a "campus" that
 * drops all UDP and all TCP except to port 443.
 *
 *   tcpdev (ss-local, curl) ── campus (UDP and TCP≠443 dropped) ── hub (agent, relay, wg, nft, unbound) ── internet
 *                                                                     ├─ wg ── phone   (family, web on :8080)
 *                                                                     └─ wg ── visitor (guest, web on :8080)
 */
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import { randomBytes } from "crypto";
import * as path from "path";
import { buildAgentBundle } from "../../components/agent-bundle";
import { publicKeyFromPrivate } from "../../model/keys";
import type { HubState, PeerState } from "../../model/state";
import { fixedKeyPair, testPeer, TEST_SUBNETS } from "../../agent/test-support/state-fixtures";
import {
  agentEnv,
  hubRoot,
  INTERNET,
  INTERNET_HUB,
  LAB_UPSTREAM,
  startFixtureHttp,
  startInternet,
  writeHubUnboundConfig,
} from "./netns/hub";
import { Lab, waitFor } from "./netns/lab";

jest.setTimeout(180_000);

const PORT = 51820;
const TCP_PORT = 443;
/** The relay's uid in the lab: no passwd entry is needed for setpriv or nft's `meta skuid`. */
const RELAY_UID = 64_000 + (process.pid % 1000);
const HANDSHAKE_MS = 3000;
const METADATA = "169.254.169.254";
const HUB_CAMPUS = "192.0.2.69";
const TOOLS = path.join(__dirname, "netns", "tcp-tools.js");

const lab = new Lab();
const tag = lab.tag;
let dir: string;
let bundle: string;
let hubNs: string;
let internetNs: string;
let campusNs: string;
let devNs: string;
const hubIf = `wgt${tag}`;
const hubKey = fixedKeyPair(`hub-tcp-${tag}`);
const laptopKey = randomBytes(32).toString("base64url");
const laptop: PeerState = { ...testPeer("laptop", "family"), tcpKey: laptopKey };
const wgPeers: { peer: PeerState; ns?: string; ifname: string; privateKey: string }[] = [];

function state(peers: readonly PeerState[]): HubState {
  return {
    version: 1,
    hub: {
      privateKey: hubKey.privateKey,
      listenPort: PORT,
      tcpPort: TCP_PORT,
      sshPort: 22,
      sshAllowedCidrs: ["192.0.2.0/24"],
      ...TEST_SUBNETS,
    },
    mode: "vpn",
    groups: [
      { name: "family", reaches: ["family"], internet: true },
      { name: "guest", reaches: [], internet: true },
    ],
    peers: [...peers],
    dns: {
      blocklists: [],
      allow: [],
      deny: ["ads.lab.example"],
      upstreams: [LAB_UPSTREAM],
      dnssec: false,
      queryLog: false,
    },
  };
}

const env = () => [
  ...agentEnv(dir, hubIf),
  `CLOUDPAL_TCP_RELAY_USER=${RELAY_UID}`,
  `CLOUDPAL_TCP_HANDSHAKE_TIMEOUT_MS=${HANDSHAKE_MS}`,
];

async function apply(s: HubState): Promise<{ out: string; endedAt: number }> {
  const r = await lab.exec(hubNs, "env", [...env(), process.execPath, bundle, "apply"], {
    input: JSON.stringify(s),
    allowFailure: true,
    timeoutMs: 60_000,
  });
  const endedAt = Date.now();
  if (r.code !== 0) throw new Error(`apply failed: ${r.stderr}`);
  return { out: r.stdout, endedAt };
}

/** An ss-local in the device namespace, SOCKS5 on 127.0.0.1:`socks`, dialling `server`. */
async function ssLocal(
  name: string,
  socks: number,
  server: string,
  port: number,
  key: string,
): Promise<void> {
  const conf = path.join(dir, `${name}.json`);
  writeFileSync(
    conf,
    JSON.stringify({
      server,
      server_port: port,
      local_address: "127.0.0.1",
      local_port: socks,
      password: key,
      method: "chacha20-ietf-poly1305",
      timeout: 60,
    }),
    { mode: 0o600 },
  );
  lab.daemon(name, devNs, "ss-local", ["-c", conf]);
  await waitFor(
    async () => (await lab.exec(devNs, "ss", ["-Hltn", `sport = :${socks}`])).stdout.includes(`${socks}`),
    5000,
    name,
  );
}

async function curl(url: string, socks = 1080, extra: string[] = []) {
  return lab.exec(
    devNs,
    "curl",
    ["-sS", "--max-time", "5", "--socks5-hostname", `127.0.0.1:${socks}`, ...extra, url],
    {
      allowFailure: true,
      timeoutMs: 20_000,
    },
  );
}

async function probe(file: string): Promise<{ received: number; closedBy: string; afterMs: number }> {
  const r = await lab.exec(
    devNs,
    process.execPath,
    [TOOLS, "probe", HUB_CAMPUS, String(TCP_PORT), file, String(HANDSHAKE_MS + 3000)],
    { timeoutMs: 20_000 },
  );
  return JSON.parse(r.stdout) as { received: number; closedBy: string; afterMs: number };
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), `cloudpal-tcp-${tag}-`));
  // The relay runs as RELAY_UID: it must reach the bundle (not the rest of the directory).
  chmodSync(dir, 0o711);
  bundle = path.join(dir, "cloudpal-agent.js");
  writeFileSync(bundle, buildAgentBundle().code, { mode: 0o644 });

  hubNs = await lab.namespace("hub");
  internetNs = await startInternet(lab, hubNs, dir, {
    "www.lab.example": INTERNET,
    "ads.lab.example": INTERNET,
  });
  mkdirSync(path.join(dir, "www"));
  writeFileSync(path.join(dir, "www", "page.txt"), "a page from the internet\n");
  await startFixtureHttp(lab, internetNs, dir);
  // The metadata address, served in the internet namespace: reachable from the hub itself (shown below).
  await lab.exec(internetNs, "ip", ["addr", "add", `${METADATA}/32`, "dev", `vi${tag}`]);
  await lab.exec(hubNs, "ip", ["route", "add", `${METADATA}/32`, "via", INTERNET]);
  lab.daemon("metadata", internetNs, process.execPath, [
    path.join(__dirname, "netns", "fixture-http.js"),
    METADATA,
    "80",
    path.join(dir, "www"),
  ]);
  lab.daemon("stream", internetNs, process.execPath, [TOOLS, "stream", INTERNET, "8081"]);

  await lab.wireguard(hubNs, hubIf);
  const hubUnboundConf = writeHubUnboundConfig(dir);

  // Two WireGuard devices with a web server on their tunnel address: phone (same group), visitor (another).
  for (const [i, name, group] of [
    [1, "phone", "family"],
    [2, "visitor", "guest"],
  ] as const) {
    const ns = await lab.namespace(`tdev${i}`);
    const underlayHub = `192.0.2.${4 * i + 1}`;
    await lab.link(
      { ns: hubNs, ifname: `vth${i}${tag}`, cidr: `${underlayHub}/30` },
      { ns, ifname: `vtd${i}${tag}`, cidr: `192.0.2.${4 * i + 2}/30` },
    );
    const keys = fixedKeyPair(`${name}-tcp-${tag}`);
    const peer = { ...testPeer(name, group), publicKey: keys.publicKey };
    const ifname = `wgt${i}${tag}`;
    await lab.wireguard(ns, ifname);
    const keyFile = path.join(dir, `${name}.key`);
    writeFileSync(keyFile, keys.privateKey + "\n", { mode: 0o600 });
    await lab.exec(ns, "wg", [
      "set",
      ifname,
      "private-key",
      keyFile,
      "peer",
      publicKeyFromPrivate(hubKey.privateKey),
      "endpoint",
      `${underlayHub}:${PORT}`,
      "allowed-ips",
      "0.0.0.0/0,::/0",
      "persistent-keepalive",
      "1",
    ]);
    await lab.exec(ns, "ip", ["addr", "add", `${peer.ipv4}/32`, "dev", ifname]);
    await lab.exec(ns, "ip", ["link", "set", ifname, "up"]);
    await lab.exec(ns, "ip", ["route", "add", TEST_SUBNETS.ipv4Subnet, "dev", ifname]);
    lab.daemon(`web-${name}`, ns, process.execPath, [
      path.join(__dirname, "netns", "fixture-http.js"),
      peer.ipv4,
      "8080",
      path.join(dir, "www"),
    ]);
    wgPeers.push({ peer, ns, ifname, privateKey: keys.privateKey });
  }

  // The campus: the device's only way out; it forwards TCP to port 443 and nothing else.
  campusNs = await lab.namespace("campus");
  devNs = await lab.namespace("tcpdev");
  await lab.link(
    { ns: devNs, ifname: `vcd${tag}`, cidr: "192.0.2.66/30" },
    { ns: campusNs, ifname: `vcc${tag}`, cidr: "192.0.2.65/30" },
  );
  await lab.link(
    { ns: campusNs, ifname: `vch${tag}`, cidr: "192.0.2.70/30" },
    { ns: hubNs, ifname: `vhc${tag}`, cidr: `${HUB_CAMPUS}/30` },
  );
  await lab.exec(devNs, "ip", ["route", "add", "default", "via", "192.0.2.65"]);
  await lab.exec(hubNs, "ip", ["route", "add", "192.0.2.64/30", "via", "192.0.2.70"]);
  await lab.exec(campusNs, "sysctl", ["-qw", "net.ipv4.ip_forward=1"]);
  await lab.exec(campusNs, "nft", ["-f", "-"], {
    input: [
      "table inet campus {",
      "  chain forward {",
      "    type filter hook forward priority filter; policy drop;",
      "    ct state established,related accept",
      "    meta l4proto tcp tcp dport 443 accept",
      "  }",
      "}",
      "",
    ].join("\n"),
  });

  // The relay, as the cloudpal-tcp unit runs it: its own uid, allowed only to bind low ports.
  const runtime = path.join(hubRoot(dir), "run", "cloudpal-tcp");
  // Its parents traversable (a recursive mkdir would give them the 0700 too), the directory its own.
  mkdirSync(path.dirname(runtime), { recursive: true, mode: 0o755 });
  mkdirSync(runtime, { mode: 0o700 });
  chownSync(runtime, RELAY_UID, RELAY_UID);
  lab.daemon("relay", hubNs, "env", [
    ...env(),
    "setpriv",
    `--reuid=${RELAY_UID}`,
    `--regid=${RELAY_UID}`,
    "--clear-groups",
    "--inh-caps=+net_bind_service",
    "--ambient-caps=+net_bind_service",
    process.execPath,
    bundle,
    "tcp",
    "serve",
  ]);
  await waitFor(
    async () => lab.daemonOutput("relay").includes("waiting for keys"),
    10_000,
    "the relay's control socket",
  );

  const first = await apply(state([laptop, ...wgPeers.map((p) => p.peer)]));
  expect(first.out).toContain("tcp relay");
  lab.daemon("hub-dns", hubNs, "unbound", ["-d", "-c", hubUnboundConf]);
  // The DNS filter, as its unit runs it (cloud-init/units.ts): started, then the redirect once it answers
  // (which needs unbound: the probe is relayed). Status counts a filter that is not filtering as a failure. The
  // denied name is refused by the filter alone: unbound holds no blocklist zone, and the upstream has its record.
  lab.daemon("dns-filter", hubNs, "env", [...env(), process.execPath, bundle, "dns-filter", "serve"]);
  const on = await lab.exec(
    hubNs,
    "env",
    [...env(), process.execPath, bundle, "dns-filter", "redirect", "on"],
    {
      allowFailure: true,
      timeoutMs: 90_000,
    },
  );
  if (on.code !== 0) throw new Error(`dns-filter redirect on: ${on.stderr}`);
  // As the agent test does: unbound answers its control socket, then names resolve through the upstream.
  await waitFor(
    async () =>
      (await lab.exec(hubNs, "env", [...env(), process.execPath, bundle, "status"], { allowFailure: true }))
        .code === 0,
    20_000,
    "hub unbound to answer unbound-control",
  ).catch((e: Error) => {
    throw new Error(`${e.message}; unbound said: ${lab.daemonOutput("hub-dns").slice(-1500)}`);
  });
  await waitFor(
    async () =>
      (
        await lab.exec(hubNs, "dig", ["+tries=1", "+time=2", "@10.77.0.1", "www.lab.example"], {
          allowFailure: true,
        })
      ).stdout.includes("status: NOERROR"),
    20_000,
    "the hub's resolver to answer www.lab.example",
  );
  await ssLocal("ss-local", 1080, HUB_CAMPUS, TCP_PORT, laptopKey);
});

afterAll(async () => {
  try {
    await lab.cleanup();
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
});

describe("the TCP path through a campus that lets only TCP 443 out", () => {
  it("the campus really blocks UDP and other TCP ports", async () => {
    const udp = await lab.exec(devNs, "dig", ["+tries=1", "+time=1", `@${HUB_CAMPUS}`, "www.lab.example"], {
      allowFailure: true,
    });
    expect(udp.stdout).not.toContain("status:");
    const ssh = await lab.exec(devNs, "curl", ["-sS", "--max-time", "2", `http://${HUB_CAMPUS}:22/`], {
      allowFailure: true,
    });
    expect(ssh.code).toBe(28); // timed out: dropped, not refused
  });

  it("the device fetches a page from the internet, the hub resolving its name", async () => {
    const page = await curl(`http://www.lab.example:8080/page.txt`);
    expect(page.stdout).toBe("a page from the internet\n");
    expect((await curl(`http://www.lab.example:8080/whoami`)).stdout).toBe(INTERNET_HUB);
  });

  it("the device reaches a same-group device by its .pal name, not another group's device", async () => {
    const [phone, visitor] = wgPeers;
    await waitFor(
      async () => (await curl(`http://phone.pal:8080/whoami`)).stdout === "10.77.0.1",
      15_000,
      "phone.pal over the TCP path",
    );
    // The visitor's web server is up (the hub itself reaches it) ...
    const direct = await lab.exec(
      hubNs,
      "curl",
      ["-sS", "--max-time", "5", `http://${visitor.peer.ipv4}:8080/whoami`],
      { allowFailure: true },
    );
    expect(direct.stdout).toBe("10.77.0.1");
    // ... but not for this device, by address or by name.
    expect((await curl(`http://${visitor.peer.ipv4}:8080/whoami`)).code).not.toBe(0);
    expect((await curl(`http://visitor.pal:8080/whoami`)).code).not.toBe(0);
    expect(phone.peer.group).toBe("family");
  });

  it("a blocked domain is refused, by the DNS filter, for the relay's own lookups and the device's DNS", async () => {
    // The same web server answers under its allowed name (above); under the blocked one the relay gets no address.
    const blocked = await curl(`http://ads.lab.example:8080/page.txt`);
    expect(blocked.code).not.toBe(0);
    expect(blocked.stdout).toBe("");
    // The upstream does have the name: unbound itself, asked from loopback as the filter asks it (the one source
    // the redirect leaves alone), resolves it.
    const unfiltered = await lab.exec(
      hubNs,
      "dig",
      ["+tries=1", "+time=2", "-b", "127.0.0.1", "@10.77.0.1", "ads.lab.example"],
      { allowFailure: true },
    );
    expect(unfiltered.stdout).toContain("status: NOERROR");
    expect(unfiltered.stdout).toContain(INTERNET);
    // The device's own DNS over the TCP path (Debian's ss-tunnel to the hub's resolver, DNS over TCP) gets the
    // filter's answer: the relay connects to the hub's port 53, which the redirect's output chain sends to the
    // filter. The filter refuses; an allowed name resolves.
    const conf = path.join(dir, "ss-tunnel.json");
    writeFileSync(
      conf,
      JSON.stringify({
        server: HUB_CAMPUS,
        server_port: TCP_PORT,
        local_address: "127.0.0.1",
        local_port: 5353,
        password: laptopKey,
        method: "chacha20-ietf-poly1305",
        timeout: 60,
      }),
      { mode: 0o600 },
    );
    lab.daemon("ss-tunnel", devNs, "ss-tunnel", ["-c", conf, "-L", "10.77.0.1:53"]);
    await waitFor(
      async () => (await lab.exec(devNs, "ss", ["-Hltn", "sport = :5353"])).stdout.includes("5353"),
      5000,
      "ss-tunnel",
    );
    const dig = (name: string) =>
      lab.exec(devNs, "dig", ["+tcp", "+tries=1", "+time=3", "-p", "5353", "@127.0.0.1", name], {
        allowFailure: true,
      });
    expect((await dig("ads.lab.example")).stdout).toContain("status: REFUSED");
    expect((await dig("www.ads.lab.example")).stdout).toContain("status: REFUSED");
    const allowed = await dig("www.lab.example");
    expect(allowed.stdout).toContain("status: NOERROR");
  });

  it("the metadata service is out of reach, in the relay and by nftables for the relay's user", async () => {
    const fromHub = await lab.exec(
      hubNs,
      "curl",
      ["-sS", "--max-time", "2", "-o", "/dev/null", "-w", "%{http_code}", `http://${METADATA}/page.txt`],
      { allowFailure: true },
    );
    expect(fromHub.stdout).toBe("200");
    expect(
      (await curl(`http://${METADATA}/page.txt`, 1080, ["-o", "/dev/null", "--max-time", "2"])).code,
    ).not.toBe(0);
    // Defense in depth: the relay's uid itself cannot open it.
    const asRelay = await lab.exec(
      hubNs,
      "setpriv",
      [
        `--reuid=${RELAY_UID}`,
        `--regid=${RELAY_UID}`,
        "--clear-groups",
        "curl",
        "-sS",
        "--max-time",
        "2",
        "-o",
        "/dev/null",
        `http://${METADATA}/page.txt`,
      ],
      { allowFailure: true },
    );
    expect(asRelay.code).toBe(28);
    const sshAsRelay = await lab.exec(
      hubNs,
      "setpriv",
      [
        `--reuid=${RELAY_UID}`,
        `--regid=${RELAY_UID}`,
        "--clear-groups",
        "curl",
        "-sS",
        "--max-time",
        "2",
        `http://${INTERNET_HUB}:22/`,
      ],
      { allowFailure: true },
    );
    expect(sshAsRelay.code).toBe(28);
  });

  it("probes get no answer and the same close as a client that went quiet: random bytes, HTTP, a replay", async () => {
    // Record a real session through a recording forwarder, and check it worked.
    const recording = path.join(dir, "recorded.bin");
    lab.daemon("recorder", devNs, process.execPath, [
      TOOLS,
      "record",
      "4443",
      HUB_CAMPUS,
      String(TCP_PORT),
      recording,
    ]);
    await waitFor(async () => lab.daemonOutput("recorder").includes("listening"), 5000, "recorder");
    await ssLocal("ss-local-rec", 1081, "127.0.0.1", 4443, laptopKey);
    expect((await curl(`http://www.lab.example:8080/page.txt`, 1081)).stdout).toBe(
      "a page from the internet\n",
    );
    const recorded = readFileSync(recording);
    const files = {
      quiet: recorded.subarray(0, 20), // a real client's first 20 bytes, then nothing
      random: randomBytes(600),
      http: Buffer.from("GET / HTTP/1.1\r\nHost: hub.example\r\nUser-Agent: Mozilla/5.0\r\n\r\n"),
      replay: recorded,
    };
    const results: Record<string, { received: number; closedBy: string; afterMs: number }> = {};
    await Promise.all(
      Object.entries(files).map(async ([name, bytes]) => {
        const file = path.join(dir, `probe-${name}.bin`);
        writeFileSync(file, bytes);
        results[name] = await probe(file);
      }),
    );
    for (const [name, r] of Object.entries(results)) {
      expect({ name, received: r.received, closedBy: r.closedBy }).toEqual({
        name,
        received: 0,
        closedBy: "server",
      });
      // Closed at the handshake deadline, like the quiet client, never early.
      expect(r.afterMs).toBeGreaterThanOrEqual(HANDSHAKE_MS - 50);
      expect(Math.abs(r.afterMs - results.quiet.afterMs)).toBeLessThan(700);
    }
  });

  it("revoking the device stops a transfer in progress and new connections within one second of apply", async () => {
    const started = Date.now();
    const transfer = lab
      .exec(
        devNs,
        "curl",
        [
          "-sS",
          "--max-time",
          "60",
          "-o",
          "/dev/null",
          "-w",
          "%{size_download}",
          "--socks5-hostname",
          "127.0.0.1:1080",
          `http://${INTERNET}:8081/`,
        ],
        { allowFailure: true, timeoutMs: 70_000 },
      )
      .then((r) => ({ ...r, at: Date.now() }));
    // The transfer is flowing through the relay before the revocation.
    await waitFor(
      async () =>
        (await lab.exec(devNs, "ss", ["-Htn", "state", "established", `dst ${HUB_CAMPUS}`])).stdout.trim() !==
        "",
      5000,
      "the transfer's connection",
    );
    await new Promise((r) => setTimeout(r, 1000));
    const withoutKey = JSON.parse(JSON.stringify({ ...laptop, tcpKey: undefined })) as PeerState;
    const revoked = await apply(state([withoutKey, ...wgPeers.map((p) => p.peer)]));
    expect(revoked.out).toContain("tcp relay");
    // A connection opened right after the apply gets nothing through.
    const fresh = await curl(`http://www.lab.example:8080/page.txt`, 1080, ["--max-time", "2"]);
    const done = await transfer;
    const cutMs = done.at - revoked.endedAt;
    process.stdout.write(
      `TCP path revocation: transfer ended ${cutMs} ms after apply returned (${Number(done.stdout) / 1e6} MB in ${(done.at - started) / 1000} s)\n`,
    );
    expect(done.code).not.toBe(0);
    expect(Number(done.stdout)).toBeGreaterThan(100_000);
    expect(cutMs).toBeLessThan(1000);
    expect(fresh.code).not.toBe(0);
    expect(fresh.stdout).toBe("");
  });
});
