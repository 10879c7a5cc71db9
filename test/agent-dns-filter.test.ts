import * as dgram from "dgram";
import * as ipaddr from "ipaddr.js";
import { mkdtempSync, rmSync, writeFileSync, renameSync } from "fs";
import * as net from "net";
import { tmpdir } from "os";
import * as path from "path";
import {
  countLines,
  countLinesAsync,
  FilterTable,
  FilterTableBuilder,
  readTableCounts,
} from "../agent/src/dns-filter-table";
import { writeFileAtomic } from "../lib/atomic-file";
import { DnsFilterServer, questionName } from "../agent/src/dns-filter-server";
import { buildFilterTable, renderRedirect } from "../agent/src/dns-filter";
import { decide, groupOf } from "../agent/src/dns-filter-policy";
import { clientKey, clientsOf } from "../agent/src/filter-clients";
import { storedListPath } from "../agent/src/blocklist-fetch";
import { testState } from "../agent/test-support/state-fixtures";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), "cloudpal-filter-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function table(block: string[], allow: string[] = [], deny: string[] = []): FilterTable {
  const b = new FilterTableBuilder();
  block.forEach((d) => b.addBlocked(d));
  allow.forEach((d) => b.addAllow(d));
  deny.forEach((d) => b.addDeny(d));
  return FilterTable.parse(b.finish());
}

describe("DNS filter table", () => {
  it("refuses a listed name and its subdomains, not its parent or a sibling", () => {
    const t = table(["ads.example.com"]);
    expect(t.verdict("ads.example.com")).toBe("refuse");
    expect(t.verdict("A.B.ADS.example.com.")).toBe("refuse");
    expect(t.verdict("example.com")).toBe("pass");
    expect(t.verdict("notads.example.com")).toBe("pass");
    expect(t.verdict("ads.example.org")).toBe("pass");
    expect(t.verdict("com")).toBe("pass");
  });

  it("an allow entry exempts a name under a blocked parent; deny beats allow", () => {
    const t = table(["example.com"], ["fine.example.com"], ["bad.fine.example.com"]);
    expect(t.verdict("x.example.com")).toBe("refuse");
    expect(t.verdict("fine.example.com")).toBe("pass");
    expect(t.verdict("www.fine.example.com")).toBe("pass");
    expect(t.verdict("bad.fine.example.com")).toBe("refuse");
    expect(t.verdict("x.bad.fine.example.com")).toBe("refuse");
  });

  it("never refuses a device name, and matches entries deeper than the query limit of labels", () => {
    const deep = "a.b.c.d.e.f.g.h.example.com";
    const t = table([deep, "pal.example.com"]);
    expect(t.verdict("laptop.pal")).toBe("pass");
    expect(t.verdict(`x.${deep}`)).toBe("refuse");
    expect(t.verdict("b.c.d.e.f.g.h.example.com")).toBe("pass");
  });

  it("uses a fresh key per table: the same list gives different bytes, the same verdicts", () => {
    const a = new FilterTableBuilder();
    const b = new FilterTableBuilder();
    for (const x of [a, b]) x.addBlocked("ads.example.com");
    const [ba, bb] = [a.finish(), b.finish()];
    expect(ba.equals(bb)).toBe(false);
    expect(FilterTable.parse(bb).verdict("ads.example.com")).toBe("refuse");
  });

  it("refuses a truncated or foreign file instead of loading part of it", () => {
    const bytes = new FilterTableBuilder();
    bytes.addBlocked("ads.example.com");
    const whole = bytes.finish();
    expect(() => FilterTable.parse(whole.subarray(0, whole.length - 1))).toThrow(/does not hold/);
    expect(() => FilterTable.parse(Buffer.from("server:\n  local-zone: x"))).toThrow(/not a CloudPal/);
  });

  it("builds from stored lists streaming, re-checking every line, deduplicated, capped", () => {
    const url = "https://lists.example.org/a.txt";
    writeFileSync(
      storedListPath(dir, url),
      "ads.example.com\nads.example.com\nhub.pal\nNOT A NAME\r\ntracker.example.net\r\nx.example.org",
    );
    const state = testState();
    const s = { ...state, dns: { ...state.dns, blocklists: [url], allow: [], deny: ["d.example.com"] } };
    const built = buildFilterTable(s, dir);
    const t = FilterTable.fromParts(built.parts);
    expect(t.counts).toEqual({ deny: 1, allow: 0, block: 3 });
    expect(t.verdict("tracker.example.net")).toBe("refuse");
    expect(t.verdict("x.example.org")).toBe("refuse");
    expect(t.verdict("hub.pal")).toBe("pass");
    const capped = buildFilterTable(s, dir, 2);
    expect(capped.dropped).toBe(2);
    const file = path.join(dir, "t");
    writeFileAtomic(file, built.parts, 0o600);
    expect(readTableCounts(file)).toEqual({ deny: 1, allow: 0, block: 3 });
    expect(FilterTable.readFile(file).verdict("a.tracker.example.net")).toBe("refuse");
  });

  it("gives the same table from its pieces, its file read whole or in place, and the builder itself", () => {
    const names = Array.from({ length: 5000 }, (_, i) => `n${i}.t${i % 7}.example.com`);
    const build = () => {
      const b = new FilterTableBuilder(Infinity, Buffer.alloc(16, 7));
      b.reserveBlocked(names.length);
      names.forEach((n) => b.addBlocked(n));
      b.addAllow("n1.t1.example.com");
      b.addDeny("evil.example.org");
      return b;
    };
    const parts = build().finishParts();
    // The pieces are the header and views of the builder's sorted arrays: nothing joined.
    expect(parts).toHaveLength(4);
    expect(parts[3].length).toBe(5000 * 8);
    const file = path.join(dir, "t");
    writeFileAtomic(file, parts, 0o600);
    const whole = build().finish();
    const tables = [FilterTable.fromParts(parts), FilterTable.readFile(file), FilterTable.parse(whole)];
    tables.push(build().finishTable());
    for (const t of tables) {
      expect(t.counts).toEqual({ deny: 1, allow: 1, block: 5000 });
      expect(t.verdict("x.n4999.t1.example.com")).toBe("refuse");
      expect(t.verdict("n1.t1.example.com")).toBe("pass");
      expect(t.verdict("a.evil.example.org")).toBe("refuse");
      expect(t.verdict("n5000.t2.example.com")).toBe("pass");
    }
    // The same key and names give the same bytes whichever way they are written.
    expect(Buffer.concat(parts).equals(whole)).toBe(true);
    writeFileSync(file, whole.subarray(0, whole.length - 8));
    expect(() => FilterTable.readFile(file)).toThrow(/does not hold/);
  });

  it("counts a file's lines, with or without a final newline; a missing file has none", async () => {
    const f = path.join(dir, "l");
    writeFileSync(f, "a\nb\nc\n");
    expect(countLines(f)).toBe(3);
    writeFileSync(f, "a\nb\nc");
    expect(countLines(f)).toBe(3);
    writeFileSync(f, "");
    expect(countLines(f)).toBe(0);
    writeFileSync(f, "x\n".repeat(700_000)); // more than one 1 MiB read
    expect(countLines(f)).toBe(700_000);
    // The filter's sliced count (64 KiB reads) agrees, a line cut between two reads included.
    await expect(countLinesAsync(f)).resolves.toBe(700_000);
    writeFileSync(f, "a\nb\nc");
    await expect(countLinesAsync(f)).resolves.toBe(3);
    expect(countLines(path.join(dir, "missing"))).toBe(0);
  });

  it("renders a redirect that hooks before the agent's DNS DNAT", () => {
    const text = renderRedirect(testState(), "cloudpal", "wg0");
    expect(text).toContain("table inet cloudpal_dnsfilter {");
    expect(text).toContain("priority dstnat - 10");
    expect(text).toMatch(
      /iifname "wg0" ip daddr 10\.77\.0\.1 meta l4proto \{ udp, tcp \} th dport 53 redirect to :5300/,
    );
  });

  it("sends the hub's own DNS to its tunnel addresses through the filter, not the filter's own", () => {
    const text = renderRedirect(testState(), "cloudpal", "wg0");
    const output = text.slice(text.indexOf("chain output"));
    expect(output).toContain("type nat hook output priority -110");
    expect(output).toMatch(
      /ip daddr 10\.77\.0\.1 ip saddr != 127\.0\.0\.1 meta l4proto \{ udp, tcp \} th dport 53 dnat ip to 10\.77\.0\.1:5300/,
    );
    expect(output).toMatch(
      /ip6 saddr != ::1 meta l4proto \{ udp, tcp \} th dport 53 dnat ip6 to \[[0-9a-f:]+\]:5300/,
    );
  });
});

describe("DNS filter policy", () => {
  const state = testState();
  const b = new FilterTableBuilder();
  b.addBlocked("ads.example.com");
  const policy = { table: FilterTable.parse(b.finish()), clients: clientsOf(state) };
  const laptop = state.peers.find((p) => p.name === "laptop")!;
  const visitor = state.peers.find((p) => p.name === "visitor")!;

  it("knows each device's group by its tunnel address, IPv4, IPv6 in any spelling, and v4-mapped", () => {
    expect(groupOf(policy, laptop.ipv4)).toBe("family");
    expect(groupOf(policy, `::ffff:${visitor.ipv4}`)).toBe("guest");
    expect(groupOf(policy, visitor.ipv6.toUpperCase())).toBe("guest");
    expect(clientKey(ipaddr.IPv6.parse(visitor.ipv6).toNormalizedString())).toBe(clientKey(visitor.ipv6));
    // The hub's own address (the TCP path's relay asks from it) and strangers have no group.
    expect(groupOf(policy, "10.77.0.1")).toBeUndefined();
    expect(groupOf(policy, "192.0.2.9")).toBeUndefined();
  });

  it("applies the hub-wide table to every asker", () => {
    for (const client of [laptop.ipv4, visitor.ipv6, "10.77.0.1"]) {
      expect(decide(policy, "x.ads.example.com", 1, client)).toBe("refuse");
      expect(decide(policy, "www.example.com", 28, client)).toBe("pass");
      expect(decide(policy, "laptop.pal", 1, client)).toBe("pass");
    }
  });
});

function query(id: number, name: string): Buffer {
  const labels = name.split(".").map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
  const head = Buffer.alloc(12);
  head.writeUInt16BE(id, 0);
  head[2] = 0x01;
  head.writeUInt16BE(1, 4);
  return Buffer.concat([head, ...labels, Buffer.from([0, 0, 1, 0, 1])]);
}

describe("DNS filter server", () => {
  it("refuses listed names itself and relays the rest to the upstream, over UDP and TCP, IDs restored", async () => {
    // The upstream: answers every query with RCODE 0 and its own marker in ARCOUNT, over UDP and TCP.
    const up = dgram.createSocket("udp4");
    const seen: string[] = [];
    up.on("message", (m, r) => {
      seen.push(questionName(m)?.name ?? "?");
      const a = Buffer.from(m);
      a[2] |= 0x80;
      up.send(a, r.port, r.address);
    });
    await new Promise<void>((res) => up.bind(0, "127.0.0.1", res));
    const upPort = up.address().port;
    const upTcp = net.createServer((c) =>
      c.on("data", (d) => {
        const a = Buffer.from(d);
        a[4] |= 0x80;
        c.write(a);
      }),
    );
    await new Promise<void>((res) => upTcp.listen(upPort, "127.0.0.1", res));
    const tableFile = path.join(dir, "table");
    const b = new FilterTableBuilder();
    b.addBlocked("ads.example.com");
    writeFileSync(tableFile, b.finish());
    const port = 20000 + (process.pid % 20000);
    const server = new DnsFilterServer({
      listen: [{ address: "127.0.0.1", port }],
      upstream: { address: "127.0.0.1", port: upPort },
      tableFile,
      log: () => {},
    });
    await server.start();
    const client = dgram.createSocket("udp4");
    const ask = (m: Buffer) =>
      new Promise<Buffer>((res) => {
        client.once("message", res);
        client.send(m, port, "127.0.0.1");
      });
    try {
      const refused = await ask(query(0x1234, "x.ads.example.com"));
      expect(refused.readUInt16BE(0)).toBe(0x1234);
      expect(refused[3] & 0x0f).toBe(5);
      expect(seen).toEqual([]);
      const ok = await ask(query(0x4321, "www.example.com"));
      expect(ok.readUInt16BE(0)).toBe(0x4321);
      expect(ok[2] & 0x80).toBe(0x80);
      expect(ok[3] & 0x0f).toBe(0);
      expect(seen).toEqual(["www.example.com"]);
      // A new table renamed in is picked up on SIGHUP (reload) without a restart.
      const b2 = new FilterTableBuilder();
      b2.addBlocked("www.example.com");
      writeFileSync(`${tableFile}.new`, b2.finish());
      renameSync(`${tableFile}.new`, tableFile);
      server.reload();
      expect((await ask(query(7, "www.example.com")))[3] & 0x0f).toBe(5);
      expect((await ask(query(8, "ads.example.com")))[3] & 0x0f).toBe(0);
      // A broken file keeps the table in use.
      writeFileSync(`${tableFile}.new`, "garbage");
      renameSync(`${tableFile}.new`, tableFile);
      server.reload();
      expect((await ask(query(9, "www.example.com")))[3] & 0x0f).toBe(5);
      // TCP: a refused and a relayed message on one connection.
      const tcp = net.connect(port, "127.0.0.1");
      const frame = (m: Buffer) => Buffer.concat([Buffer.from([m.length >> 8, m.length & 0xff]), m]);
      const got: Buffer[] = [];
      await new Promise<void>((res) => {
        let buf = Buffer.alloc(0);
        tcp.on("data", (d) => {
          buf = Buffer.concat([buf, d]);
          while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
            got.push(buf.subarray(2, 2 + buf.readUInt16BE(0)));
            buf = buf.subarray(2 + buf.readUInt16BE(0));
          }
          if (got.length === 2) res();
        });
        tcp.write(Buffer.concat([frame(query(1, "www.example.com")), frame(query(2, "other.example.com"))]));
      });
      tcp.destroy();
      const byId = new Map(got.map((m) => [m.readUInt16BE(0), m[3] & 0x0f]));
      expect(byId).toEqual(
        new Map([
          [1, 5],
          [2, 0],
        ]),
      );
    } finally {
      client.close();
      server.close();
      up.close();
      upTcp.close();
    }
  });

  it("forgets a forwarded query unbound never answers after 5 s, oldest first, and frees its ID", async () => {
    // An upstream that takes queries and answers none.
    const up = dgram.createSocket("udp4");
    let received = 0;
    up.on("message", () => received++);
    await new Promise<void>((res) => up.bind(0, "127.0.0.1", res));
    const tableFile = path.join(dir, "table");
    writeFileSync(tableFile, new FilterTableBuilder().finish());
    const port = 20001 + (process.pid % 20000);
    const server = new DnsFilterServer({
      listen: [{ address: "127.0.0.1", port }],
      upstream: { address: "127.0.0.1", port: up.address().port },
      tableFile,
      log: () => {},
    });
    await server.start();
    const client = dgram.createSocket("udp4");
    try {
      const sentAt = performance.now();
      for (let i = 0; i < 3; i++) client.send(query(i, `q${i}.example.com`), port, "127.0.0.1");
      await waitUntil(() => received === 3);
      expect(server.inFlight).toBe(3);
      server.sweep(sentAt + 4000);
      expect(server.inFlight).toBe(3);
      server.sweep(performance.now() + 5001);
      expect(server.inFlight).toBe(0);
    } finally {
      client.close();
      server.close();
      up.close();
    }
  });
});

async function waitUntil(ok: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
  if (!ok()) throw new Error("timed out");
}
