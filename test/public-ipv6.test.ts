/** The hub's public IPv6: prefixes, device addresses, sessions, and what the firewall renders for them. */
import * as ipaddr from "ipaddr.js";
import { nextSessions, proxiedAddresses, type Sessions } from "../agent/src/public-ipv6";
import { renderNftRuleset } from "../agent/src/nftables-ruleset";
import { peerAllowedIps } from "../agent/src/wireguard-config";
import type { WgDump } from "../agent/src/wireguard-config";
import {
  globalAddress,
  PER_SITE_SLOTS,
  peerGlobalIpv6,
  perSiteAddresses,
  randomSessionAddress,
  tunnelGlobalPrefix,
} from "../model/public-ipv6";
import type { HubState } from "../model/state";
import { StateError, validateHubState } from "../model/state-schema";
import { testState } from "../agent/test-support/state-fixtures";

const ROUTED = {
  prefix: "2001:db8:1::/64",
  addresses: ["2001:db8:5::10"],
  sessionIdle: 300,
  deviceAddresses: true,
};
const ON_LINK = { prefix: "2001:db8:2::/64", onLink: true, deviceAddresses: true };

function withIpv6(publicIpv6: HubState["hub"]["publicIpv6"], modes: Record<string, string> = {}): HubState {
  const base = testState();
  return {
    ...base,
    hub: { ...base.hub, publicIpv6 },
    peers: base.peers.map((p) =>
      modes[p.name] !== undefined ? { ...p, publicIpv6: modes[p.name] as "session" } : p,
    ),
  };
}

const inside = (a: string, prefix: string) => ipaddr.IPv6.parse(a).match(ipaddr.IPv6.parseCIDR(prefix));

describe("tunnel prefix and device addresses", () => {
  it("uses a routed prefix whole, and the upper half of an on-link /64", () => {
    expect(tunnelGlobalPrefix(ROUTED)).toBe("2001:db8:1::/64");
    expect(tunnelGlobalPrefix(ON_LINK)).toBe("2001:db8:2:0:8000::/65");
    expect(tunnelGlobalPrefix(undefined)).toBeUndefined();
    expect(tunnelGlobalPrefix({ addresses: ["2001:db8:5::10"] })).toBeUndefined();
  });

  it("gives a device the same host number as its IPv4 and ULA", () => {
    const s = withIpv6(ROUTED);
    const laptop = s.peers[0];
    const host = laptop.ipv6.split("::")[1];
    expect(peerGlobalIpv6(s.hub, laptop)).toBe(`2001:db8:1::${host}`);
    expect(globalAddress(ON_LINK, 1)).toBe("2001:db8:2:0:8000::1");
    expect(peerAllowedIps(laptop, s.hub)).toContain(`2001:db8:1::${host}/128`);
    expect(peerAllowedIps(laptop, testState().hub)).toHaveLength(2);
    // Without 'deviceAddresses' the prefix serves only NAT66: device configs stay as they were.
    expect(peerGlobalIpv6({ ...s.hub, publicIpv6: { prefix: ROUTED.prefix } }, laptop)).toBeUndefined();
  });

  it("makes session and per-site addresses inside the prefix and never on a device's address", () => {
    for (let i = 0; i < 50; i++) {
      const a = randomSessionAddress("2001:db8:1::/64");
      expect(inside(a, "2001:db8:1::/64")).toBe(true);
      expect(ipaddr.IPv6.parse(a).parts[4]).toBeGreaterThanOrEqual(0xc000);
    }
    const one = perSiteAddresses(testState().hub.privateKey, "laptop", "2001:db8:1::/64");
    const again = perSiteAddresses(testState().hub.privateKey, "laptop", "2001:db8:1::/64");
    const other = perSiteAddresses(testState().hub.privateKey, "phone", "2001:db8:1::/64");
    expect(one).toEqual(again);
    expect(one.addresses).toHaveLength(PER_SITE_SLOTS);
    expect(new Set(one.addresses).size).toBe(PER_SITE_SLOTS);
    expect(other.addresses[0]).not.toBe(one.addresses[0]);
  });
});

describe("sessions", () => {
  const state = withIpv6({ ...ROUTED, sessionIdle: 300 }, { laptop: "session" });
  const laptopKey = state.peers[0].publicKey;
  const dump = (handshake: number, endpoint = "198.51.100.7:4000"): WgDump => ({
    privateKey: state.hub.privateKey,
    publicKey: "",
    listenPort: 51820,
    peers: [
      { publicKey: laptopKey, endpoint, allowedIps: [], latestHandshake: handshake, rxBytes: 0, txBytes: 0 },
    ],
  });
  let n = 0;
  const fresh = () => `2001:db8:1::c000:0:0:${++n}`;

  it("starts a session at the first handshake, keeps it through re-handshakes, renews after silence", () => {
    const none = nextSessions(state, dump(0), {}, fresh);
    expect(none).toEqual({ sessions: {}, changed: [] });
    const first = nextSessions(state, dump(1000), {}, fresh);
    expect(first.changed).toEqual(["laptop"]);
    const address = first.sessions.laptop.address;
    // Every 2 minutes while traffic flows: the same session.
    const kept = nextSessions(state, dump(1120), first.sessions, fresh);
    expect(kept.changed).toEqual([]);
    expect(kept.sessions.laptop).toMatchObject({ address, handshake: 1120 });
    // Silent for longer than sessionIdle: the next handshake starts a new session, the old address is kept
    // aside for connections still open.
    const renewed = nextSessions(state, dump(1120 + 301), kept.sessions, fresh);
    expect(renewed.changed).toEqual(["laptop"]);
    expect(renewed.sessions.laptop.address).not.toBe(address);
    expect(renewed.sessions.laptop.previous).toEqual([address]);
  });

  it("starts a session when the endpoint changes", () => {
    const first = nextSessions(state, dump(1000), {}, fresh);
    const moved = nextSessions(state, dump(1010, "203.0.113.9:5000"), first.sessions, fresh);
    expect(moved.changed).toEqual(["laptop"]);
  });

  it("forgets devices that left session mode, and addresses outside a new prefix", () => {
    const first = nextSessions(state, dump(1000), {}, fresh).sessions;
    expect(nextSessions(withIpv6(ROUTED), dump(1000), first, fresh).sessions).toEqual({});
    const moved = withIpv6({ prefix: "2001:db8:9::/64" }, { laptop: "session" });
    const after = nextSessions(moved, dump(1000), first, fresh);
    expect(after.changed).toEqual(["laptop"]);
  });

  it("proxies the addresses an on-link hub uses, and none for a routed prefix", () => {
    const onLink = withIpv6(ON_LINK, { laptop: "session", phone: "per-site" });
    const sessions: Sessions = {
      laptop: {
        address: "2001:db8:2:0:c000::1",
        handshake: 1,
        endpoint: "x",
        previous: ["2001:db8:2:0:c000::2"],
      },
    };
    const proxied = proxiedAddresses(onLink, sessions);
    expect(proxied).toContain("2001:db8:2:0:8000::1");
    expect(proxied).toContain("2001:db8:2:0:c000::1");
    expect(proxied).toContain("2001:db8:2:0:c000::2");
    expect(proxied).toHaveLength(1 + onLink.peers.length + 2 + PER_SITE_SLOTS);
    expect(proxiedAddresses(withIpv6(ROUTED, { laptop: "session" }), sessions)).toEqual([]);
  });
});

describe("firewall for public IPv6", () => {
  const render = (s: HubState, sessions?: Record<string, string>) =>
    renderNftRuleset(s, { table: "cloudpal", interface: "wg0", sessions });

  it("puts global addresses in the group sets and refuses them from outside the tunnel", () => {
    const s = withIpv6(ROUTED);
    const text = render(s);
    const laptopGlobal = peerGlobalIpv6(s.hub, s.peers[0])!;
    expect(text).toMatch(new RegExp(`set group0_v6 \\{[^}]*${laptopGlobal}`));
    expect(text).toContain(`iifname != "wg0" ip6 saddr 2001:db8:1::/64 drop`);
    expect(text).toContain(`oifname != "wg0" oifname != "lo" ip6 saddr @peers_v6 snat ip6 to 2001:db8:5::10`);
  });

  it("maps session devices to their address, and per-site devices through a keyed hash", () => {
    const s = withIpv6(ROUTED, { laptop: "session", phone: "per-site" });
    const text = render(s, { laptop: "2001:db8:1:0:c000::9" });
    expect(text).toContain(`${s.peers[0].ipv6} : 2001:db8:1:0:c000::9`);
    expect(text).toContain("snat ip6 to ip6 saddr map @session6");
    expect(text).toMatch(/snat ip6 to jhash ip6 daddr mod 256 seed 0x[0-9a-f]+ map \{ 0 : 2001:db8:1:0:/);
    // Session and per-site rules come before the one that NATs everyone else to the hub's address.
    expect(text.indexOf("map @session6 comment")).toBeLessThan(text.indexOf("snat ip6 to 2001:db8:5::10"));
  });

  it("keeps masquerade and no global sets when the hub has no public IPv6", () => {
    const text = render(testState());
    expect(text).toContain(`oifname != "wg0" oifname != "lo" ip6 saddr @peers_v6 masquerade`);
    expect(text).not.toContain("session6");
  });
});

describe("state schema", () => {
  it("accepts the public IPv6 fields and refuses session mode without a prefix", () => {
    expect(() => validateHubState(withIpv6(ROUTED, { laptop: "session", phone: "per-site" }))).not.toThrow();
    const bad = withIpv6({ addresses: ["2001:db8:5::10"] }, { laptop: "session" });
    expect(() => validateHubState(bad)).toThrow(StateError);
    expect(() => validateHubState(bad)).toThrow(
      /'peers\[0\]\.publicIpv6' \("session"\) needs a public prefix/,
    );
    expect(() => validateHubState(withIpv6({ prefix: "fd00:1::/64" }))).toThrow(
      /'hub.publicIpv6.prefix' \("fd00:1::\/64"\) is not a global IPv6 prefix/,
    );
    expect(() => validateHubState(withIpv6({ prefix: "2001:db8:1::/80" }))).toThrow(/from \/32 to \/64/);
  });
});
