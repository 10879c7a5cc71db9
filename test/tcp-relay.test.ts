/**
 * The TCP path (agent/src/tcp-relay/): Shadowsocks AEAD framing against bytes recorded from Debian's
 * shadowsocks-libev (test/fixtures/shadowsocks-vectors.json), the replay cache, the per-device policy, the relay
 * in-process on loopback (a key per device on one port, a load that cuts a revoked device's sessions), the
 * nftables output chain, the access key, and the state and config checks. The end-to-end test with ss-local
 * behind a campus firewall is test/e2e/netns-tcp.test.ts.
 */
import { randomBytes } from "crypto";
import { readFileSync } from "fs";
import * as net from "net";
import * as path from "path";
import {
  AuthError,
  Decryptor,
  Encryptor,
  findKey,
  FIRST_BYTES,
  masterKey,
  MAX_PAYLOAD,
  parseTarget,
  SALT_BYTES,
  sessionSubkey,
} from "../agent/src/tcp-relay/aead";
import { relayOutputChain } from "../agent/src/tcp-relay/nft";
import { decide, relayConfig, type RelayConfig } from "../agent/src/tcp-relay/policy";
import { RelayServer, SaltCache } from "../agent/src/tcp-relay/server";
import { testState } from "../agent/test-support/state-fixtures";
import { ssAccessKey, tcpAccessKeys } from "../model/access-key";
import type { HubState } from "../model/state";
import { StateError, validateHubState } from "../model/state-schema";
import { configProblems } from "./helpers/config-problems";
import { minimalConfig } from "./helpers/fixtures";
import { loadConfig } from "../components/config";

const vectors = JSON.parse(
  readFileSync(path.join(__dirname, "fixtures", "shadowsocks-vectors.json"), "utf8"),
) as {
  password: string;
  clientToServer: { method: "chacha20-ietf-poly1305"; hex: string };
  serverToClient: { method: "aes-256-gcm"; hex: string };
};

const key = (n: number) => Buffer.alloc(32, n).toString("base64url");

describe("framing against shadowsocks-libev's own bytes", () => {
  it("finds ss-local's key among several and reads its target and request", () => {
    const bytes = Buffer.from(vectors.clientToServer.hex, "hex");
    const keys = ["wrong-1", "wrong-2", vectors.password, "wrong-3"].map((pw) => ({
      method: vectors.clientToServer.method,
      master: masterKey(pw),
      owner: pw,
    }));
    const found = findKey(bytes.subarray(0, FIRST_BYTES), keys);
    expect(found?.owner).toBe(vectors.password);
    const plain = Buffer.concat(found!.decryptor.push(bytes.subarray(SALT_BYTES)));
    const parsed = parseTarget(plain);
    expect(parsed?.target).toEqual({ kind: "name", host: "www.lab.example", port: 80 });
    expect(parsed?.rest.toString()).toMatch(/^GET \/vector HTTP\/1\.1\r\nHost: www\.lab\.example\r\n/);
  });

  it("reads ss-server's reply (aes-256-gcm)", () => {
    const bytes = Buffer.from(vectors.serverToClient.hex, "hex");
    const d = new Decryptor(
      vectors.serverToClient.method,
      sessionSubkey(masterKey(vectors.password), bytes.subarray(0, SALT_BYTES)),
    );
    expect(Buffer.concat(d.push(bytes.subarray(SALT_BYTES))).toString()).toBe("reply from the target\n");
  });

  it("a stream fed one byte at a time gives the same payload", () => {
    const bytes = Buffer.from(vectors.clientToServer.hex, "hex");
    const found = findKey(bytes.subarray(0, FIRST_BYTES), [
      { method: vectors.clientToServer.method, master: masterKey(vectors.password), owner: 1 },
    ]);
    const out: Buffer[] = [];
    for (const b of bytes.subarray(SALT_BYTES)) out.push(...found!.decryptor.push(Buffer.from([b])));
    expect(Buffer.concat(out).toString()).toContain("GET /vector");
  });

  it("one flipped bit anywhere fails authentication", () => {
    const bytes = Buffer.from(vectors.clientToServer.hex, "hex");
    const master = masterKey(vectors.password);
    const tampered = Buffer.from(bytes);
    tampered[FIRST_BYTES + 5] ^= 1;
    const found = findKey(tampered.subarray(0, FIRST_BYTES), [
      { method: vectors.clientToServer.method, master, owner: 1 },
    ]);
    expect(() => found!.decryptor.push(tampered.subarray(SALT_BYTES))).toThrow(AuthError);
    const badLength = Buffer.from(bytes);
    badLength[SALT_BYTES] ^= 1;
    expect(
      findKey(badLength.subarray(0, FIRST_BYTES), [
        { method: vectors.clientToServer.method, master, owner: 1 },
      ]),
    ).toBeUndefined();
  });

  it("random bytes and an HTTP request open no key", () => {
    const keys = [vectors.password, "another"].map((pw) => ({
      method: "chacha20-ietf-poly1305" as const,
      master: masterKey(pw),
      owner: pw,
    }));
    expect(findKey(randomBytes(FIRST_BYTES), keys)).toBeUndefined();
    const http = Buffer.from("GET / HTTP/1.1\r\nHost: example.com\r\nUser-Agent: scanner/1.0\r\n\r\n");
    expect(findKey(http.subarray(0, FIRST_BYTES), keys)).toBeUndefined();
  });

  it("our framing round-trips, split into chunks of at most 0x3FFF bytes", () => {
    const master = masterKey("pw");
    for (const method of ["chacha20-ietf-poly1305", "aes-256-gcm"] as const) {
      const e = new Encryptor(method, master, randomBytes(SALT_BYTES));
      const data = randomBytes(MAX_PAYLOAD * 2 + 10);
      const framed = e.frame(data);
      expect(framed.length).toBe(SALT_BYTES + data.length + 3 * (2 + 16 + 16));
      const d = new Decryptor(method, sessionSubkey(master, framed.subarray(0, SALT_BYTES)));
      const chunks = d.push(framed.subarray(SALT_BYTES));
      expect(chunks.map((c) => c.length)).toEqual([MAX_PAYLOAD, MAX_PAYLOAD, 10]);
      expect(Buffer.concat(chunks).equals(data)).toBe(true);
    }
  });

  it("parses the three address types and refuses others", () => {
    const port = Buffer.from([0x01, 0xbb]);
    expect(parseTarget(Buffer.concat([Buffer.from([1, 10, 77, 0, 2]), port]))?.target).toEqual({
      kind: "ip",
      host: "10.77.0.2",
      port: 443,
    });
    const v6 = Buffer.alloc(16);
    v6[0] = 0xfd;
    v6[15] = 1;
    expect(parseTarget(Buffer.concat([Buffer.from([4]), v6, port]))?.target.host).toBe("fd00:0:0:0:0:0:0:1");
    expect(parseTarget(Buffer.from([3, 9, 0x70]))).toBeUndefined(); // incomplete
    expect(() => parseTarget(Buffer.from([7, 1, 2]))).toThrow(AuthError);
    expect(() => parseTarget(Buffer.concat([Buffer.from([3, 3]), Buffer.from("a b"), port]))).toThrow(
      AuthError,
    );
  });
});

describe("replay cache", () => {
  it("refuses a salt seen before and stays bounded", () => {
    const cache = new SaltCache(2);
    const salts = [1, 2, 3, 4].map((n) => Buffer.alloc(32, n));
    expect(cache.add(salts[0])).toBe(true);
    expect(cache.add(salts[0])).toBe(false);
    expect(cache.add(salts[1])).toBe(true);
    expect(cache.add(salts[2])).toBe(true); // rotates: salts 0 and 1 are the previous generation
    expect(cache.add(salts[1])).toBe(false);
    expect(cache.add(salts[3])).toBe(true);
    expect(cache.add(salts[2])).toBe(false);
    expect(cache.add(Buffer.alloc(32, 9))).toBe(true); // rotates again: salts 0 and 1 are forgotten
    expect(cache.add(salts[0])).toBe(true);
  });
});

function tcpState(): HubState {
  const s = testState();
  return {
    ...s,
    hub: { ...s.hub, tcpPort: 443 },
    peers: s.peers.map((p, i) => ({ ...p, tcpKey: key(i + 1) })),
  };
}

describe("policy", () => {
  const state = tcpState();
  const config = relayConfig(state);
  const device = (name: string) => config.devices.find((d) => d.name === name)!;
  const local = new Set(["203.0.113.7", "127.0.0.1"]);
  const phone = state.peers.find((p) => p.name === "phone")!;
  const visitor = state.peers.find((p) => p.name === "visitor")!;

  it("gives every device with a key its group's reach", () => {
    expect(config.port).toBe(443);
    expect(config.devices.map((d) => d.name)).toEqual(["laptop", "phone", "visitor", "camera"]);
    expect(device("laptop").reach).toEqual([phone.ipv4, phone.ipv6]);
    expect(device("visitor").reach).toEqual([]);
    expect(device("camera").internet).toBe(false);
  });

  it.each([
    ["laptop", "phone's address", () => phone.ipv4, 22, true],
    ["laptop", "phone's IPv6", () => phone.ipv6, 8080, true],
    ["laptop", "another group's device", () => visitor.ipv4, 80, false],
    ["visitor", "a family device", () => phone.ipv4, 80, false],
    ["laptop", "the hub's SSH", () => "10.77.0.1", 22, false],
    ["laptop", "the metadata service", () => "169.254.169.254", 80, false],
    ["laptop", "a private range", () => "192.168.1.1", 80, false],
    ["laptop", "the hub's public address", () => "203.0.113.7", 443, false],
    ["laptop", "loopback", () => "127.0.0.1", 8080, false],
    ["laptop", "the internet", () => "198.51.100.2", 443, true],
    ["laptop", "the internet as an IPv4-mapped IPv6", () => "::ffff:198.51.100.2", 443, true],
    ["laptop", "metadata as an IPv4-mapped IPv6", () => "::ffff:169.254.169.254", 80, false],
    ["camera", "the internet without 'internet'", () => "198.51.100.2", 443, false],
    ["laptop", "DNS-over-TLS when encrypted DNS is blocked", () => "198.51.100.2", 853, false],
    ["laptop", "a DoH resolver over HTTPS", () => "1.1.1.1", 443, false],
  ])("%s → %s: %s", (name, _what, host, port, ok) => {
    expect(decide(config, device(name), host(), port, local).ok).toBe(ok);
  });

  it("sends plain DNS to any resolver to the hub's", () => {
    expect(decide(config, device("laptop"), "8.8.8.8", 53, local)).toEqual({
      ok: true,
      host: "10.77.0.1",
      port: 53,
    });
    expect(decide(config, device("camera"), "10.77.0.1", 53, local).ok).toBe(true);
  });

  it("gives an allow-list group no internet on the TCP path (its sites are learned from its own DNS answers)", () => {
    const s = tcpState();
    const groups = s.groups.map((g) =>
      g.name === "guest" ? { ...g, allow: ["school.example"], sites: "allow-list" as const } : g,
    );
    const c = relayConfig({ ...s, groups });
    const visitorDevice = c.devices.find((d) => d.name === "visitor")!;
    expect(visitorDevice.internet).toBe(false);
    expect(decide(c, visitorDevice, "198.51.100.2", 443, local).ok).toBe(false);
    // DNS still goes to the hub's filter.
    expect(decide(c, visitorDevice, "8.8.8.8", 53, local)).toMatchObject({ ok: true, port: 53 });
    expect(c.devices.find((d) => d.name === "laptop")!.internet).toBe(true);
  });

  it("gives a group with its own deny entries, blocklists or deny mode no internet on the TCP path either", () => {
    const s = tcpState();
    for (const own of [
      { deny: ["games.example"], sites: "deny" as const },
      { deny: ["games.example"] },
      { blocklists: ["https://lists.example.org/adult.txt"] },
    ]) {
      const c = relayConfig({
        ...s,
        groups: s.groups.map((g) => (g.name === "guest" ? { ...g, ...own } : g)),
      });
      const visitorDevice = c.devices.find((d) => d.name === "visitor")!;
      expect({ own, internet: visitorDevice.internet }).toEqual({ own, internet: false });
      expect(decide(c, visitorDevice, "198.51.100.2", 443, local).ok).toBe(false);
    }
    // Only a group's own allow entries (less blocking than the hub's) leave it the internet.
    const allowOnly = relayConfig({
      ...s,
      groups: s.groups.map((g) => (g.name === "guest" ? { ...g, allow: ["ads.example.com"] } : g)),
    });
    expect(allowOnly.devices.find((d) => d.name === "visitor")!.internet).toBe(true);
  });

  it("is off without a port, and a device without a key is not there", () => {
    const off = relayConfig(testState({ peers: tcpState().peers }));
    expect(off).toMatchObject({ port: null, devices: [] });
    const s = tcpState();
    const partial = relayConfig({
      ...s,
      peers: s.peers.map((p) => (p.name === "phone" ? { ...p, tcpKey: undefined } : p)),
    });
    expect(partial.devices.map((d) => d.name)).toEqual(["laptop", "visitor", "camera"]);
  });
});

describe("the relay on loopback", () => {
  let relay: RelayServer;
  let target: net.Server;
  let targetPort: number;
  const lines: string[] = [];

  beforeAll(async () => {
    target = net.createServer((c) => c.pipe(c));
    await new Promise<void>((r) => target.listen(0, "127.0.0.1", () => r()));
    targetPort = (target.address() as net.AddressInfo).port;
  });
  afterAll(async () => {
    await relay?.close();
    await new Promise((r) => target.close(r));
  });

  /** A config whose devices may reach loopback: a stand-in tunnel subnet of 127.0.0.0/8. */
  function loopbackConfig(devices: string[]): RelayConfig {
    return {
      version: 1,
      port: 0,
      hubIpv4: "127.0.0.1",
      hubIpv6: "::1",
      ipv4Subnet: "127.0.0.0/8",
      ipv6Prefix: "fd00::/64",
      devices: devices.map((name, i) => ({
        name,
        password: key(i + 10),
        method: "chacha20-ietf-poly1305",
        reach: ["127.0.0.2"],
        internet: false,
        blockEncryptedDns: true,
      })),
    };
  }

  async function session(
    password: string,
    port: number,
  ): Promise<{ sock: net.Socket; echoed: Promise<Buffer> }> {
    const master = masterKey(password);
    const e = new Encryptor("chacha20-ietf-poly1305", master, randomBytes(SALT_BYTES));
    const sock = net.connect(port, "127.0.0.1");
    await new Promise((r) => sock.once("connect", r));
    const addr = Buffer.from([1, 127, 0, 0, 2, targetPort >> 8, targetPort & 0xff]);
    sock.write(e.frame(Buffer.concat([addr, Buffer.from("hello")])));
    const echoed = new Promise<Buffer>((resolve) => {
      let d: Decryptor | undefined;
      let got = Buffer.alloc(0);
      sock.on("data", (data: Buffer) => {
        if (d === undefined) {
          d = new Decryptor("chacha20-ietf-poly1305", sessionSubkey(master, data.subarray(0, SALT_BYTES)));
          data = data.subarray(SALT_BYTES);
        }
        got = Buffer.concat([got, ...d.push(data)]);
        if (got.length >= 5) resolve(got);
      });
    });
    return { sock, echoed };
  }

  it("serves two devices' keys on one port and cuts only the revoked one's session", async () => {
    // 127.0.0.2 is "another device" here; the echo server listens on 127.0.0.1, so point reach at it instead.
    const base = loopbackConfig(["laptop", "phone"]);
    const config: RelayConfig = {
      ...base,
      ipv4Subnet: "127.0.0.0/8",
      devices: base.devices.map((d) => ({ ...d, reach: ["127.0.0.2"] })),
    };
    relay = new RelayServer({
      handshakeTimeoutMs: 5000,
      idleTimeoutMs: 60_000,
      saltCacheSize: 100,
      log: (l) => lines.push(l),
    });
    // Let the echo listen on 127.0.0.2 as well, as a reachable "device".
    const echo2 = net.createServer((c) => c.pipe(c));
    await new Promise<void>((r) => echo2.listen(targetPort, "127.0.0.2", () => r()));
    try {
      expect(await relay.load({ ...config, port: 0 })).toEqual({ changed: true, cut: 0 });
      const port = (relay as unknown as { listener: net.Server }).listener.address() as net.AddressInfo;
      const a = await session(config.devices[0].password, port.port);
      const b = await session(config.devices[1].password, port.port);
      expect((await a.echoed).toString()).toBe("hello");
      expect((await b.echoed).toString()).toBe("hello");
      expect(relay.sessionCount).toBe(2);
      const closed = new Promise((r) => a.sock.once("close", r));
      // The same config again changes nothing; without laptop, its one session is cut before load returns.
      expect(await relay.load({ ...config, port: 0 })).toEqual({ changed: false, cut: 0 });
      const without = { ...config, port: 0, devices: config.devices.slice(1) };
      expect(await relay.load(without)).toEqual({ changed: true, cut: 1 });
      await closed;
      expect(b.sock.destroyed).toBe(false);
      expect(relay.sessionCount).toBe(1);
      b.sock.destroy();
      expect(lines.join("\n")).not.toMatch(/127\.0\.0\.2|hello/);
    } finally {
      await new Promise((r) => echo2.close(r));
    }
  });
});

describe("a port another server holds", () => {
  it("keeps the keys, reports the port, and listens once the same config is pushed again", async () => {
    const holder = net.createServer();
    await new Promise<void>((r) => holder.listen(0, "::", () => r()));
    const port = (holder.address() as net.AddressInfo).port;
    const relay = new RelayServer({
      handshakeTimeoutMs: 1000,
      idleTimeoutMs: 1000,
      saltCacheSize: 10,
      log: () => undefined,
    });
    const config: RelayConfig = { ...relayConfig(tcpState()), port };
    await expect(relay.load(config)).rejects.toThrow(`cannot listen on TCP port ${port}`);
    await new Promise((r) => holder.close(r));
    expect(await relay.load(config)).toEqual({ changed: true, cut: 0 });
    await relay.close();
  });
});

describe("nftables output chain for the relay's user", () => {
  it("holds the relay's user to the union of what devices may reach", () => {
    const chain = relayOutputChain(tcpState(), "cloudpal-tcp").join("\n");
    expect(chain).toContain('meta skuid "cloudpal-tcp" ct state established,related accept');
    expect(chain).toContain('meta skuid "cloudpal-tcp" fib daddr type local drop');
    expect(chain).toContain('meta skuid "cloudpal-tcp" ip daddr @non_internet_v4 drop');
    expect(chain).not.toContain("no group uses the internet");
    const noInternet = { ...tcpState(), mode: "mesh-only" as const };
    expect(relayOutputChain(noInternet, "64000").join("\n")).toContain(
      'meta skuid 64000 drop comment "TCP path: no group uses the internet"',
    );
    expect(relayOutputChain(testState(), "cloudpal-tcp")).toEqual([]);
  });
});

describe("access keys", () => {
  it("is a SIP002 ss:// URI with the method and password in base64url", () => {
    const uri = ssAccessKey({
      host: "vpn.example.com",
      port: 443,
      method: "chacha20-ietf-poly1305",
      password: key(1),
      name: "CloudPal laptop",
    });
    const m = /^ss:\/\/([A-Za-z0-9_-]+)@vpn\.example\.com:443#CloudPal%20laptop$/.exec(uri);
    expect(m).not.toBeNull();
    expect(Buffer.from(m![1], "base64url").toString()).toBe(`chacha20-ietf-poly1305:${key(1)}`);
    expect(ssAccessKey({ host: "2001:db8::1", port: 443, method: "m", password: "p", name: "x" })).toContain(
      "@[2001:db8::1]:443#",
    );
  });

  it("gives each device with a key its key, at the endpoint's host and the TCP port", () => {
    const s = tcpState();
    const keys = tcpAccessKeys({ ...s, hub: { ...s.hub, endpoint: "[2001:db8::7]:51820" } });
    expect(Object.keys(keys)).toEqual(["laptop", "phone", "visitor", "camera"]);
    expect(keys.laptop).toMatch(/^ss:\/\/[A-Za-z0-9_-]+@\[2001:db8::7\]:443#CloudPal%20laptop$/);
    expect(tcpAccessKeys({ ...testState(), hub: { ...testState().hub, endpoint: "h:1" } })).toEqual({});
  });
});

describe("state and config checks", () => {
  it("refuses a malformed key and a TCP port that is SSH's", () => {
    const s = tcpState();
    const bad = {
      ...s,
      hub: { ...s.hub, tcpPort: 22 },
      peers: s.peers.map((p, i) => (i === 0 ? { ...p, tcpKey: "short" } : p)),
    };
    try {
      validateHubState(bad);
      throw new Error("accepted");
    } catch (e) {
      expect(e).toBeInstanceOf(StateError);
      const problems = (e as StateError).problems.join("\n");
      expect(problems).toContain("'peers[0].tcpKey' ((hidden)) is not a TCP-path key");
      expect(problems).not.toContain("short");
    }
    expect(() => validateHubState({ ...s, hub: { ...s.hub, tcpPort: 22 } })).toThrow(
      "'hub.tcpPort' (22) is also 'hub.sshPort'",
    );
    expect(() => validateHubState({ ...s, peers: s.peers })).not.toThrow();
  });

  it("defaults to port 443, turns off with tcpPath: false, and names bad input", () => {
    expect(loadConfig(minimalConfig("digitalocean")).tcpPort).toBe(443);
    expect(loadConfig({ ...minimalConfig("digitalocean"), tcpPath: false }).tcpPort).toBeUndefined();
    expect(loadConfig({ ...minimalConfig("digitalocean"), tcpPort: 8443 }).tcpPort).toBe(8443);
    expect(configProblems({ ...minimalConfig("digitalocean"), tcpPath: false, tcpPort: 443 })).toEqual([
      "'tcpPort' (443) is set but 'tcpPath' is false: remove 'tcpPort', or set 'tcpPath' to true to serve it.",
    ]);
    expect(configProblems({ ...minimalConfig("digitalocean"), tcpPort: 22 })).toEqual([
      "'tcpPort' (22) is kept for SSH: use another port, e.g. 443 (the default), or set 'tcpPath' to false.",
    ]);
    expect(configProblems({ ...minimalConfig("digitalocean"), tcpPort: 70000 })[0]).toMatch(
      /^'tcpPort' \(70000\) is not a port/,
    );
  });
});
