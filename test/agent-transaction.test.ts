/**
 * The hub lock, the journal and the live comparison: the pure decisions, and the commands against FakeHub
 * with the crash states the network-namespace fault suite (test/e2e/netns-faults.test.ts) produces by SIGKILL.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import * as path from "path";
import { runAgentCli } from "../agent/test-support/cli";
import { acquireHubLock } from "../agent/src/lock";
import { defaultOptions, pathsUnder, type AgentOptions } from "../agent/src/options";
import type { AgentContext } from "../agent/src/reconcile";
import {
  beginJournal,
  digest,
  isTempOf,
  journalPath,
  nftLiveMatches,
  parseJournal,
  recoveryFor,
  removeStaleFiles,
} from "../agent/src/transaction";
import { liveOwnZones, planLiveRepair } from "../agent/src/unbound-live";
import type { UnboundZones } from "../agent/src/unbound-config";
import { FakeHub } from "../agent/test-support/fake-hub";
import { testPeer, testState } from "../agent/test-support/state-fixtures";

describe("journal decisions", () => {
  it("reads a journal, and calls anything else a crash left 'corrupt'", () => {
    expect(parseJournal(undefined)).toBeUndefined();
    expect(parseJournal('{"command":"apply","pid":7,"started":"2024-01-01T00:00:00Z"}')).toEqual({
      command: "apply",
      pid: 7,
      started: "2024-01-01T00:00:00Z",
    });
    expect(parseJournal("")).toBe("corrupt");
    expect(parseJournal('{"command":"apply"')).toBe("corrupt");
    expect(parseJournal("null")).toBe("corrupt");
  });

  it("trusts the files only after a clean run, and never in reconcile", () => {
    expect(recoveryFor(undefined, "apply")).toEqual({ verifyLive: false });
    expect(recoveryFor(undefined, "blocklists refresh")).toEqual({ verifyLive: false });
    expect(recoveryFor(undefined, "reconcile")).toEqual({ verifyLive: true });
    const j = { command: "apply" as const, pid: 42, started: "t" };
    expect(recoveryFor(j, "apply")).toEqual({
      verifyLive: true,
      note: expect.stringContaining("'apply' (pid 42, started t), which did not finish"),
    });
    expect(recoveryFor("corrupt", "blocklists refresh").verifyLive).toBe(true);
  });

  it("recognises only the temp files lib/atomic-file.ts makes for a given target", () => {
    expect(isTempOf(".state.json.0123456789ab.tmp", "/x/state.json")).toBe(true);
    expect(isTempOf(".state.json.0123456789ab.tmp.bak", "/x/state.json")).toBe(false);
    expect(isTempOf(".state.json.xyz.tmp", "/x/state.json")).toBe(false);
    expect(isTempOf("state.json", "/x/state.json")).toBe(false);
    expect(isTempOf(".wg0.conf.0123456789ab.tmp", "/x/state.json")).toBe(false);
  });

  it("calls the nftables table live only when it lists as it did right after this ruleset was loaded", () => {
    const record = { nftRuleset: digest("ruleset A"), nftLive: digest("listing A") };
    expect(nftLiveMatches(record, "ruleset A", "listing A")).toBe(true);
    expect(nftLiveMatches(record, "ruleset A", "listing A, edited by hand")).toBe(false);
    expect(nftLiveMatches(record, "ruleset B", "listing A")).toBe(false);
    expect(nftLiveMatches({}, "ruleset A", "listing A")).toBe(false);
  });
});

describe("live unbound zones", () => {
  const zonesOut = [
    "pal. static",
    "localhost. redirect",
    "10.in-addr.arpa. static",
    "ads.example. always_refuse",
    "good.ads.example. always_transparent",
    "",
  ].join("\n");
  const dataOut = [
    "laptop.pal.\t300\tIN\tA\t10.77.0.2",
    "laptop.pal.\t300\tIN\tAAAA\tfd7a:c10d:9a1::2",
    "localhost.\t10800\tIN\tA\t127.0.0.1",
    "",
  ].join("\n");

  it("keeps only CloudPal's zones and records from unbound's listings", () => {
    const live = liveOwnZones(zonesOut, dataOut);
    expect([...live.zones]).toEqual([
      ["pal.", "static"],
      ["ads.example.", "always_refuse"],
      ["good.ads.example.", "always_transparent"],
    ]);
    expect([...live.datas]).toEqual([
      ["laptop.pal.", ["laptop.pal. 300 IN A 10.77.0.2", "laptop.pal. 300 IN AAAA fd7a:c10d:9a1::2"]],
    ]);
  });

  it("plans nothing when live matches, live edits for a drift, and a reload for a large one", () => {
    const live = liveOwnZones(zonesOut, dataOut);
    const same: UnboundZones = {
      zones: new Map(live.zones),
      datas: new Map([
        ["laptop.pal.", ["laptop.pal. 300 IN AAAA fd7a:c10d:9a1::2", "laptop.pal. 300 IN A 10.77.0.2"]],
      ]),
    };
    expect(planLiveRepair(live, same)).toEqual({ action: "none" });
    // The crash the issue found: the files say "phone" and a new deny entry, unbound still serves the old ones.
    const desired: UnboundZones = {
      zones: new Map([
        ["pal.", "static"],
        ["tracker.example.", "always_refuse"],
      ]),
      datas: new Map([["phone.pal.", ["phone.pal. 300 IN A 10.77.0.3"]]]),
    };
    expect(planLiveRepair(live, desired)).toEqual({
      action: "live",
      edits: {
        local_datas_remove: ["laptop.pal."],
        local_zones_remove: ["ads.example.", "good.ads.example."],
        local_zones: ["tracker.example. always_refuse"],
        local_datas: ["phone.pal. 300 IN A 10.77.0.3"],
      },
    });
    const many: UnboundZones = {
      zones: new Map(Array.from({ length: 6000 }, (_, i) => [`d${i}.example.`, "always_refuse"])),
      datas: new Map(),
    };
    expect(planLiveRepair(live, many)).toEqual({ action: "reload" });
  });
});

describe("the hub lock", () => {
  let root: string;
  beforeEach(() => (root = mkdtempSync(path.join(tmpdir(), "cloudpal-lock-"))));
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it("lets one holder in, makes the next wait, and names the file when the wait runs out", async () => {
    const paths = pathsUnder(root);
    const first = await acquireHubLock(paths, 1);
    const t0 = Date.now();
    await expect(acquireHubLock(paths, 1)).rejects.toThrow(
      /another cloudpal-agent command has held the hub lock '.*agent\.lock' for 1 s; nothing was changed/,
    );
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    first.release();
    const second = await acquireHubLock(paths, 1);
    second.release();
  });

  it("hands the lock to a waiter as soon as the holder releases it", async () => {
    const paths = pathsUnder(root);
    const first = await acquireHubLock(paths, 5);
    const waiting = acquireHubLock(paths, 5);
    setTimeout(() => first.release(), 300);
    const t0 = Date.now();
    (await waiting).release();
    expect(Date.now() - t0).toBeLessThan(3000);
  });
});

describe("commands after an interruption (FakeHub)", () => {
  let root: string;
  let options: AgentOptions;
  let hub: FakeHub;
  let log: string[];

  beforeEach(() => {
    root = mkdtempSync(path.join(tmpdir(), "cloudpal-tx-"));
    const sysctl = path.join(root, "proc-sys");
    for (const rel of ["net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"]) {
      mkdirSync(path.dirname(path.join(sysctl, rel)), { recursive: true });
      writeFileSync(path.join(sysctl, rel), "1\n");
    }
    options = defaultOptions(pathsUnder(root, sysctl));
    hub = new FakeHub({ zones: options.paths.unboundZones, blocklist: options.paths.unboundBlocklist });
    log = [];
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  function cli(args: string[], stdin = "") {
    const ctx: AgentContext = { options, runner: hub, log: (l) => log.push(l) };
    return runAgentCli(ctx, args, stdin);
  }

  const base = testState();
  const next = testState({
    peers: [...base.peers.slice(0, 2), testPeer("tablet", "family")],
    dns: { ...base.dns, deny: ["ads.example.com", "tracker.example.net"] },
  });

  /** An apply of `next` that wrote unbound's files and died before unbound-control. */
  async function crashBeforeUnboundControl() {
    expect((await cli(["apply"], JSON.stringify(base))).code).toBe(0);
    const zones = new Map(hub.zones);
    const datas = new Map(hub.datas);
    expect((await cli(["apply"], JSON.stringify(next))).code).toBe(0);
    hub.zones = zones;
    hub.datas = datas;
    beginJournal(options.paths, "apply");
  }

  it("without the journal, the files hide the crash; with it, the next apply repairs unbound from its live zones", async () => {
    await crashBeforeUnboundControl();
    expect(hub.datas.has("visitor.pal.")).toBe(true);
    const r = await cli(["apply"], JSON.stringify(next));
    expect(r).toEqual({ code: 0, out: "applied: unbound zones\n", err: "" });
    expect(log.filter((l) => l.startsWith("[!] finishing"))).toEqual([
      expect.stringMatching(
        /^\[!\] finishing 'apply' \(pid \d+, started \S+\), which did not finish: comparing WireGuard, nftables and unbound with what is live$/,
      ),
    ]);
    expect(hub.datas.has("visitor.pal.")).toBe(false);
    expect(hub.datas.has("tablet.pal.")).toBe(true);
    // Denied names are the DNS filter's (its table, written with the files), never unbound zones.
    expect(hub.zones.has("tracker.example.net.")).toBe(false);
    expect(existsSync(journalPath(options.paths))).toBe(false);
    // Finished: the next apply trusts the files again and finds nothing to do.
    expect((await cli(["apply"], JSON.stringify(next))).out).toBe("applied: nothing changed\n");
  });

  it("a refresh finishes only unbound when an apply is pending, keeps the journal and says so; reconcile then finishes", async () => {
    await crashBeforeUnboundControl();
    const nftBefore = existsSync(options.paths.nftablesConfig)
      ? readFileSync(options.paths.nftablesConfig, "utf8")
      : "";
    const r = await cli(["blocklists", "refresh"]);
    expect(r.code).toBe(1);
    expect(r.err).toContain("an interrupted apply is still pending");
    // unbound matches the saved state now; the firewall file is left to `reconcile` (the unit cannot write /etc).
    expect(hub.datas.has("visitor.pal.")).toBe(false);
    expect(hub.datas.has("tablet.pal.")).toBe(true);
    expect(
      existsSync(options.paths.nftablesConfig) ? readFileSync(options.paths.nftablesConfig, "utf8") : "",
    ).toBe(nftBefore);
    expect(existsSync(journalPath(options.paths))).toBe(true);
    expect((await cli(["reconcile"])).code).toBe(0);
    expect(existsSync(journalPath(options.paths))).toBe(false);
    expect((await cli(["blocklists", "refresh"])).code).toBe(0);
  });

  it("reconcile finds drift between live and saved state without any journal", async () => {
    await crashBeforeUnboundControl();
    rmSync(journalPath(options.paths));
    hub.nftTable = "table inet cloudpal { } # emptied by hand";
    const r = await cli(["reconcile"]);
    expect(r).toEqual({ code: 0, out: "reconciled: nftables, unbound zones\n", err: "" });
    expect(hub.nftTable).toContain(testPeer("tablet", "family").ipv4);
    expect(hub.datas.has("visitor.pal.")).toBe(false);
    expect((await cli(["reconcile"])).out).toBe("reconciled: nothing changed\n");
  });

  it("removes interrupted writes of the state (the hub key) and the addconf peers file at start", async () => {
    expect((await cli(["apply"], JSON.stringify(base))).code).toBe(0);
    const dir = options.paths.stateDir;
    const stale = path.join(dir, ".state.json.0123456789ab.tmp");
    writeFileSync(stale, "{ half a state", { mode: 0o600 });
    writeFileSync(`${options.paths.wireguardConfig}.add`, "[Peer]\n", { mode: 0o600 });
    const unrelated = path.join(dir, ".other.0123456789ab.tmp");
    writeFileSync(unrelated, "");
    expect(removeStaleFiles(options.paths).sort()).toEqual(
      [`${options.paths.wireguardConfig}.add`, stale].sort(),
    );
    writeFileSync(stale, "{ half a state", { mode: 0o600 });
    expect((await cli(["reconcile"])).code).toBe(0);
    expect(existsSync(stale)).toBe(false);
    expect(existsSync(unrelated)).toBe(true);
    expect(log).toContain(`[!] removed ${stale}, left by an interrupted write`);
  });

  it("refuses a state nft -c or unbound-checkconf rejects, in one line, keeping the saved state and the hub", async () => {
    expect((await cli(["apply"], JSON.stringify(base))).code).toBe(0);
    const saved = readFileSync(options.paths.stateFile, "utf8");
    const table = hub.nftTable;
    for (const failing of ["nft -c", "unbound-checkconf"]) {
      hub.failing.splice(0, hub.failing.length, failing);
      const r = await cli(["apply"], JSON.stringify(next));
      expect(r.code).toBe(1);
      expect(r.err).toMatch(
        new RegExp(
          `^the new hub state was refused because ${failing} rejects what it renders \\(injected failure\\); nothing was saved and the hub keeps running the previous state\\.\\n$`,
        ),
      );
      expect(readFileSync(options.paths.stateFile, "utf8")).toBe(saved);
      expect(hub.nftTable).toBe(table);
      expect(hub.datas.has("tablet.pal.")).toBe(false);
      expect(existsSync(journalPath(options.paths))).toBe(false);
    }
  });
});
