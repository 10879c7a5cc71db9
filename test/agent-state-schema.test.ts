/* eslint-disable @typescript-eslint/no-explicit-any -- these tests build deliberately malformed documents field by field. */
import { parseHubState, StateError, validateHubState } from "../model/state-schema";
import { testPeer, testState } from "../agent/test-support/state-fixtures";

function problems(input: unknown): string[] {
  try {
    validateHubState(input);
  } catch (e) {
    if (e instanceof StateError) return [...e.problems];
    throw e;
  }
  return [];
}

describe("hub state validation", () => {
  it("accepts a well-formed state", () => {
    expect(problems(testState())).toEqual([]);
  });

  it.each([
    [
      (s: any) => (s.peers[1].publicKey = "abc"),
      `'peers[1].publicKey' ("abc") is not a WireGuard public key`,
      "wg genkey | wg pubkey",
    ],
    [
      (s: any) => (s.peers[0].name = "Laptop"),
      `'peers[0].name' ("Laptop") is not a valid peer name`,
      "lower-case letters",
    ],
    [
      (s: any) => (s.peers[0].group = "work"),
      `'peers[0].group' ("work") is not a defined group`,
      "family, guest, iot",
    ],
    [
      (s: any) => (s.peers[0].ipv4 = "10.78.0.5"),
      `'peers[0].ipv4' ("10.78.0.5") is not a peer address of 10.77.0.0/16`,
      "allocateAddresses()",
    ],
    [(s: any) => (s.peers[0].ipv4 = "10.77.0.1"), `'peers[0].ipv4' ("10.77.0.1")`, "hub (10.77.0.1)"],
    [(s: any) => (s.peers[1].ipv4 = s.peers[0].ipv4), `'peers[1].ipv4' (`, "is already used by 'peers[0]'"],
    [(s: any) => (s.peers[1].ipv6 = s.peers[0].ipv6), `'peers[1].ipv6' (`, "is already used by 'peers[0]'"],
    [
      (s: any) => (s.peers[1].ipv6 = s.peers[0].ipv6.toUpperCase()),
      `'peers[1].ipv6' (`,
      "in canonical form: write it in lower case",
    ],
    [
      (s: any) => (s.peers[0].ipv6 = "fd00::5"),
      `'peers[0].ipv6' ("fd00::5") is not a peer address of fd7a:c10d:9a1::/64`,
      "",
    ],
    [
      (s: any) => (s.peers[1].name = "laptop"),
      `'peers[1].name' ("laptop") is already used by 'peers[0]'`,
      "",
    ],
    [(s: any) => (s.peers[1].name = "hub"), `'peers[1].name' ("hub") is the hub's own DNS name`, ""],
    [
      (s: any) => (s.groups[0].reaches = ["nobody"]),
      `'groups[0].reaches[0]' ("nobody") is not a defined group`,
      "",
    ],
    [(s: any) => (s.hub.ipv4Subnet = "8.8.0.0/16"), `'hub.ipv4Subnet' ("8.8.0.0/16")`, "private IPv4 CIDR"],
    [(s: any) => (s.hub.sshAllowedCidrs = []), `'hub.sshAllowedCidrs' ([])`, "never locked out"],
    [(s: any) => (s.hub.listenPort = 70000), `'hub.listenPort' (70000)`, "1 to 65535"],
    [(s: any) => (s.mode = "open"), `'mode' ("open")`, "'vpn'"],
    [
      (s: any) => (s.dns.deny = ["ads.example.com\nserver:"]),
      `'dns.deny[0]' ("ads.example.com\\nserver:")`,
      "lowercase domain",
    ],
    [
      (s: any) => (s.dns.allow = ["ads.example.com"]),
      `'dns.allow[0]' ("ads.example.com") is also in 'dns.deny'`,
      "",
    ],
    [(s: any) => (s.dns.blocklists = ["ftp://x"]), `'dns.blocklists[0]' ("ftp://x")`, "http(s)://"],
    [
      (s: any) => ((s.groups[1].allow = ["games.example"]), (s.groups[1].deny = ["games.example"])),
      `'groups[1].allow[0]' ("games.example") is also in 'groups[1].deny'`,
      "one of the two lists",
    ],
    [
      (s: any) => (s.groups[1].deny = ["Games.Example"]),
      `'groups[1].deny[0]' ("Games.Example")`,
      "lowercase domain",
    ],
    [(s: any) => (s.groups[1].sites = "whitelist"), `'groups[1].sites' ("whitelist")`, "'allow-list'"],
    [(s: any) => (s.groups[1].sites = "allow-list"), `'groups[1].sites' ("allow-list") allows no site`, ""],
    [(s: any) => (s.groups[1].sites = "deny"), `'groups[1].sites' ("deny") denies no site`, ""],
    [(s: any) => (s.groups[1].allow = ["hub.pal"]), `'groups[1].allow[0]' ("hub.pal")`, "remove it"],
    [(s: any) => (s.groups[1].deny = ["a b"]), `'groups[1].deny[0]' ("a b")`, "lowercase domain"],
    [
      (s: any) => (s.groups[1].blocklists = ["ftp://x"]),
      `'groups[1].blocklists[0]' ("ftp://x")`,
      "http(s)://",
    ],
    [(s: any) => (s.extra = 1), `'extra' (1) is not a known field`, "remove it"],
    [
      (s: any) => (s.hub.listenPrt = 1),
      `'hub.listenPrt' (1) is not a known field`,
      "did you mean 'hub.listenPort'?",
    ],
    [(s: any) => delete s.dns, `'dns' is missing`, ""],
  ])("%# reports the field, the value and the fix", (mutate, start, fix) => {
    const s = JSON.parse(JSON.stringify(testState()));
    mutate(s);
    const found = problems(s);
    const match = found.find((p) => p.includes(start));
    expect({ found, match: match !== undefined }).toEqual({ found, match: true });
    expect(match).toContain(fix);
  });

  it("accepts a group's own lists and site mode", () => {
    const s = JSON.parse(JSON.stringify(testState()));
    s.groups[1] = {
      ...s.groups[1],
      blocklists: ["https://lists.example.org/adult.txt"],
      allow: ["school.example"],
      deny: ["games.example"],
      sites: "allow-list",
    };
    expect(problems(s)).toEqual([]);
  });

  it("never echoes a secret back in an error", () => {
    const s = JSON.parse(JSON.stringify(testState()));
    s.hub.privateKey = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA";
    const found = problems(s).join("\n");
    expect(found).toContain("'hub.privateKey'");
    expect(found).not.toContain(s.hub.privateKey);
  });

  it("reports JSON syntax errors in one sentence", () => {
    expect(() => parseHubState("{")).toThrow(/the state on stdin is not JSON/);
  });

  // Values that would break out of a wg, nft or unbound line if they reached a renderer.
  const INJECTION = [
    "a\nb",
    "a\rb",
    'a"b',
    "a}b",
    "a;b",
    "a b",
    "a#b",
    "a\\b",
    "a\u0000b",
    "x\nforward-zone:",
    '"; local-zone: "evil." always_nxdomain',
    "[Peer]",
    "a\u2028b",
    "$(reboot)",
    "`id`",
    "../../etc/passwd",
  ];

  it.each(INJECTION)("rejects %j as a peer name, group, key and domain", (value) => {
    const fields: ((s: any) => void)[] = [
      (s) => (s.peers[0].name = value),
      (s) => (s.peers[0].group = value),
      (s) => (s.groups[0].name = value),
      (s) => (s.peers[0].publicKey = value),
      (s) => (s.peers[0].presharedKey = value),
      (s) => (s.dns.deny = [value]),
      (s) => (s.dns.allow = [value]),
      (s) => (s.dns.upstreams[0].tlsName = value),
      (s) => (s.dns.upstreams[0].address = value),
      (s) => (s.dns.blocklists = [`https://x/${value}`]),
      (s) => (s.hub.endpoint = value),
    ];
    for (const mutate of fields) {
      const s = JSON.parse(JSON.stringify(testState()));
      mutate(s);
      if (/^[\x21-\x7e]+$/.test(`https://x/${value}`) && mutate === fields[9]) continue; // a printable URL is fine
      expect(problems(s).length).toBeGreaterThan(0);
    }
  });

  it("accepts a peer with a preshared key and pinned addresses from the allocator", () => {
    const s = testState();
    expect(problems({ ...s, peers: [...s.peers, testPeer("tablet", "guest")] })).toEqual([]);
  });
});
