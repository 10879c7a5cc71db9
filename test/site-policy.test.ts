/**
 * Per-group site policies (issue 14, part 2): the filter's verdict per group, the answers it learns addresses
 * from, the batched set updates, and the sites table the firewall loads (agent/src/site-policy*.ts).
 * The firewall and the filter together are shown end to end in test/e2e/netns-site-policy.test.ts.
 */
import { FilterTable, FilterTableBuilder } from "../agent/src/dns-filter-table";
import { decide } from "../agent/src/dns-filter-policy";
import { clientsOf } from "../agent/src/filter-clients";
import { mkdirSync, mkdtempSync, renameSync, rmSync, statSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import * as path from "path";
import { storedListPath } from "../agent/src/blocklist-fetch";
import {
  GroupTables,
  allBlocklistUrls,
  answerAddresses,
  DenyResolver,
  NftSession,
  SitePolicyRuntime,
  groupSitePolicies,
  groupVerdict,
  MIN_TIMEOUT_S,
  queryMessage,
  SiteSets,
} from "../agent/src/site-policy";
import { renderSitesTable, siteSetName } from "../agent/src/site-policy-nft";
import { renderNftRuleset } from "../agent/src/nftables-ruleset";
import { peerGlobalIpv6 } from "../model/public-ipv6";
import type { HubState } from "../model/state";
import { testState } from "../agent/test-support/state-fixtures";

function policyState(): HubState {
  const s = testState();
  return {
    ...s,
    groups: [
      { name: "family", reaches: ["family"], internet: true },
      {
        name: "guest",
        reaches: [],
        internet: true,
        allow: ["school.example"],
        sites: "allow-list",
      },
      {
        name: "iot",
        reaches: [],
        internet: true,
        deny: ["games.example"],
        allow: ["ads.example.com"],
        blocklists: ["https://lists.example.org/adult.txt"],
        sites: "deny",
      },
    ],
  };
}

/** A table that blocks `names` (as a group's blocklist would). */
function blockTable(names: string[]): FilterTable {
  const b = new FilterTableBuilder(1000);
  for (const n of names) b.addBlocked(n);
  return FilterTable.parse(b.finish());
}

describe("the verdict for a group's device", () => {
  const adult = blockTable(["adult.example"]);
  const policies = groupSitePolicies(policyState(), () => adult);
  const hub = (v: "refuse" | "pass") => () => v;

  it("allow-list: the allowed names and their subdomains pass, everything else is refused, device names pass", () => {
    const g = policies.get("guest")!;
    expect(groupVerdict(g, "school.example", hub("pass"))).toBe("pass");
    expect(groupVerdict(g, "www.School.Example.", hub("pass"))).toBe("pass");
    expect(groupVerdict(g, "notschool.example", hub("pass"))).toBe("refuse");
    expect(groupVerdict(g, "example", hub("pass"))).toBe("refuse");
    expect(groupVerdict(g, "other.test", hub("pass"))).toBe("refuse");
    expect(groupVerdict(g, "laptop.pal", hub("refuse"))).toBe("pass");
    expect(groupVerdict(g, "pal", hub("pass"))).toBe("pass");
  });

  it("deny group: its deny entries on top of the hub's, its allow winning over the hub's deny, its blocklists", () => {
    const g = policies.get("iot")!;
    expect(groupVerdict(g, "games.example", hub("pass"))).toBe("refuse");
    expect(groupVerdict(g, "www.games.example", hub("pass"))).toBe("refuse");
    expect(groupVerdict(g, "ads.example.com", hub("refuse"))).toBe("pass");
    expect(groupVerdict(g, "tracker.example.net", hub("refuse"))).toBe("refuse");
    expect(groupVerdict(g, "cdn.adult.example", hub("pass"))).toBe("refuse");
    expect(groupVerdict(g, "news.example", hub("pass"))).toBe("pass");
    expect(groupVerdict(g, "camera.pal", hub("refuse"))).toBe("pass");
  });

  it("groups without lists have no policy (the hub-wide verdict alone); only vpn groups with internet are enforced", () => {
    expect([...policies.keys()]).toEqual(["guest", "iot"]);
    expect(policies.get("guest")!.enforced).toBe(true);
    const mesh = groupSitePolicies({ ...policyState(), mode: "mesh-only" });
    expect(mesh.get("guest")!.enforced).toBe(false);
  });

  it("downloads the group's blocklists with the hub's, each once", () => {
    const s = policyState();
    const withHub = {
      ...s,
      dns: { ...s.dns, blocklists: ["https://lists.example.org/adult.txt", "https://a.example/h"] },
    };
    expect(allBlocklistUrls(withHub)).toEqual(["https://lists.example.org/adult.txt", "https://a.example/h"]);
  });
});

/** A response to `query` with `answers` (each: owner as a compression pointer to the question). */
function response(query: Buffer, answers: { type: number; ttl: number; rdata: Buffer }[], rcode = 0): Buffer {
  const head = Buffer.from(query);
  head[2] |= 0x80;
  head[3] = 0x80 | rcode;
  head.writeUInt16BE(answers.length, 6);
  const rrs = answers.map((a) => {
    const rr = Buffer.alloc(12);
    rr.writeUInt16BE(0xc00c, 0);
    rr.writeUInt16BE(a.type, 2);
    rr.writeUInt16BE(1, 4);
    rr.writeUInt32BE(a.ttl, 6);
    rr.writeUInt16BE(a.rdata.length, 10);
    return Buffer.concat([rr, a.rdata]);
  });
  return Buffer.concat([head, ...rrs]);
}

describe("addresses learned from answers", () => {
  it("takes every A and AAAA record of the answer section, through a CNAME, with its TTL", () => {
    const q = queryMessage("www.school.example", 1, 0x1234);
    const cnameTarget = Buffer.from([3, 0x63, 0x64, 0x6e, 0xc0, 0x10]); // cdn.<school.example>
    const msg = response(q, [
      { type: 5, ttl: 300, rdata: cnameTarget },
      { type: 1, ttl: 42, rdata: Buffer.from([203, 0, 113, 80]) },
      { type: 28, ttl: 7, rdata: Buffer.from("20010db8000000000000000000000050", "hex") },
    ]);
    expect(answerAddresses(msg)).toEqual([
      { family: 4, address: "203.0.113.80", ttl: 42 },
      { family: 6, address: "2001:db8::50", ttl: 7 },
    ]);
  });

  it("learns nothing from an error answer, a query, or a truncated message", () => {
    const q = queryMessage("school.example", 1, 1);
    const ok = response(q, [{ type: 1, ttl: 5, rdata: Buffer.from([192, 0, 2, 1]) }]);
    expect(
      answerAddresses(response(q, [{ type: 1, ttl: 5, rdata: Buffer.from([192, 0, 2, 1]) }], 2)),
    ).toEqual([]);
    expect(answerAddresses(q)).toEqual([]);
    expect(answerAddresses(ok.subarray(0, ok.length - 2))).toEqual([]);
  });
});

describe("set updates", () => {
  function recorder() {
    const scripts: string[] = [];
    let release: (() => void) | undefined;
    const run = (script: string) =>
      new Promise<void>((resolve) => {
        scripts.push(script);
        release = resolve;
      });
    return { scripts, run, release: () => release?.() };
  }

  it("renews an element's timeout in one transaction (add, delete, add), at least MIN_TIMEOUT_S", async () => {
    const r = recorder();
    const sets = new SiteSets("cloudpal", r.run);
    const p = sets.add("guest", "allow", [{ family: 4, address: "203.0.113.80", ttl: 5 }]);
    await Promise.resolve();
    r.release();
    await p;
    const el = `inet cloudpal_sites allow4_guest { 203.0.113.80`;
    expect(r.scripts).toEqual([
      `add element ${el} timeout ${MIN_TIMEOUT_S}s }\ndelete element ${el} }\nadd element ${el} timeout ${MIN_TIMEOUT_S}s }\n`,
    ]);
  });

  it("batches what arrives while nft runs into one next transaction, and skips addresses already held longer", async () => {
    const r = recorder();
    let now = 1_000_000;
    const sets = new SiteSets("cloudpal", r.run, () => now);
    const first = sets.add("guest", "allow", [{ family: 4, address: "192.0.2.1", ttl: 100 }]);
    // nft is running: these two wait and then go together.
    const second = sets.add("guest", "allow", [{ family: 6, address: "2001:db8::1", ttl: 100 }]);
    const third = sets.add("iot", "deny", [{ family: 4, address: "192.0.2.9", ttl: 100 }], 10);
    expect(r.scripts).toHaveLength(1);
    r.release();
    await first;
    await Promise.resolve();
    expect(r.scripts).toHaveLength(2);
    expect(r.scripts[1]).toContain("allow6_guest { 2001:db8::1 timeout 100s }");
    expect(r.scripts[1]).toContain("deny4_iot { 192.0.2.9 timeout 110s }");
    r.release();
    await Promise.all([second, third]);
    // The same answer 10 s later (its TTL counted down in unbound's cache): nothing to do.
    now += 10_000;
    await sets.add("guest", "allow", [{ family: 4, address: "192.0.2.1", ttl: 90 }]);
    expect(r.scripts).toHaveLength(2);
    expect(sets.stats).toMatchObject({ batches: 2, elements: 3, skipped: 1 });
    // A longer TTL than held: renewed.
    const renewed = sets.add("guest", "allow", [{ family: 4, address: "192.0.2.1", ttl: 300 }]);
    await Promise.resolve();
    r.release();
    await renewed;
    expect(r.scripts[2]).toContain("192.0.2.1 timeout 300s");
  });

  it("a failed update still lets the answer go, and the address is tried again next time", async () => {
    const lines: string[] = [];
    let fail = true;
    const sets = new SiteSets(
      "cloudpal",
      async (s) => {
        lines.push(s);
        if (fail) throw new Error("Error: No such file or directory");
      },
      Date.now,
      (l) => lines.push(l),
    );
    await sets.add("guest", "allow", [{ family: 4, address: "192.0.2.1", ttl: 60 }]);
    expect(lines[1]).toMatch(/could not update guest's allow set: Error: No such file/);
    fail = false;
    await sets.add("guest", "allow", [{ family: 4, address: "192.0.2.1", ttl: 60 }]);
    expect(lines).toHaveLength(3);
    expect(sets.stats.failures).toBe(1);
  });
});

describe("the sites table", () => {
  it("drops an allow-list group's internet traffic to addresses outside its set, and a deny group's to its set", () => {
    const text = renderSitesTable(policyState(), "cloudpal", "wg0");
    const s = policyState();
    const guest = s.peers.find((p) => p.group === "guest")!;
    const iot = s.peers.find((p) => p.group === "iot")!;
    expect(text).toContain(`set ${siteSetName("guest", "allow", 4)} {\n    type ipv4_addr; flags timeout;`);
    expect(text).toContain(`set allow6_guest {\n    type ipv6_addr; flags timeout;`);
    expect(text).toContain(
      `iifname "wg0" oifname != "wg0" ip saddr { ${guest.ipv4} } ip daddr != @allow4_guest drop comment "guest: only allowed sites"`,
    );
    expect(text).toContain(
      `iifname "wg0" oifname != "wg0" ip6 saddr { ${guest.ipv6} } ip6 daddr != @allow6_guest drop`,
    );
    expect(text).toContain(
      `iifname "wg0" oifname != "wg0" ip saddr { ${iot.ipv4} } ip daddr @deny4_iot drop comment "iot: denied sites"`,
    );
    // Sets are declared, never deleted: the addresses the filter put there survive an apply.
    expect(text).not.toMatch(/delete table|flush set|flush table/);
    expect(text.indexOf("flush chain inet cloudpal_sites forward")).toBeGreaterThan(
      text.indexOf("set deny6_iot"),
    );
    expect(text.indexOf("ct state established,related accept")).toBeLessThan(text.indexOf("drop"));
  });

  it("is deleted when no group has an enforced site mode, and is part of the ruleset the agent loads", () => {
    const open = testState();
    expect(renderSitesTable(open, "cloudpal", "wg0")).toBe(
      "table inet cloudpal_sites {}\ndelete table inet cloudpal_sites\n",
    );
    expect(renderSitesTable({ ...policyState(), mode: "mesh-only" }, "cloudpal", "wg0")).toContain(
      "delete table inet cloudpal_sites",
    );
    const ruleset = renderNftRuleset(policyState(), { table: "cloudpal", interface: "wg0" });
    expect(ruleset.endsWith(renderSitesTable(policyState(), "cloudpal", "wg0"))).toBe(true);
  });

  it("allow-list groups get no DNS-over-TLS and no known DNS-over-HTTPS endpoints, whatever encryptedDns says", () => {
    const s = policyState();
    const groups = s.groups.map((g) => (g.name === "guest" ? { ...g, encryptedDns: "allow" as const } : g));
    const ruleset = renderNftRuleset({ ...s, groups }, { table: "cloudpal", interface: "wg0" });
    expect(ruleset).toMatch(
      /ip saddr @group1_v4 meta l4proto \{ tcp, udp \} th dport 853 reject comment "guest: encrypted DNS blocked"/,
    );
    expect(ruleset).toMatch(
      /ip saddr @group1_v4 ip daddr @doh_v4 meta l4proto \{ tcp, udp \} th dport 443 reject/,
    );
  });
});

describe("in the filter's decision, per asking device", () => {
  const s = policyState();
  const hubTable = (() => {
    const b = new FilterTableBuilder(1000);
    b.addDeny("ads.example.com");
    b.addBlocked("tracker.example.net");
    return FilterTable.parse(b.finish());
  })();
  const policy = { table: hubTable, clients: clientsOf(s), groups: groupSitePolicies(s) };
  const addressOf = (group: string) => s.peers.find((p) => p.group === group)!.ipv4;

  it("judges each device by its group, and everyone else (the hub, an unknown address) by the hub's table", () => {
    expect(decide(policy, "other.test", 1, addressOf("guest"))).toBe("refuse");
    expect(decide(policy, "other.test", 1, addressOf("family"))).toBe("pass");
    expect(decide(policy, "school.example", 28, addressOf("guest"))).toBe("pass");
    expect(decide(policy, "ads.example.com", 1, addressOf("iot"))).toBe("pass");
    expect(decide(policy, "ads.example.com", 1, addressOf("family"))).toBe("refuse");
    expect(decide(policy, "games.example", 1, addressOf("iot"))).toBe("refuse");
    expect(decide(policy, "games.example", 1, "10.77.0.1")).toBe("pass");
    expect(decide(policy, "tracker.example.net", 1, "192.0.2.99")).toBe("refuse");
  });

  it("knows a device by its global IPv6 too, where the hub gives devices one", () => {
    const withGlobal: HubState = {
      ...s,
      hub: { ...s.hub, publicIpv6: { prefix: "2001:db8:1::/64", addresses: [], deviceAddresses: true } },
    };
    const guest = withGlobal.peers.find((p) => p.group === "guest")!;
    const global = peerGlobalIpv6(withGlobal.hub, guest)!;
    const p = { table: hubTable, clients: clientsOf(withGlobal), groups: groupSitePolicies(withGlobal) };
    // Asked from the global address, the guest's allow-list still holds (not the hub's table, which passes it).
    expect(decide(p, "other.test", 1, global)).toBe("refuse");
    expect(decide(p, "school.example", 1, global.toUpperCase())).toBe("pass");
    expect(decide(policy, "other.test", 1, global)).toBe("pass");
  });

  it("learns only for an allow-list group's devices, and resolves only a deny group's denied names", async () => {
    const scripts: string[] = [];
    const sets = new SiteSets("cloudpal", async (x) => void scripts.push(x));
    const asked: string[] = [];
    const deny = new DenyResolver(sets, { address: "127.0.0.1", port: 53 }, async (name) => {
      asked.push(name);
      return [{ family: 4, address: "192.0.2.7", ttl: 60 }];
    });
    const groupOfAddress = new Map(s.peers.map((p) => [p.ipv4, p.group]));
    const runtime = new SitePolicyRuntime(sets, deny, (c) => groupOfAddress.get(c));
    runtime.update(groupSitePolicies(s));
    await new Promise((r) => setImmediate(r));
    // On update, each deny entry of the enforced deny group is resolved into its set.
    expect(asked).toEqual(["games.example"]);
    expect(runtime.learnerFor(addressOf("family"))).toBeUndefined();
    expect(runtime.learnerFor(addressOf("iot"))).toBeUndefined();
    const learn = runtime.learnerFor(addressOf("guest"))!;
    const q = queryMessage("school.example", 1, 9);
    await learn(response(q, [{ type: 1, ttl: 120, rdata: Buffer.from([203, 0, 113, 9]) }]));
    expect(scripts.join("")).toContain("allow4_guest { 203.0.113.9 timeout 120s }");
    runtime.refused(addressOf("iot"), "WWW.Games.Example.");
    runtime.refused(addressOf("iot"), "tracker.example.net"); // refused by the hub's list, not a site: no lookup
    runtime.refused(addressOf("guest"), "games.example");
    await new Promise((r) => setImmediate(r));
    expect(asked).toEqual(["games.example", "www.games.example"]);
    runtime.stop();
  });
});

describe("the persistent nft -i session", () => {
  // A stand-in for `nft -i` that answers as nft 1.0.6 does (checked by hand in a namespace): a line it cannot
  // parse or process gets "Error: ...", the line and a caret line on stderr; "die" ends it.
  const fakeNft = [
    process.execPath,
    "-e",
    `require("readline").createInterface({ input: process.stdin }).on("line", (l) => {
      if (l.includes("die")) process.exit(3);
      if (l.includes("bad")) process.stderr.write("Error: Could not process rule: No such file or directory\\n" + l + "\\n     ^^^\\n");
      else if (l === "cloudpal-batch-end") process.stderr.write("Error: syntax error, unexpected newline, expecting string\\n" + l + "\\n            ^\\n");
      else process.stdout.write("");
    });`,
  ];

  it("sends a batch as one line (one nft transaction) and settles it when nft answers the marker", async () => {
    const session = new NftSession(fakeNft);
    try {
      await session.run(
        "add element inet t s { 192.0.2.1 timeout 30s }\ndelete element inet t s { 192.0.2.1 }\n",
      );
      await expect(session.run("add element bad\n")).rejects.toThrow(/No such file or directory/);
      await session.run("add element inet t s { 192.0.2.2 timeout 30s }\n");
      // The session died: the batch fails, and the next one starts a new process.
      await expect(session.run("die\n")).rejects.toThrow(/nft -i exited \(3\)/);
      await session.run("add element inet t s { 192.0.2.3 timeout 30s }\n");
    } finally {
      session.close();
    }
  });
});

describe("the groups' blocklist tables in the filter process", () => {
  let dir: string;
  const url = "https://lists.example.org/kids.txt";
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), "cloudpal-grouptables-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** Stores a list the way a refresh does: a new file renamed over the old one. */
  function store(names: string[]): void {
    const file = storedListPath(dir, url);
    writeFileSync(`${file}.part`, names.join("\n") + "\n");
    renameSync(`${file}.part`, file);
  }

  /** GroupTables whose onBuilt resolves the promise `next()` hands out. */
  function tables() {
    let wake: () => void = () => {};
    const t = new GroupTables(dir, 1_000_000, () => wake());
    return { t, next: () => new Promise<void>((r) => (wake = r)) };
  }

  it("builds a table once, keeps it while the stored copy is the same file, rebuilds when a refresh replaces it", async () => {
    store(["adult.example"]);
    const { t, next } = tables();
    let built = next();
    expect(t.get("kids", [url])).toBeUndefined(); // nothing until the first build is done
    await built;
    const first = t.get("kids", [url]);
    expect(first?.verdict("www.adult.example")).toBe("refuse");
    // A device added or moved loads the policies again: the same table, no build.
    expect(t.get("kids", [url])).toBe(first);
    expect(t.builds).toBe(1);
    // A refresh renames a new copy in: the old table serves until the new one is ready.
    store(["gambling.example"]);
    built = next();
    expect(t.get("kids", [url])).toBe(first);
    await built;
    const second = t.get("kids", [url]);
    expect(t.builds).toBe(2);
    expect(second?.verdict("www.adult.example")).toBe("pass");
    expect(second?.verdict("gambling.example")).toBe("refuse");
    // A set of URLs no group names any more is forgotten (its memory freed).
    t.keepOnly([]);
    built = next();
    expect(t.get("kids", [url])).toBeUndefined();
    await built;
  });

  it("keeps a group's last table while a table for its new lists builds", async () => {
    store(["adult.example"]);
    const second = "https://lists.example.org/gambling.txt";
    writeFileSync(storedListPath(dir, second), "gambling.example\n");
    const { t, next } = tables();
    let built = next();
    t.get("kids", [url]);
    await built;
    const first = t.get("kids", [url]);
    // A list added to the group: until its table is ready the group keeps blocking what it blocked.
    built = next();
    expect(t.get("kids", [url, second])).toBe(first);
    await built;
    const both = t.get("kids", [url, second]);
    expect(both?.verdict("adult.example")).toBe("refuse");
    expect(both?.verdict("gambling.example")).toBe("refuse");
  });

  it("logs a build that fails once and tries again only when the lists change", async () => {
    // A stored copy that cannot be read (here a directory where the file should be).
    mkdirSync(storedListPath(dir, url));
    const log: string[] = [];
    let logged: () => void = () => {};
    let wake: () => void = () => {};
    let built = 0;
    const t = new GroupTables(
      dir,
      1000,
      () => {
        built++;
        wake();
      },
      (l) => {
        log.push(l);
        logged();
      },
    );
    const failed = new Promise<void>((r) => (logged = r));
    expect(t.get("kids", [url])).toBeUndefined();
    await failed;
    // Asked again and again (each state change, each new hub table): no new build, no new line. A retry would
    // fail within two turns of the event loop (one to start, the read that fails is synchronous).
    for (let i = 0; i < 5; i++) {
      expect(t.get("kids", [url])).toBeUndefined();
      for (let turn = 0; turn < 10; turn++) await new Promise((r) => setImmediate(r));
    }
    expect(log).toHaveLength(1);
    expect(log[0]).toMatch(/group kids: its blocklist table was not rebuilt/);
    expect(built).toBe(0);
    // The refresh stores a good copy: built.
    rmSync(storedListPath(dir, url), { recursive: true });
    store(["adult.example"]);
    const done = new Promise<void>((r) => (wake = r));
    t.get("kids", [url]);
    await done;
    expect(built).toBe(1);
    expect(t.get("kids", [url])?.verdict("adult.example")).toBe("refuse");
  });

  it("builds in slices, giving the event loop turns to answer queries in between", async () => {
    store(Array.from({ length: 200_000 }, (_, i) => `n${i}.tracker${i % 97}.example.com`));
    const { t, next } = tables();
    const built = next();
    let turns = 0;
    let ticking = true;
    const tick = () => {
      turns++;
      if (ticking) setImmediate(tick);
    };
    setImmediate(tick);
    t.get("kids", [url]);
    await built;
    ticking = false;
    // One slice per 64 KiB read (about 90 for this 6 MB list), each followed by a turn of the loop. Built in
    // one go, as before, the loop got no turn at all until the table was done.
    const slices = Math.floor(statSync(storedListPath(dir, url)).size / 65536);
    expect(slices).toBeGreaterThan(50);
    expect(turns).toBeGreaterThanOrEqual(slices - 1);
    expect(t.get("kids", [url])?.counts.block).toBe(200_000);
  });
});
