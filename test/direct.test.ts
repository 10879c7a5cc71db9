/** Direct connections: the pair rule, the discovery answer, the report parser, the probe format, hub status lines. */
import { answerFor, formatDirectPaths, parseEndpoints, parseReport } from "../agent/src/discovery";
import { renderNftRuleset } from "../agent/src/nftables-ruleset";
import { chooseEndpoint } from "../device/src/helper";
import { directPeersOf, parseProbe, probePacket, type HelperReport } from "../model/direct";
import { testState } from "../agent/test-support/state-fixtures";

const state = testState({
  groups: [
    { name: "family", reaches: ["family", "iot"], internet: true },
    { name: "guest", reaches: [], internet: true },
    { name: "iot", reaches: [], internet: false },
  ],
});
const peer = (name: string) => state.peers.find((p) => p.name === name)!;
const report: HelperReport = {
  listenPort: 40000,
  lan: ["192.168.1.20/24"],
  nat: "endpoint-independent",
  pairs: {},
};

describe("which pairs may go direct", () => {
  it("only where both groups reach each other: a one-way rule stays with the hub's firewall", () => {
    expect(directPeersOf(state, peer("laptop")).map((p) => p.name)).toEqual(["phone"]);
    expect(directPeersOf(state, peer("camera"))).toEqual([]);
    expect(directPeersOf(state, peer("visitor"))).toEqual([]);
  });
});

describe("the discovery answer", () => {
  const endpoints = parseEndpoints(
    state.peers
      .map((p, i) => `${p.publicKey}\t${i === 3 ? "(none)" : `203.0.113.${i + 1}:5182${i}`}`)
      .join("\n"),
  );
  it("names every reachable device, with endpoint, LAN and NAT only for devices that run the helper", () => {
    const seen = new Map([[peer("phone").publicKey, { at: 1000, report }]]);
    const a = answerFor(state, peer("laptop"), endpoints, seen, 2000);
    expect(a.self).toEqual({ name: "laptop", endpoint: "203.0.113.1:51820" });
    expect(a.peers).toEqual([
      expect.objectContaining({
        name: "phone",
        helper: true,
        endpoint: "203.0.113.2:51821",
        lan: report.lan,
      }),
    ]);
    // Without a fresh report, no endpoint.
    const stale = answerFor(state, peer("laptop"), endpoints, seen, 1000 + 61_000);
    expect(stale.peers[0]).toEqual(expect.objectContaining({ name: "phone", helper: false }));
    expect(stale.peers[0]).not.toHaveProperty("endpoint");
    expect(stale.generation).not.toBe(a.generation);
  });
  it("gives a guest nobody's endpoint", () => {
    const seen = new Map(state.peers.map((p) => [p.publicKey, { at: 1000, report }]));
    const a = answerFor(state, peer("visitor"), endpoints, seen, 2000);
    expect(a.peers).toEqual([]);
    expect(JSON.stringify(a)).not.toContain("203.0.113.2");
  });
});

describe("a helper's report", () => {
  it("is accepted when well formed", () => {
    const r = parseReport(
      JSON.stringify({ ...report, pairs: { phone: { path: "direct", reason: "ok", since: 1 } }, wait: true }),
    );
    expect(r).toMatchObject({ listenPort: 40000, wait: true });
  });
  it.each([
    ["not JSON", "{"],
    ["listenPort", JSON.stringify({ ...report, listenPort: 0 })],
    ["lan", JSON.stringify({ ...report, lan: ["192.168.1.20/24\nx"] })],
    ["nat", JSON.stringify({ ...report, nat: "full-cone" })],
    [
      "pairs.phone",
      JSON.stringify({ ...report, pairs: { phone: { path: "direct", reason: "a\u001b[2J", since: 1 } } }),
    ],
    [
      "pairs.../x",
      JSON.stringify({ ...report, pairs: { "../x": { path: "direct", reason: "a", since: 1 } } }),
    ],
  ])("is refused: %s", (why, text) => {
    expect(parseReport(text)).toBe(why);
  });
});

describe("NAT probes", () => {
  it("round-trip, are 64 bytes, and never look like a WireGuard message", () => {
    const nonce = Buffer.from("0123456789abcdef", "hex");
    const p = probePacket(nonce);
    expect(p.length).toBe(64);
    expect(p[0]).toBeGreaterThan(4);
    expect(parseProbe(p)).toEqual({ nonce });
    expect(parseProbe(probePacket(nonce, "198.51.100.7:40001"))).toEqual({
      nonce,
      observed: "198.51.100.7:40001",
    });
    expect(parseProbe(Buffer.alloc(64))).toBeUndefined();
  });
});

describe("the endpoint a helper dials", () => {
  const cand = {
    name: "nas",
    publicKey: "k",
    ipv4: "10.77.0.9",
    ipv6: "fd7a::9",
    helper: true,
    endpoint: "198.51.100.7:41000",
    lan: ["192.168.1.30/24"],
    listenPort: 51000,
  };
  it("is the LAN address behind the same public address on a shared subnet", () => {
    expect(chooseEndpoint(cand, "198.51.100.7:42000", ["192.168.1.20/24"])).toBe("192.168.1.30:51000");
  });
  it("is the public endpoint otherwise", () => {
    expect(chooseEndpoint(cand, "198.51.100.7:42000", ["10.0.0.2/24"])).toBe("198.51.100.7:41000");
    expect(chooseEndpoint(cand, "203.0.113.1:42000", ["192.168.1.20/24"])).toBe("198.51.100.7:41000");
  });
});

describe("the hub's status lines", () => {
  it("say direct, or relayed and why, per pair", () => {
    const now = 100_000;
    const lines = formatDirectPaths(
      state,
      {
        written: now,
        helpers: {
          laptop: {
            at: now,
            ...report,
            pairs: { phone: { path: "relayed", reason: "symmetric NAT at phone", since: 1 } },
          },
          phone: { at: now, ...report, nat: "per-destination", pairs: {} },
        },
      },
      now,
    );
    expect(lines).toEqual(["  laptop ↔ phone: relayed: laptop: symmetric NAT at phone"]);
    expect(formatDirectPaths(state, undefined, now)).toEqual([
      "  laptop ↔ phone: relayed: no helper on laptop and phone",
    ]);
  });
});

describe("the hub's firewall for direct connections", () => {
  const render = (extra: number[]) =>
    renderNftRuleset(
      { ...state, hub: { ...state.hub, wireguardExtraPorts: extra } },
      { table: "t", interface: "wg0" },
    );
  it("redirects probes on two WireGuard ports to two reflector ports, before the extra ports' own redirect", () => {
    const lines = render([443, 53]).split("\n");
    const probe51820 = lines.findIndex((l) =>
      /udp dport 51820 @th,64,32 0x43504e50 redirect to :3479/.test(l),
    );
    const probe443 = lines.findIndex((l) => /udp dport 443 @th,64,32 0x43504e50 redirect to :3480/.test(l));
    const extra = lines.findIndex((l) => l.includes("WireGuard on extra ports"));
    expect([probe51820 > 0, probe443 > probe51820, extra > probe443]).toEqual([true, true, true]);
    // The reflector ports are reached only through that redirect, and discovery only from the tunnel.
    expect(lines.filter((l) => /3479|3480/.test(l) && l.includes("accept"))).toEqual([
      expect.stringContaining("udp dport { 3479, 3480 } ct status dnat"),
    ]);
    expect(lines.filter((l) => l.includes("51821"))).toEqual([
      expect.stringMatching(/iifname "wg0" ip daddr 10\.77\.0\.1 tcp dport 51821 accept/),
    ]);
  });
  it("has one vantage point without extra ports", () => {
    expect(render([]).match(/@th,64,32/g)).toHaveLength(1);
  });
});
