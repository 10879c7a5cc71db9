import { mkdtempSync, readFileSync, rmSync, statSync, existsSync, mkdirSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import * as path from "path";
import { type CliResult, runAgentCli } from "../agent/test-support/cli";
import { defaultOptions, pathsUnder, type AgentOptions } from "../agent/src/options";
import type { AgentContext } from "../agent/src/reconcile";
import type { HubState } from "../model/state";
import { FakeHub } from "../agent/test-support/fake-hub";
import { FilterTable } from "../agent/src/dns-filter-table";
import { fixedKeyPair, testPeer, testState } from "../agent/test-support/state-fixtures";

let root: string;
let options: AgentOptions;
let hub: FakeHub;
let log: string[];

function sysctlTree(dir: string): void {
  for (const [rel, value] of [
    ["net/ipv4/ip_forward", "0"],
    ["net/ipv6/conf/all/forwarding", "0"],
    ["net/ipv6/conf/eth0/accept_ra", "1"],
  ]) {
    mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    writeFileSync(path.join(dir, rel), value + "\n");
  }
}

beforeEach(() => {
  root = mkdtempSync(path.join(tmpdir(), "cloudpal-agent-"));
  sysctlTree(path.join(root, "proc-sys"));
  options = defaultOptions(pathsUnder(root, path.join(root, "proc-sys")));
  hub = new FakeHub({ zones: options.paths.unboundZones, blocklist: options.paths.unboundBlocklist });
  log = [];
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

function cli(args: string[], stdin = ""): Promise<CliResult> {
  const ctx: AgentContext = { options, runner: hub, log: (l) => log.push(l) };
  return runAgentCli(ctx, args, stdin);
}

const apply = (state: unknown) => cli(["apply"], JSON.stringify(state));

describe("cloudpal-agent apply", () => {
  it("brings a fresh hub to the state, persisting it 0600 and keeping secrets out of argv", async () => {
    const state = testState();
    const r = await apply(state);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(statSync(options.paths.stateFile).mode & 0o777).toBe(0o600);
    expect(statSync(options.paths.stateDir).mode & 0o777).toBe(0o700);
    expect(JSON.parse(readFileSync(options.paths.stateFile, "utf8"))).toEqual(state);
    expect(statSync(options.paths.wireguardConfig).mode & 0o777).toBe(0o600);
    expect(hub.wg.peers.map((p) => p.publicKey).sort()).toEqual(state.peers.map((p) => p.publicKey).sort());
    expect(hub.up).toBe(true);
    expect(hub.addrs.map((a) => `${a.local}/${a.prefixlen}`).sort()).toEqual([
      "10.77.0.1/16",
      "fd7a:c10d:9a1::1/64",
    ]);
    expect(hub.nftTable).toContain("table inet cloudpal {");
    expect(readFileSync(options.paths.nftablesConfig, "utf8")).toBe(hub.nftTable);
    // unbound was running with Debian's defaults: new listen addresses need a restart, not a reload.
    expect(hub.lines()).toContain("[#] systemctl restart unbound.service");
    expect(hub.datas.get("laptop.pal.")).toHaveLength(2);
    expect(readFileSync(path.join(root, "proc-sys/net/ipv4/ip_forward"), "utf8")).toBe("1");
    expect(readFileSync(path.join(root, "proc-sys/net/ipv6/conf/eth0/accept_ra"), "utf8")).toBe("2");
    const secrets = [state.hub.privateKey, state.peers[0].presharedKey!];
    for (const c of hub.calls) for (const s of secrets) expect(c.args.join(" ")).not.toContain(s);
    for (const l of log) for (const s of secrets) expect(l).not.toContain(s);
  });

  it("applying the same state twice changes nothing and reloads nothing", async () => {
    await apply(testState());
    hub.calls.length = 0;
    const r = await apply(testState());
    expect(r.out).toBe("applied: nothing changed\n");
    const lines = hub.lines().join("\n");
    expect(lines).not.toMatch(/syncconf|nft -f|unbound-control.*(reload|local_)|systemctl|ip addr|ip link/);
  });

  it("adds a peer live: wg syncconf, one nft transaction, unbound local data without a reload", async () => {
    await apply(testState());
    hub.calls.length = 0;
    const state = testState();
    const added: HubState = { ...state, peers: [...state.peers, testPeer("tablet", "family")] };
    const r = await apply(added);
    expect(r.out).toBe("applied: wireguard peers, nftables, unbound zones\n");
    expect(
      hub.lines().filter((l) => !/ (show|list|status)\b|\] (nft -c|unbound-checkconf) /.test(l)),
    ).toEqual([
      `[#] wg addconf wg0 ${options.paths.wireguardConfig}.add`,
      "[#] nft -f -",
      "[#] unbound-control local_datas",
    ]);
    expect(hub.calls.find((c) => c.args[0] === "local_datas")?.input).toBe(
      `tablet.pal. 300 IN A ${added.peers[4].ipv4}\ntablet.pal. 300 IN AAAA ${added.peers[4].ipv6}\n`,
    );
    expect(hub.nftTable).toContain(added.peers[4].ipv4);
    // the temporary peers file (it may hold preshared keys) is gone
    expect(existsSync(`${options.paths.wireguardConfig}.add`)).toBe(false);
  });

  it("re-adds a peer whose preshared key changed, writing the key to a 0600 file and never to argv", async () => {
    await apply(testState());
    hub.calls.length = 0;
    const state = testState();
    const psk = fixedKeyPair("new-psk").privateKey;
    await apply({ ...state, peers: [{ ...state.peers[1], presharedKey: psk }, ...state.peers.slice(2)] });
    expect(hub.wg.peers.find((p) => p.publicKey === state.peers[1].publicKey)?.presharedKey).toBe(psk);
    expect(hub.wg.peers.map((p) => p.publicKey)).not.toContain(state.peers[0].publicKey);
    expect(hub.lines().join("\n")).not.toContain(psk);
  });

  it("revokes a peer: removed from WireGuard first, then from the firewall and DNS", async () => {
    await apply(testState());
    hub.calls.length = 0;
    const state = testState();
    const revoked = { ...state, peers: state.peers.filter((p) => p.name !== "visitor") };
    await apply(revoked);
    const effects = hub
      .lines()
      .filter((l) => !/ (show|list|status)\b|\] (nft -c|unbound-checkconf) /.test(l));
    expect(effects[0]).toBe(`[#] wg set wg0 peer ${state.peers[2].publicKey} remove`);
    expect(hub.wg.peers.map((p) => p.publicKey)).not.toContain(state.peers[2].publicKey);
    expect(hub.nftTable).not.toContain(state.peers[2].ipv4);
    expect(hub.datas.has("visitor.pal.")).toBe(false);
    expect(hub.calls.find((c) => c.args[0] === "local_datas_remove")?.input).toBe("visitor.pal.\n");
  });

  it("a deny change rebuilds the DNS filter's table, leaves unbound's zones and cache alone; settings reload", async () => {
    await apply(testState());
    const state = testState();
    hub.calls.length = 0;
    await apply({ ...state, dns: { ...state.dns, deny: ["ads.example.com", "track.example.net"] } });
    const table = FilterTable.parse(readFileSync(options.paths.dnsFilterTable));
    expect(statSync(options.paths.dnsFilterTable).mode & 0o777).toBe(0o600);
    expect(table.verdict("track.example.net")).toBe("refuse");
    expect(table.verdict("sub.track.example.net.")).toBe("refuse");
    expect(table.verdict("example.net")).toBe("pass");
    expect(hub.lines().join("\n")).not.toMatch(/reload|local_zones/);
    expect([...hub.zones.values()]).not.toContain("always_refuse");
    hub.calls.length = 0;
    await apply({ ...state, dns: { ...state.dns, dnssec: false } });
    expect(hub.lines()).toContain("[#] unbound-control reload");
    expect(readFileSync(options.paths.unboundConfig, "utf8")).toContain('module-config: "iterator"');
  });

  it("an unchanged table is not rebuilt, and thousands of denied names never reach unbound", async () => {
    await apply(testState());
    const state = testState();
    const many = Array.from({ length: 6000 }, (_, i) => `t${i}.example.net`);
    await apply({ ...state, dns: { ...state.dns, deny: many } });
    expect(FilterTable.parse(readFileSync(options.paths.dnsFilterTable)).counts.deny).toBe(6000);
    expect([...hub.zones.values()]).not.toContain("always_refuse");
    const before = statSync(options.paths.dnsFilterTable).ino;
    hub.calls.length = 0;
    await apply({ ...state, dns: { ...state.dns, deny: many }, peers: state.peers.slice(1) });
    expect(hub.lines().filter((l) => l.includes("unbound-control"))).toEqual([
      "[#] unbound-control local_datas_remove",
    ]);
    expect(statSync(options.paths.dnsFilterTable).ino).toBe(before);
  });

  it("falls back to a reload when unbound rejects a live edit", async () => {
    await apply(testState());
    hub.failing.push("unbound-control local_datas");
    const state = testState();
    const r = await apply({ ...state, peers: [...state.peers, testPeer("tablet", "family")] });
    expect(r.code).toBe(0);
    expect(hub.lines()).toContain("[#] unbound-control reload");
    expect(hub.datas.get("tablet.pal.")).toHaveLength(2);
    expect(log.join("\n")).toMatch(/live zone update failed/);
  });

  it("keeps the files right when unbound stopped between two applies", async () => {
    await apply(testState());
    hub.unboundRunning = false;
    const state = testState();
    const r = await apply({ ...state, peers: [...state.peers, testPeer("tablet", "family")] });
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/unbound files/);
    expect(readFileSync(options.paths.unboundZones, "utf8")).toContain('"tablet.pal. 300 IN A ');
  });

  it("writes unbound's files without failing when unbound is not running yet", async () => {
    hub.unboundRunning = false;
    const r = await apply(testState());
    expect(r.code).toBe(0);
    expect(existsSync(options.paths.unboundConfig)).toBe(true);
    expect(r.out).toMatch(/unbound files/);
  });

  it("changes nothing at all on invalid input and names the field", async () => {
    const state = testState();
    const bad = { ...state, peers: [{ ...state.peers[0], publicKey: "abc" }] };
    const r = await apply(bad);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`'peers[0].publicKey' ("abc")`);
    expect(r.err).toContain("nothing was changed");
    expect(hub.calls).toEqual([]);
    expect(existsSync(options.paths.stateFile)).toBe(false);
  });

  it("reports a failing command with its stderr", async () => {
    hub.failing.push("nft -f");
    const r = await apply(testState());
    expect(r.code).toBe(1);
    expect(r.err).toContain("nft -f - failed (exit 1): injected failure");
  });
});

describe("cloudpal-agent reconcile", () => {
  it("recreates the interface after a reboot from the persisted state", async () => {
    await apply(testState());
    hub.linkExists = false;
    hub.up = false;
    hub.addrs = [];
    hub.wg = { privateKey: "(none)", listenPort: 0, peers: [] };
    hub.calls.length = 0;
    const r = await cli(["reconcile"]);
    expect(r.code).toBe(0);
    expect(hub.lines()).toContain("[#] ip link add dev wg0 type wireguard");
    expect(hub.up).toBe(true);
    expect(hub.wg.peers).toHaveLength(4);
  });

  it("explains what to do when nothing was applied yet", async () => {
    const r = await cli(["reconcile"]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/no persisted state at '.*state.json': run 'cloudpal-agent apply'/);
  });
});

describe("cloudpal-agent status and peer config", () => {
  it("lists peers by name with handshake and transfer, and service health", async () => {
    await apply(testState());
    const r = await cli(["status"]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/ok {3}wireguard: wg0 listening on UDP 51820, 4 peers/);
    expect(r.out).toMatch(/laptop: handshake never, received 0 B, sent 0 B, endpoint \(none\)/);
    hub.unboundRunning = false;
    const down = await cli(["status"]);
    expect(down.code).toBe(1);
    expect(down.out).toMatch(/FAIL unbound/);
  });

  it("prints the client config with the placeholder key and a terminal QR code", async () => {
    await apply({ ...testState(), hub: { ...testState().hub, endpoint: "vpn.example.com:51820" } });
    const r = await cli(["peer", "config", "camera", "--qr"]);
    expect(r.code).toBe(0);
    expect(r.out).toContain("PrivateKey = <this device's private key: it never left the device>");
    expect(r.out).toContain("Endpoint = vpn.example.com:51820");
    // iot has no internet: only the private network is routed into the tunnel.
    expect(r.out).toContain("AllowedIPs = 10.77.0.0/16, fd7a:c10d:9a1::/64");
    expect(r.out).toContain("\u001b[");
    const missing = await cli(["peer", "config", "nobody"]);
    expect(missing.err).toContain(
      'peer "nobody" is not in the hub\'s state: use one of: laptop, phone, visitor, camera.',
    );
  });

  it("rejects unknown commands with the usage", async () => {
    const r = await cli(["frobnicate"]);
    expect(r.code).toBe(2);
    expect(r.err).toContain("usage:");
  });
});
