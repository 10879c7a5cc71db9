import { renderNftRuleset } from "../agent/src/nftables-ruleset";
import {
  blocklistZones,
  countZoneLines,
  desiredZones,
  renderBlocklistZones,
  zonesInputs,
  diffZones,
  parseUnboundZones,
  renderUnboundSettings,
  renderUnboundZones,
} from "../agent/src/unbound-config";
import { parseWgDump, renderWireguardConfig, wireguardMatches } from "../agent/src/wireguard-config";
import { buildDnsFilter } from "../agent/src/blocklist";
import type { HubState } from "../model/state";
import { fixedKeyPair, testState } from "../agent/test-support/state-fixtures";

const nft = (s: HubState) => renderNftRuleset(s, { table: "cloudpal", interface: "wg0" });

describe("WireGuard config", () => {
  it("has one peer per device, AllowedIPs exactly its own /32 and /128, and no wg-quick-only lines", () => {
    const s = testState();
    const text = renderWireguardConfig(s);
    expect(text.match(/^\[Peer\]$/gm)).toHaveLength(4);
    expect(text).toContain(
      `PublicKey = ${s.peers[0].publicKey}\nPresharedKey = ${s.peers[0].presharedKey}\nAllowedIPs = ${s.peers[0].ipv4}/32, ${s.peers[0].ipv6}/128`,
    );
    expect(text).toContain(`PrivateKey = ${s.hub.privateKey}\nListenPort = 51820`);
    expect(text).not.toMatch(/^(Address|DNS|PostUp|SaveConfig)/m);
  });

  it("does not change when peers are reordered", () => {
    const s = testState();
    expect(renderWireguardConfig({ ...s, peers: [...s.peers].reverse() })).toBe(renderWireguardConfig(s));
  });

  it("compares the desired peers with a live `wg show dump`", () => {
    const s = testState();
    const hub = fixedKeyPair("hub");
    const rows = [[hub.privateKey, hub.publicKey, "51820", "off"].join("\t")];
    for (const p of s.peers)
      rows.push(
        [
          p.publicKey,
          p.presharedKey ?? "(none)",
          "198.51.100.7:4444",
          `${p.ipv6}/128,${p.ipv4}/32`,
          "1700000000",
          "10",
          "20",
          "off",
        ].join("\t"),
      );
    const dump = parseWgDump(rows.join("\n") + "\n");
    expect(dump.peers[0]).toMatchObject({
      endpoint: "198.51.100.7:4444",
      latestHandshake: 1700000000,
      rxBytes: 10,
      txBytes: 20,
    });
    expect(wireguardMatches(s, dump)).toBe(true);
    expect(wireguardMatches({ ...s, peers: s.peers.slice(1) }, dump)).toBe(false);
    expect(wireguardMatches({ ...s, hub: { ...s.hub, listenPort: 51821 } }, dump)).toBe(false);
  });
});

describe("nftables ruleset", () => {
  it("replaces only its own table, atomically, and denies by default", () => {
    const text = nft(testState());
    expect(text.split("\n").slice(1, 4)).toEqual([
      "table inet cloudpal {}",
      "delete table inet cloudpal",
      "table inet cloudpal {",
    ]);
    expect(text).not.toContain("flush ruleset");
    // Default deny is the last rule of each filter chain, not the policy: see nftables-ruleset.ts for why.
    for (const chain of ["input", "forward"]) {
      const body = text.slice(text.indexOf(`  chain ${chain} {`));
      const lines = body.slice(0, body.indexOf("\n  }")).split("\n");
      expect(lines[1]).toBe(`    type filter hook ${chain} priority filter; policy accept;`);
      expect(lines[lines.length - 1]).toBe('    drop comment "default deny"');
    }
  });

  it("keeps SSH open from the allowed CIDRs and WireGuard open to all; DNS only from the tunnel", () => {
    const text = nft(testState());
    expect(text).toMatch(/set ssh_v4 \{\n.*elements = \{ 203\.0\.113\.0\/24 \}/);
    expect(text).toMatch(/set ssh_v6 \{\n.*elements = \{ 2001:db8::\/32 \}/);
    expect(text).toContain("tcp dport 22 ip saddr @ssh_v4 accept");
    expect(text).toContain("udp dport 51820 accept");
    expect(text).toContain(
      'iifname "wg0" ip daddr 10.77.0.1 meta l4proto { udp, tcp } th dport { 53, 5300 } accept',
    );
    expect(text).not.toMatch(/^\s+(udp|tcp|meta l4proto.*) dport 53 accept/m);
  });

  it("enforces groups with one address set per group", () => {
    const s = testState();
    const text = nft(s);
    expect(text).toMatch(
      new RegExp(
        `set group0_v4 \\{\\n.*comment "group family"; elements = \\{ ${s.peers[0].ipv4}, ${s.peers[1].ipv4} \\}`,
      ),
    );
    expect(text).toContain('ip saddr @group0_v4 ip daddr @group0_v4 accept comment "family reaches family"');
    // guest reaches nobody: no rule lets a guest address open a connection to another peer.
    expect(text).not.toMatch(/oifname "wg0" ip saddr @group1_v4/);
  });

  it("masquerades in vpn mode only for groups with internet, and never lets peers reach private or metadata ranges", () => {
    const text = nft(testState());
    expect(text).toContain(
      'iifname "wg0" oifname != "wg0" ip saddr @group1_v4 ip daddr != @non_internet_v4 accept',
    );
    expect(text).not.toContain("ip saddr @group2_v4 ip daddr != @non_internet_v4"); // iot: no internet
    expect(text).toContain('oifname != "wg0" oifname != "lo" ip saddr 10.77.0.0/16 masquerade');
    expect(text).toContain('iifname "wg0" ip daddr 169.254.0.0/16 drop');
    expect(text).toContain('iifname "wg0" ip6 daddr fe80::/10 drop');
    expect(text).toMatch(/set non_internet_v4 \{\n.*169\.254\.0\.0\/16.*172\.16\.0\.0\/12/);
  });

  it("has no egress and no NAT at all in mesh-only mode", () => {
    const text = nft({ ...testState(), mode: "mesh-only" });
    expect(text).not.toContain("masquerade");
    expect(text).not.toContain('oifname != "wg0" ip');
    expect(text).not.toContain("hook postrouting");
  });

  it("redirects the extra WireGuard ports to the listen port from the internet side only, and opens nothing else for them", () => {
    const s = testState();
    const text = nft({ ...s, hub: { ...s.hub, wireguardExtraPorts: [443, 53] } });
    const prerouting = text.slice(text.indexOf("  chain prerouting {"));
    expect(prerouting).toContain(
      'iifname != { "wg0", "lo" } udp dport { 443, 53 } redirect to :51820 comment "WireGuard on extra ports"',
    );
    // Accepted in input as the listen port after the redirect: no accept for 443 or 53 of their own.
    expect(text).not.toMatch(/^\s+udp dport (443|53)\b/m);
    for (const none of [undefined, []]) {
      expect(nft({ ...s, hub: { ...s.hub, wireguardExtraPorts: none } })).not.toContain("redirect to :51820");
    }
  });

  it("drops spoofed sources in both directions", () => {
    const text = nft(testState());
    expect(text).toContain('iifname "wg0" ip saddr != @peers_v4 drop');
    expect(text).toContain('iifname "wg0" ip6 saddr != @peers_v6 drop');
    expect(text).toContain('iifname != "wg0" ip saddr 10.77.0.0/16 drop');
  });
});

describe("unbound", () => {
  it("listens only on the hub's tunnel addresses and forwards over TLS with DNSSEC", () => {
    const text = renderUnboundSettings(testState(), { caBundle: "/etc/ssl/certs/ca-certificates.crt" });
    expect(text.match(/^\s+interface: .*$/gm)).toEqual([
      "    interface: 10.77.0.1",
      "    interface: fd7a:c10d:9a1::1",
    ]);
    expect(text).toContain("forward-tls-upstream: yes");
    expect(text).toContain("forward-addr: 9.9.9.9@853#dns.quad9.net");
    expect(text).toContain('tls-cert-bundle: "/etc/ssl/certs/ca-certificates.crt"');
    expect(text).toContain('module-config: "validator iterator"');
    expect(text).toContain("log-queries: no");
  });

  it("turns DNSSEC and query logging as the state says; checks upstreams against the CA bundle it is given", () => {
    const s = testState();
    const text = renderUnboundSettings(
      { ...s, dns: { ...s.dns, dnssec: false, queryLog: true } },
      { caBundle: "/tmp/lab/ca.pem" },
    );
    expect(text).toContain('module-config: "iterator"');
    expect(text).toContain("log-queries: yes");
    expect(text).toContain('tls-cert-bundle: "/tmp/lab/ca.pem"');
    expect(text).toContain("forward-tls-upstream: yes");
  });

  it("names every peer and the hub in A and AAAA, refuses blocked domains and exempts allowed ones", () => {
    const s = testState();
    const zones = desiredZones(
      s,
      buildDnsFilter(
        [["tracker.example.org", "good.example.com", "x.good.example.com"]],
        ["good.example.com", "cdn.ads.example.com"],
        s.dns.deny,
      ),
    );
    const text = renderUnboundZones(zones);
    expect(text).toContain('local-zone: "pal." static');
    expect(text).toContain(`local-data: "laptop.pal. 300 IN A ${s.peers[0].ipv4}"`);
    expect(text).toContain(`local-data: "laptop.pal. 300 IN AAAA ${s.peers[0].ipv6}"`);
    expect(text).toContain('local-data: "hub.pal. 300 IN A 10.77.0.1"');
    expect(text).toContain('local-zone: "tracker.example.org." always_refuse');
    expect(text).toContain('local-zone: "ads.example.com." always_refuse');
    expect(text).not.toContain("good.example.com");
    // deny beats allow for names below a denied domain
    expect(text).not.toContain("cdn.ads.example.com");
    expect(parseUnboundZones(text)).toEqual(zones);
  });

  it("writes the blocklist file straight from the filter, identical to the zone model's rendering", () => {
    const filter = buildDnsFilter(
      [["b.example.org", "a.example.org", "x.ok.example.org", "ok.example.org"]],
      ["cdn.a.example.org"],
      ["d.example.org"],
    );
    expect(renderBlocklistZones(filter, "abc")).toBe(renderUnboundZones(blocklistZones(filter), "abc"));
    expect(countZoneLines(renderBlocklistZones(filter, "abc"))).toBe(5);
    expect(zonesInputs(renderBlocklistZones(filter, "abc"))).toBe("abc");
  });

  it("diffs zones so only what changed is sent to unbound", () => {
    const s = testState();
    const before = desiredZones(s, buildDnsFilter([], [], ["a.example.com"]));
    const after = desiredZones({ ...s, peers: s.peers.slice(1) }, buildDnsFilter([], [], ["b.example.com"]));
    expect(diffZones(before, after)).toEqual({
      zonesRemove: ["a.example.com."],
      zonesAdd: ["b.example.com. always_refuse"],
      datasRemove: ["laptop.pal."],
      datasAdd: [],
    });
    expect(diffZones(after, after)).toEqual({ zonesRemove: [], zonesAdd: [], datasRemove: [], datasAdd: [] });
  });

  it("refuses to write a quote or newline even if validation were bypassed", () => {
    const s = testState();
    expect(() =>
      renderUnboundZones(desiredZones(s, { blocked: ['evil." always_nxdomain\nserver:'], exempt: [] })),
    ).toThrow(/refusing to write/);
  });
});
