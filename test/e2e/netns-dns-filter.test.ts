/**
 * The DNS filter end to end (agent/src/dns-filter*.ts), in network namespaces this test creates: a device behind
 * wireguard-go, the hub with the real agent bundle, its real unbound (forwarding over DNS-over-TLS to the lab's
 * internet) and the filter run as its systemd unit would run it (restarted when it dies, the redirect added
 * once it answers and removed when it exits: superviseFilter below), and a one-million-name blocklist.
 * Needs root and scripts/install-test-deps.sh.
 */
import {
  appendFileSync,
  createWriteStream,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "fs";
import { tmpdir } from "os";
import * as path from "path";
import { buildAgentBundle } from "../../components/agent-bundle";
import { publicKeyFromPrivate } from "../../model/keys";
import { DNS_FILTER_NODE_FLAGS } from "../../model/layout";
import type { HubState, PeerState } from "../../model/state";
import { fixedKeyPair, testPeer, TEST_SUBNETS } from "../../agent/test-support/state-fixtures";
import {
  agentEnv,
  hubRoot,
  INTERNET,
  LAB_UPSTREAM,
  startFixtureHttp,
  startInternet,
  writeHubUnboundConfig,
} from "./netns/hub";
import { Lab, waitFor } from "./netns/lab";

jest.setTimeout(240_000);

const HUB_V4 = "10.77.0.1";
const PORT = 51820;
const LIST_SIZE = 1_000_000;
const lab = new Lab();
const tag = lab.tag;
let dir: string;
let bundle: string;
let hubNs: string;
let devNs: string;
const hubIf = `wgh${tag}`;
const devIf = `wgd${tag}`;
const hubKey = fixedKeyPair(`hub-${tag}`);
const devKey = fixedKeyPair(`laptop-${tag}`);
const peer: PeerState = { ...testPeer("laptop", "family"), publicKey: devKey.publicKey };

function state(): HubState {
  return {
    version: 1,
    hub: {
      privateKey: hubKey.privateKey,
      listenPort: PORT,
      sshPort: 22,
      sshAllowedCidrs: ["192.0.2.0/24"],
      ...TEST_SUBNETS,
    },
    mode: "vpn",
    groups: [{ name: "family", reaches: ["family"], internet: true }],
    peers: [peer],
    dns: {
      blocklists: [`http://${INTERNET}:8080/big.txt`],
      allow: ["fine.ads.lab.example"],
      deny: ["denied.lab.example"],
      upstreams: [LAB_UPSTREAM],
      // Validation on, as on a hub: the filter must not get in its way (the bogus-signed zone below).
      dnssec: true,
      queryLog: false,
    },
  };
}

/** The 1M-name list, deterministic; `variant` changes every name but ads.lab.example. */
function writeList(file: string, variant: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const out = createWriteStream(file);
    out.on("error", reject);
    let text = "# generated\n0.0.0.0 ads.lab.example\n";
    for (let i = 1; i < LIST_SIZE; i++) {
      text += `t${i}.${variant}${i % 997}.lab.example\n`;
      if (text.length > 1 << 20) {
        out.write(text);
        text = "";
      }
    }
    out.end(text, () => resolve());
  });
}

/**
 * Two DNSSEC-signed zones served by the internet's authoritative unbound (auth-zone, which answers with the
 * RRSIGs and NSECs in the zone file when asked with DO), signed with ldns-signzone, and the hub's unbound given
 * their keys as trust anchors (a test-only file in its include directory): dnssec-ok.example validates;
 * dnssec-bogus.example has an A record changed after signing, so its signature is bogus and a validating
 * resolver must answer SERVFAIL (unbound.conf(5) trust-anchor, auth-zone; ldns-signzone(1)).
 */
async function signedZones(internetNs: string): Promise<void> {
  const zones = path.join(dir, "dnssec");
  mkdirSync(zones);
  const anchors: string[] = [];
  const auth: string[] = [];
  for (const [zone, address] of [
    ["dnssec-ok.example", "198.51.100.90"],
    ["dnssec-bogus.example", "198.51.100.91"],
  ]) {
    const file = path.join(zones, `${zone}.zone`);
    writeFileSync(
      file,
      [
        `$ORIGIN ${zone}.`,
        "$TTL 60",
        `@ IN SOA ns.${zone}. admin.${zone}. 1 3600 600 86400 60`,
        `@ IN NS ns.${zone}.`,
        `ns IN A ${INTERNET}`,
        `www IN A ${address}`,
        "",
      ].join("\n"),
    );
    // ldns-keygen writes K<zone>+013+<tag>.{key,private,ds} into its working directory and prints that base.
    const key = (
      await lab.run("sh", ["-c", 'cd "$1" && ldns-keygen -a ECDSAP256SHA256 -k "$2"', "sh", zones, zone])
    ).stdout.trim();
    await lab.run("ldns-signzone", ["-f", `${file}.signed`, file, path.join(zones, key)]);
    if (zone === "dnssec-bogus.example") {
      const signed = readFileSync(`${file}.signed`, "utf8");
      const tampered = signed.replace(/(\sA\s+)198\.51\.100\.91/, "$1198.51.100.92");
      if (tampered === signed) throw new Error("no A record to tamper with in the signed zone");
      writeFileSync(`${file}.signed`, tampered);
    }
    // The DS line, as a trust anchor (name, class and type, without the TTL).
    const ds = readFileSync(path.join(zones, `${key}.ds`), "utf8")
      .trim()
      .split(/\s+/);
    anchors.push(`  trust-anchor: "${ds[0]} IN DS ${ds.slice(ds.indexOf("DS") + 1).join(" ")}"`);
    auth.push("auth-zone:", `  name: "${zone}."`, `  zonefile: "${file}.signed"`, "  for-downstream: yes");
    auth.push("  for-upstream: no");
  }
  // startInternet (netns/hub.ts) wrote the authoritative server's config in dir/auth and runs it with a pid
  // file there: the zones are added to it and it re-reads its config on SIGHUP.
  appendFileSync(path.join(dir, "auth", "unbound.conf"), auth.join("\n") + "\n");
  const pid = readFileSync(path.join(dir, "auth", "unbound.pid"), "utf8").trim();
  await lab.run("kill", ["-HUP", pid]);
  await waitFor(
    async () =>
      (
        await lab.exec(
          internetNs,
          "dig",
          ["+tries=1", "+time=1", "+dnssec", `@${INTERNET}`, "www.dnssec-ok.example"],
          {
            allowFailure: true,
          },
        )
      ).stdout.includes("RRSIG"),
    10_000,
    "the signed zones served",
  );
  const confD = path.join(hubRoot(dir), "etc", "unbound", "unbound.conf.d");
  mkdirSync(confD, { recursive: true });
  writeFileSync(path.join(confD, "zz-test-dnssec.conf"), ["server:", ...anchors, ""].join("\n"));
  expect(readdirSync(zones).filter((f) => f.endsWith(".ds"))).toHaveLength(2);
}

function agent(args: string[], input?: string) {
  return lab.exec(hubNs, "env", [...agentEnv(dir, hubIf), process.execPath, bundle, ...args], {
    input,
    allowFailure: true,
    timeoutMs: 120_000,
  });
}

async function dig(name: string, server = HUB_V4): Promise<{ status: string; answers: string[] }> {
  const r = await lab.exec(devNs, "dig", ["+tries=2", "+time=1", `@${server}`, name, "A"], {
    allowFailure: true,
  });
  const status = /status: (\w+)/.exec(r.stdout)?.[1] ?? "NO ANSWER";
  const answers = r.stdout
    .split("\n")
    .filter((l) => l.length > 0 && !l.startsWith(";"))
    .map((l) => l.split(/\s+/).pop() ?? "");
  return { status, answers };
}

/** The filter as its unit runs it: Restart=always (after `restartDelayMs`), ExecStartPost, ExecStopPost. */
const filter = {
  child: undefined as ReturnType<Lab["daemon"]> | undefined,
  starts: 0,
  stopping: false,
  restartDelayMs: 3000,
};
async function startFilter(): Promise<void> {
  const n = ++filter.starts;
  const child = lab.daemon(`filter-${n}`, hubNs, "env", [
    ...agentEnv(dir, hubIf),
    "MALLOC_ARENA_MAX=2",
    process.execPath,
    ...DNS_FILTER_NODE_FLAGS,
    bundle,
    "dns-filter",
    "serve",
  ]);
  filter.child = child;
  child.once("exit", () => {
    void (async () => {
      await agent(["dns-filter", "redirect", "off"]);
      if (!filter.stopping) setTimeout(() => void startFilter(), filter.restartDelayMs);
    })();
  });
  const on = await agent(["dns-filter", "redirect", "on"]);
  if (on.code !== 0) throw new Error(`redirect on failed: ${on.stderr}`);
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), `cloudpal-dnsf-${tag}-`));
  bundle = path.join(dir, "cloudpal-agent.js");
  writeFileSync(bundle, buildAgentBundle().code);
  hubNs = await lab.namespace("hub");
  const internetNs = await startInternet(lab, hubNs, dir, {
    "www.lab.example": "198.51.100.80",
    "ads.lab.example": "198.51.100.81",
    "fine.ads.lab.example": "198.51.100.82",
    "denied.lab.example": "198.51.100.83",
    "t5.trk5.lab.example": "198.51.100.84",
  });
  await signedZones(internetNs);
  mkdirSync(path.join(dir, "www"));
  await writeList(path.join(dir, "www", "big.txt"), "trk");
  await startFixtureHttp(lab, internetNs, dir);

  await lab.wireguard(hubNs, hubIf);
  const hubUnboundConf = writeHubUnboundConfig(dir);
  devNs = await lab.namespace("dev1");
  await lab.link(
    { ns: hubNs, ifname: `vh1${tag}`, cidr: "192.0.2.5/30" },
    { ns: devNs, ifname: `vd1${tag}`, cidr: "192.0.2.6/30" },
  );
  await lab.wireguard(devNs, devIf);
  const keyFile = path.join(dir, "laptop.key");
  writeFileSync(keyFile, devKey.privateKey + "\n", { mode: 0o600 });
  await lab.exec(devNs, "wg", ["set", devIf, "private-key", keyFile]);
  await lab.exec(devNs, "wg", [
    "set",
    devIf,
    "peer",
    publicKeyFromPrivate(hubKey.privateKey),
    "endpoint",
    `192.0.2.5:${PORT}`,
    "allowed-ips",
    "0.0.0.0/0,::/0",
  ]);
  await lab.exec(devNs, "ip", ["addr", "add", `${peer.ipv4}/32`, "dev", devIf]);
  await lab.exec(devNs, "ip", ["link", "set", devIf, "up"]);
  for (const route of [TEST_SUBNETS.ipv4Subnet, "198.51.100.0/24", "8.8.8.8/32"])
    await lab.exec(devNs, "ip", ["route", "add", route, "dev", devIf]);

  const applied = await agent(["apply"], JSON.stringify(state()));
  if (applied.code !== 0) throw new Error(`apply failed: ${applied.stderr}`);
  lab.daemon("hub-dns", hubNs, "unbound", ["-d", "-c", hubUnboundConf]);
  await waitFor(async () => (await agent(["status"])).stdout.includes("ok   unbound"), 10_000, "hub unbound");
  const refresh = await agent(["blocklists", "refresh"]);
  expect(refresh.stdout).toContain(`big.txt: ${LIST_SIZE} domains`);
  await startFilter();
});

afterAll(async () => {
  filter.stopping = true;
  try {
    await lab.cleanup();
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
});

describe("DNS filter with a 1,000,000-name list", () => {
  it("refuses listed names and their subdomains, resolves allowed and device names, through the filter", async () => {
    expect((await dig(`t999999.trk${999999 % 997}.lab.example`)).status).toBe("REFUSED");
    expect((await dig("t5.trk5.lab.example")).status).toBe("REFUSED");
    expect((await dig("ads.lab.example")).status).toBe("REFUSED");
    expect((await dig("deep.sub.ads.lab.example")).status).toBe("REFUSED");
    expect((await dig("denied.lab.example")).status).toBe("REFUSED");
    expect(await dig("fine.ads.lab.example")).toEqual({ status: "NOERROR", answers: ["198.51.100.82"] });
    expect(await dig("www.lab.example")).toEqual({ status: "NOERROR", answers: ["198.51.100.80"] });
    expect(await dig("laptop.pal")).toEqual({ status: "NOERROR", answers: [peer.ipv4] });
    // DNSSEC still validates behind the filter: a good signature gets the AD flag, a bogus one SERVFAIL.
    const ok = await lab.exec(devNs, "dig", ["+tries=2", "+time=2", `@${HUB_V4}`, "www.dnssec-ok.example"], {
      allowFailure: true,
    });
    expect(ok.stdout).toMatch(/status: NOERROR/);
    expect(ok.stdout).toMatch(/flags: [a-z ]*\bad\b/);
    expect(ok.stdout).toMatch(/www\.dnssec-ok\.example\.\s+\d+\s+IN\s+A\s+198\.51\.100\.90/);
    expect((await dig("www.dnssec-bogus.example")).status).toBe("SERVFAIL");
    // The same bogus name is SERVFAIL from unbound directly too: it is validation, not the filter.
    const direct = await lab.exec(
      hubNs,
      "dig",
      ["+tries=1", "+time=2", "-b", "127.0.0.1", `@${HUB_V4}`, "www.dnssec-bogus.example"],
      { allowFailure: true },
    );
    expect(direct.stdout).toMatch(/status: SERVFAIL/);
    // A device asking another resolver is redirected to the filter too.
    expect((await dig("ads.lab.example", "8.8.8.8")).status).toBe("REFUSED");
    // The refusals are the filter's: unbound holds no blocklist zone.
    const zones = await lab.exec(hubNs, "unbound-control", [
      "-c",
      path.join(dir, "unbound-hub", "unbound.conf"),
      "list_local_zones",
    ]);
    expect(zones.stdout).not.toContain("always_refuse");
    expect((await agent(["status"])).stdout).toMatch(
      /ok {3}dns filter: filtering tunnel DNS \(1000000 blocked, 1 allowed, 1 denied/,
    );
  });

  it("a refresh to a new 1,000,000-name list swaps tables while every query of a steady stream is answered", async () => {
    await writeList(path.join(dir, "www", "big.txt"), "new");
    const stream = lab.exec(
      devNs,
      process.execPath,
      [
        path.join(__dirname, "netns", "dns-stream.js"),
        HUB_V4,
        "53",
        "200",
        "25",
        "t5.trk5.lab.example",
        "www.lab.example",
        "laptop.pal",
      ],
      { allowFailure: true, timeoutMs: 60_000 },
    );
    await new Promise((r) => setTimeout(r, 1000));
    const refresh = await agent(["blocklists", "refresh"]);
    expect(refresh.stdout).toContain(`big.txt: ${LIST_SIZE} domains`);
    // The new table is in use within the filter's 1-second poll: the old names pass, the new ones are refused.
    await waitFor(async () => (await dig("t5.new5.lab.example")).status === "REFUSED", 5000, "the new table");
    expect(await dig("t5.trk5.lab.example")).toEqual({ status: "NOERROR", answers: ["198.51.100.84"] });
    const result = JSON.parse((await stream).stdout) as { sent: number; answered: number; lost: number[] };
    expect(result.sent).toBe(5000);
    expect(result).toEqual(expect.objectContaining({ answered: 5000, lost: [] }));
  });

  it("when the filter dies, DNS keeps answering (unfiltered, and status says so); the filter comes back", async () => {
    const before = filter.starts;
    filter.child?.kill("SIGKILL");
    await waitFor(
      async () => (await agent(["status"])).stdout.includes("FAIL dns filter"),
      5000,
      "status to report the filter down",
    );
    // Unfiltered meanwhile: unbound answers the listed name itself (the upstream has its record).
    expect(await dig("t5.trk5.lab.example")).toEqual({
      status: "NOERROR",
      answers: ["198.51.100.84"],
    });
    expect((await dig("ads.lab.example")).status).toBe("NOERROR");
    await waitFor(
      async () => filter.starts > before && (await dig("ads.lab.example")).status === "REFUSED",
      20_000,
      "the filter back",
    );
    expect((await agent(["status"])).stdout).toMatch(/ok {3}dns filter/);
  });
});
