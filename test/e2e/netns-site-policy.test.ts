/**
 * Per-group site policies end to end (issue 14, part 2; agent/src/site-policy*.ts), in network namespaces this
 * test creates: three devices behind wireguard-go in three groups, the hub with the real agent bundle, its real
 * unbound (forwarding over DNS-over-TLS to the lab's internet, records with a 5-second TTL), the DNS filter with
 * its redirect, nftables, and web servers in the internet namespace fetched with curl.
 * - kids, "allow-list" of school.lab.example: fetches the school by name; another site is refused by name and
 *   unreachable by its raw address; once the school leaves the list, its address stops working when the set's
 *   element times out (max(TTL, MIN_TIMEOUT_S)).
 * - teens, "deny" of games.lab.example: refused by name, and the address the name resolves to is dropped; the
 *   names on the group's own blocklist are refused to it alone.
 * - family (no policy): reaches all three.
 * Needs root and scripts/install-test-deps.sh.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import * as path from "path";
import { buildAgentBundle } from "../../components/agent-bundle";
import { publicKeyFromPrivate } from "../../model/keys";
import type { GroupState, HubState, PeerState } from "../../model/state";
import { fixedKeyPair, testPeer, TEST_SUBNETS } from "../../agent/test-support/state-fixtures";
import { MIN_TIMEOUT_S } from "../../agent/src/site-policy";
import { agentEnv, INTERNET, LAB_UPSTREAM, startInternet, writeHubUnboundConfig } from "./netns/hub";
import { Lab, waitFor } from "./netns/lab";

jest.setTimeout(180_000);

const HUB_V4 = "10.77.0.1";
const PORT = 51820;
const TTL = 5;
const SCHOOL = "198.51.100.90";
const OTHER = "198.51.100.91";
const GAMES = "198.51.100.92";
const lab = new Lab();
const tag = lab.tag;
let dir: string;
let bundle: string;
let hubNs: string;
const hubIf = `wgh${tag}`;
const hubKey = fixedKeyPair(`hub-${tag}`);

interface Device {
  readonly peer: PeerState;
  ns: string;
}
const devices: Record<"kid" | "teen" | "adult", Device> = {
  kid: { peer: { ...testPeer("kid", "kids"), publicKey: fixedKeyPair(`kid-${tag}`).publicKey }, ns: "" },
  teen: { peer: { ...testPeer("teen", "teens"), publicKey: fixedKeyPair(`teen-${tag}`).publicKey }, ns: "" },
  adult: {
    peer: { ...testPeer("adult", "family"), publicKey: fixedKeyPair(`adult-${tag}`).publicKey },
    ns: "",
  },
};

function state(kidsAllow: string[] = ["school.lab.example"]): HubState {
  const groups: GroupState[] = [
    { name: "family", reaches: ["family"], internet: true },
    { name: "kids", reaches: [], internet: true, allow: kidsAllow, sites: "allow-list" },
    {
      name: "teens",
      reaches: [],
      internet: true,
      deny: ["games.lab.example"],
      sites: "deny",
      // The group's own list, on top of the hub's (none here): served by the lab's web server.
      blocklists: [`http://${INTERNET}:8080/teen-list.txt`],
    },
  ];
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
    groups,
    peers: Object.values(devices).map((d) => d.peer),
    dns: { blocklists: [], allow: [], deny: [], upstreams: [LAB_UPSTREAM], dnssec: false, queryLog: false },
  };
}

function agent(args: string[], input?: string) {
  return lab.exec(hubNs, "env", [...agentEnv(dir, hubIf), process.execPath, bundle, ...args], {
    input,
    allowFailure: true,
    timeoutMs: 60_000,
  });
}

async function dig(d: Device, name: string, server = HUB_V4): Promise<{ status: string; answers: string[] }> {
  const r = await lab.exec(d.ns, "dig", ["+tries=2", "+time=1", `@${server}`, name, "A"], {
    allowFailure: true,
  });
  const status = /status: (\w+)/.exec(r.stdout)?.[1] ?? "NO ANSWER";
  const answers = r.stdout
    .split("\n")
    .filter((l) => l.length > 0 && !l.startsWith(";"))
    .map((l) => l.split(/\s+/).pop() ?? "");
  return { status, answers };
}

/** curl from the device; `via` pins the address (curl --resolve), else the device resolves through the hub. */
async function fetch(d: Device, url: string, via?: string): Promise<string> {
  const host = new URL(url).host;
  const r = await lab.exec(
    d.ns,
    "curl",
    [
      "-sS",
      "--max-time",
      "3",
      "--connect-timeout",
      "2",
      ...(via !== undefined ? ["--resolve", `${host}:${via}`] : []),
      url,
    ],
    { allowFailure: true },
  );
  return r.code === 0 ? r.stdout : `curl exit ${r.code}`;
}

async function addDevice(d: Device, n: number, key: { privateKey: string }): Promise<void> {
  d.ns = await lab.namespace(d.peer.name);
  const hubEnd = `192.0.2.${4 * n + 1}`;
  await lab.link(
    { ns: hubNs, ifname: `vh${n}${tag}`, cidr: `${hubEnd}/30` },
    { ns: d.ns, ifname: `vd${n}${tag}`, cidr: `192.0.2.${4 * n + 2}/30` },
  );
  const ifname = `wgd${n}${tag}`;
  await lab.wireguard(d.ns, ifname);
  const keyFile = path.join(dir, `${d.peer.name}.key`);
  writeFileSync(keyFile, key.privateKey + "\n", { mode: 0o600 });
  await lab.exec(d.ns, "wg", ["set", ifname, "private-key", keyFile]);
  await lab.exec(d.ns, "wg", [
    "set",
    ifname,
    "peer",
    publicKeyFromPrivate(hubKey.privateKey),
    "endpoint",
    `${hubEnd}:${PORT}`,
    "allowed-ips",
    "0.0.0.0/0,::/0",
  ]);
  await lab.exec(d.ns, "ip", ["addr", "add", `${d.peer.ipv4}/32`, "dev", ifname]);
  await lab.exec(d.ns, "ip", ["link", "set", ifname, "up"]);
  for (const route of [TEST_SUBNETS.ipv4Subnet, "198.51.100.0/24", "8.8.8.8/32"])
    await lab.exec(d.ns, "ip", ["route", "add", route, "dev", ifname]);
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), `cloudpal-sites-${tag}-`));
  bundle = path.join(dir, "cloudpal-agent.js");
  writeFileSync(bundle, buildAgentBundle().code);
  hubNs = await lab.namespace("hub");
  const internetNs = await startInternet(
    lab,
    hubNs,
    dir,
    {
      "school.lab.example": SCHOOL,
      "other.lab.example": OTHER,
      "games.lab.example": GAMES,
      "www.lab.example": "198.51.100.80",
      "adult.lab.example": "198.51.100.93",
    },
    TTL,
  );
  // Three web sites, one address each, in the internet namespace.
  for (const a of [SCHOOL, OTHER, GAMES])
    await lab.exec(internetNs, "ip", ["addr", "add", `${a}/24`, "dev", `vi${tag}`]);
  mkdirSync(path.join(dir, "www"));
  writeFileSync(path.join(dir, "www", "page"), "hello\n");
  writeFileSync(path.join(dir, "www", "teen-list.txt"), "# a group's own list\n0.0.0.0 adult.lab.example\n");
  lab.daemon("http", internetNs, process.execPath, [
    path.join(__dirname, "netns", "fixture-http.js"),
    "0.0.0.0",
    "8080",
    path.join(dir, "www"),
  ]);
  await waitFor(async () => lab.daemonOutput("http").includes("listening"), 5000, "web servers");

  await lab.wireguard(hubNs, hubIf);
  const hubUnboundConf = writeHubUnboundConfig(dir);
  await addDevice(devices.kid, 1, fixedKeyPair(`kid-${tag}`));
  await addDevice(devices.teen, 2, fixedKeyPair(`teen-${tag}`));
  await addDevice(devices.adult, 3, fixedKeyPair(`adult-${tag}`));

  const applied = await agent(["apply"], JSON.stringify(state()));
  if (applied.code !== 0) throw new Error(`apply failed: ${applied.stderr}`);
  lab.daemon("hub-dns", hubNs, "unbound", ["-d", "-c", hubUnboundConf]);
  await waitFor(async () => (await agent(["status"])).stdout.includes("ok   unbound"), 10_000, "hub unbound");
  // Downloads the group's list with the hub's (none): the filter builds the group's table from the stored copy.
  const refresh = await agent(["blocklists", "refresh"]);
  expect(refresh.stdout).toContain("teen-list.txt: 1 domains");
  // With CAP_NET_ADMIN alone, as its unit runs it (CapabilityBoundingSet, cloud-init/units.ts): enough to
  // change the sets, nothing else a root process could do.
  lab.daemon("filter", hubNs, "setpriv", [
    "--bounding-set=-all,+net_admin",
    "--inh-caps=-all",
    "env",
    ...agentEnv(dir, hubIf),
    process.execPath,
    bundle,
    "dns-filter",
    "serve",
  ]);
  const on = await agent(["dns-filter", "redirect", "on"]);
  if (on.code !== 0) throw new Error(`redirect on failed: ${on.stderr}\n${lab.daemonOutput("filter")}`);
  // unbound's first DNS-over-TLS connection to the lab's upstream: wait for it before judging answers.
  await waitFor(
    async () => (await dig(devices.adult, "www.lab.example")).status === "NOERROR",
    10_000,
    "upstream",
  );
});

afterAll(async () => {
  try {
    await lab.cleanup();
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
});

const url = (name: string) => `http://${name}:8080/page`;

describe("an allow-list group (kids: school.lab.example)", () => {
  it("fetches the allowed site by name: the filter put its address in the set before answering", async () => {
    expect(await dig(devices.kid, "school.lab.example")).toEqual({ status: "NOERROR", answers: [SCHOOL] });
    // At the address the hub's answer gave the device (dig above).
    expect(await fetch(devices.kid, url("school.lab.example"), SCHOOL)).toBe("hello\n");
    const set = await lab.exec(hubNs, "nft", ["list", "set", "inet", "cloudpal_sites", "allow4_kids"]);
    expect(set.stdout).toMatch(
      new RegExp(`${SCHOOL.replace(/\./g, "\\.")} timeout ${MIN_TIMEOUT_S}s expires`),
    );
  });

  it("is refused another site by name, and cannot reach it by its raw address", async () => {
    expect((await dig(devices.kid, "other.lab.example")).status).toBe("REFUSED");
    // Asking another resolver changes nothing: the hub's redirect answers it, through the filter.
    expect((await dig(devices.kid, "other.lab.example", "8.8.8.8")).status).toBe("REFUSED");
    expect(await fetch(devices.kid, `http://${OTHER}:8080/page`)).toBe("curl exit 28");
    // The family device, without a policy, reaches the same address: the drop is the kids' policy.
    expect(await fetch(devices.adult, `http://${OTHER}:8080/page`)).toBe("hello\n");
  });

  it("loses the school's address when its element times out after the school left the list", async () => {
    // Every answer for the school renews its element: the timeout runs from the last one the device got.
    expect((await dig(devices.kid, "school.lab.example")).status).toBe("NOERROR");
    let learned = Date.now();
    const applied = await agent(["apply"], JSON.stringify(state(["other.lab.example"])));
    expect(applied.code).toBe(0);
    await waitFor(
      async () => {
        const status = (await dig(devices.kid, "school.lab.example")).status;
        if (status === "NOERROR") learned = Date.now();
        return status === "REFUSED";
      },
      8000,
      "school refused",
    );
    // The apply kept the set's elements (add semantics): the address still works until its timeout.
    expect(await fetch(devices.kid, `http://${SCHOOL}:8080/page`)).toBe("hello\n");
    const expiry = learned + MIN_TIMEOUT_S * 1000;
    await new Promise((r) => setTimeout(r, Math.max(0, expiry - Date.now() + 1500)));
    expect(await fetch(devices.kid, `http://${SCHOOL}:8080/page`)).toBe("curl exit 28");
    // The newly allowed site works at once.
    expect(await dig(devices.kid, "other.lab.example")).toEqual({ status: "NOERROR", answers: [OTHER] });
    expect(await fetch(devices.kid, `http://${OTHER}:8080/page`)).toBe("hello\n");
  });
});

describe("a deny group (teens: games.lab.example)", () => {
  it("is refused the denied site by name and by the address it resolves to; other sites work", async () => {
    expect((await dig(devices.teen, "games.lab.example")).status).toBe("REFUSED");
    // The filter resolved the denied name itself (through unbound) and keeps its address in the deny set.
    await waitFor(
      async () =>
        (
          await lab.exec(hubNs, "nft", ["list", "set", "inet", "cloudpal_sites", "deny4_teens"])
        ).stdout.includes(GAMES),
      5000,
      "games in the deny set",
    );
    expect(await fetch(devices.teen, `http://${GAMES}:8080/page`)).toBe("curl exit 28");
    expect(await dig(devices.teen, "school.lab.example")).toEqual({ status: "NOERROR", answers: [SCHOOL] });
    expect(await fetch(devices.teen, `http://${SCHOOL}:8080/page`)).toBe("hello\n");
  });

  it("is refused the names on the group's own blocklist, which other groups resolve", async () => {
    expect((await dig(devices.teen, "adult.lab.example")).status).toBe("REFUSED");
    expect((await dig(devices.teen, "www.adult.lab.example")).status).toBe("REFUSED");
    expect(await dig(devices.adult, "adult.lab.example")).toEqual({
      status: "NOERROR",
      answers: ["198.51.100.93"],
    });
  });

  it("leaves another group alone: the family device resolves and fetches the denied site", async () => {
    expect(await dig(devices.adult, "games.lab.example")).toEqual({ status: "NOERROR", answers: [GAMES] });
    expect(await fetch(devices.adult, url("games.lab.example"), GAMES)).toBe("hello\n");
  });
});
