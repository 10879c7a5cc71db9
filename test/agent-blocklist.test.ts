import { createServer, type Server } from "http";
import { mkdtempSync, rmSync, writeFileSync } from "fs";
import type { AddressInfo } from "net";
import { tmpdir } from "os";
import * as path from "path";
import { buildDnsFilter, parseBlocklist, rejectReason } from "../agent/src/blocklist";
import { readStoredList, refreshOne } from "../agent/src/blocklist-fetch";

describe("blocklist parsing", () => {
  it("reads hosts files and plain domain lists, skipping comments and hosts boilerplate", () => {
    const text = [
      "# comment",
      "127.0.0.1 localhost",
      "0.0.0.0 ads.example.com tracker.example.com # inline",
      "::1 ip6-localhost",
      "Metrics.Example.NET.",
      "",
      "   \t",
    ].join("\n");
    expect(parseBlocklist(text)).toEqual({
      domains: ["ads.example.com", "tracker.example.com", "metrics.example.net"],
      invalidLines: 0,
      firstInvalid: undefined,
    });
  });

  it("counts lines in neither format and rejects a source that is mostly such lines", () => {
    const html =
      "<html>\n<body>Captive portal</body>\n" +
      Array.from({ length: 20 }, (_, i) => `<p>line ${i}</p>`).join("\n") +
      "\nads.example.com\n";
    const parsed = parseBlocklist(html);
    expect(parsed.domains).toEqual(["ads.example.com"]);
    expect(rejectReason(parsed)).toMatch(
      /22 of 23 entries are neither hosts-file nor domain-list lines \(first: "<html>"\)/,
    );
    expect(rejectReason(parseBlocklist("# only comments\n"))).toBe("it holds no domains");
  });

  it.each([
    'evil.com"\nserver:',
    "1.2.3.4 ads.example.com",
    "||ads.example.com^",
    "*.example.com",
    "exa mple.com",
  ])("never keeps %j as a domain", (line) => {
    const parsed = parseBlocklist(line);
    expect(parsed.domains.filter((d) => !/^[a-z0-9_.-]+$/.test(d))).toEqual([]);
    expect(parsed.domains).not.toContain("ads.example.com");
  });

  it("combines lists with allow (exempts below) and deny (always), keeping only the top blocked name", () => {
    const f = buildDnsFilter(
      [
        ["a.example.com", "x.a.example.com", "ok.example.org", "t.ok.example.org"],
        ["cdn.blocked.net", "blocked.net"],
      ],
      ["ok.example.org", "www.blocked.net"],
      ["deny.example.com"],
    );
    expect(f.blocked).toEqual(["a.example.com", "blocked.net", "deny.example.com"]);
    expect(f.exempt).toEqual(["www.blocked.net"]);
  });
});

describe("blocklist download", () => {
  let dir: string;
  let server: Server;
  let base: string;
  let body = "";
  let status = 200;
  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.url === "/slow") return; // never answers: exercises the timeout
      res.writeHead(status, { "content-type": "text/plain" });
      res.end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
  beforeEach(() => (dir = mkdtempSync(path.join(tmpdir(), "cloudpal-bl-"))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const bounds = { maxBytes: 10_000, timeoutMs: 500 };

  it("stores a good download and keeps it when the next one fails or is rejected", async () => {
    status = 200;
    body = "0.0.0.0 ads.example.com\nb.example.com\n";
    const ok = await refreshOne(dir, `${base}/list`, bounds);
    expect(ok).toMatchObject({ ok: true, domains: 2 });
    expect(readStoredList(dir, `${base}/list`)).toEqual(["ads.example.com", "b.example.com"]);

    status = 500;
    const failed = await refreshOne(dir, `${base}/list`, bounds);
    expect(failed).toMatchObject({ ok: false, domains: 2 });
    expect(failed.message).toMatch(/kept the last good copy \(2 domains\).*HTTP 500/);

    status = 200;
    body = "<html>\n" + "<div>x</div>\n".repeat(30);
    expect((await refreshOne(dir, `${base}/list`, bounds)).message).toMatch(/rejected/);

    body = "a.example.com\n".repeat(2000);
    expect((await refreshOne(dir, `${base}/list`, bounds)).message).toMatch(/10000-byte bound/);

    expect((await refreshOne(dir, `${base}/slow`, bounds)).message).toMatch(/download failed/);
    expect(readStoredList(dir, `${base}/list`)).toEqual(["ads.example.com", "b.example.com"]);
  });

  it("reads file:// sources with the same bound", async () => {
    const file = path.join(dir, "hosts");
    writeFileSync(file, "0.0.0.0 file.example.com\n");
    expect(await refreshOne(dir, `file://${file}`, bounds)).toMatchObject({ ok: true, domains: 1 });
    writeFileSync(file, "x".repeat(20_000));
    expect((await refreshOne(dir, `file://${file}`, bounds)).message).toMatch(
      /more than the 10000-byte bound/,
    );
  });
});
