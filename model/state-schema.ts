/**
 * The edge of the agent: the JSON Schema of HubState (model/state.ts) plus the checks a schema cannot
 * express (references between groups and peers, addresses inside the subnets and unique). Every problem becomes
 * one sentence naming the field in quotes, the bad value and the fix; nothing is written before this passes.
 *
 * The patterns are also the injection defence: names are hostname labels, domains are dotted labels, keys are
 * base64, so no value can carry a newline, quote, brace or semicolon into the wg, nft or unbound files.
 */
import Ajv from "ajv";
import * as ipaddr from "ipaddr.js";
import { hubAddresses } from "./addressing";
import {
  isCanonicalCidr,
  isCanonicalIp,
  isCanonicalIpv4,
  isCanonicalIpv6,
  endpointProblem,
} from "./canonical";
import { filterEntryProblem } from "./domain-rules";
import { isGlobalIpv6, isGlobalIpv6Prefix } from "./public-ipv6";
import { isWireGuardKey, publicKeyFromPrivate } from "./keys";
import { describeAjvError, MESSAGE_KEYWORDS, show } from "./messages";
import { DOMAIN_PATTERN, NAME_FIX, NAME_PATTERN, TCP_KEY_PATTERN, WIREGUARD_KEY_PATTERN } from "./rules";
import type { HubState } from "./state";

// Each `fix` is the tail of the sentence after the field and its value (model/messages.ts).
const name = (what: string) => ({
  type: "string",
  pattern: NAME_PATTERN,
  fix: `is not a valid ${what} name: ${NAME_FIX}`,
});
const key = (what: string, generate: string) => ({
  type: "string",
  pattern: WIREGUARD_KEY_PATTERN,
  fix: `is not a WireGuard ${what}: expected 44 base64 characters ending in '='; generate one with '${generate}'`,
});
const domain = {
  type: "string",
  pattern: DOMAIN_PATTERN,
  fix: "is not a domain name: use a lowercase domain name such as ads.example.com, without scheme, wildcard or trailing dot",
};
const port = {
  type: "integer",
  minimum: 1,
  maximum: 65535,
  fix: "is not a port number: use a port number from 1 to 65535",
};
const ipv4 = {
  type: "string",
  format: "cloudpal-ipv4",
  fix: "is not an IPv4 address in canonical form: use dotted decimal without leading zeros, such as 10.77.0.23",
};
const ipv6 = {
  type: "string",
  format: "cloudpal-ipv6",
  fix: "is not an IPv6 address in canonical form: write it in lower case, compressed as RFC 5952 says, such as fd7a:c10d:9a1::17",
};

export const HUB_STATE_SCHEMA = {
  type: "object",
  additionalProperties: false,
  required: ["version", "hub", "mode", "groups", "peers", "dns"],
  properties: {
    version: {
      const: 1,
      fix: "is not a state version this agent reads: it reads version 1; update the agent or the Pulumi program so they match",
    },
    hub: {
      type: "object",
      additionalProperties: false,
      required: ["privateKey", "listenPort", "sshPort", "sshAllowedCidrs", "ipv4Subnet", "ipv6Prefix"],
      properties: {
        privateKey: key("private key", "wg genkey"),
        listenPort: port,
        wireguardExtraPorts: { type: "array", maxItems: 16, uniqueItems: true, items: port },
        endpoint: {
          type: "string",
          format: "cloudpal-endpoint",
          fix: "is not an endpoint: use host:port with a canonical address, e.g. vpn.example.com:51820 or [2001:db8::1]:51820",
        },
        persistentKeepalive: {
          type: "integer",
          minimum: 0,
          maximum: 65535,
          fix: "is not a keepalive interval: use seconds from 0 to 65535",
        },
        tcpPort: port,
        sshPort: port,
        sshAllowedCidrs: {
          type: "array",
          minItems: 1,
          maxItems: 64,
          items: {
            type: "string",
            format: "cloudpal-cidr",
            fix: "is not a CIDR in canonical form: use a CIDR such as 203.0.113.0/24 or ::/0 (decimal without leading zeros, IPv6 compressed as RFC 5952 says)",
          },
          fix: "must list at least one CIDR allowed to reach SSH (0.0.0.0/0 and ::/0 for anywhere), so the operator is never locked out",
        },
        ipv4Subnet: {
          type: "string",
          format: "cloudpal-ipv4-subnet",
          fix: "is not a private IPv4 subnet: use a private IPv4 CIDR from /8 to /28 such as 10.77.0.0/16",
        },
        ipv6Prefix: {
          type: "string",
          format: "cloudpal-ipv6-prefix",
          fix: "is not a ULA prefix: use an IPv6 ULA prefix from /48 to /120 such as fd7a:c10d:9a1::/64",
        },
        publicIpv6: {
          type: "object",
          additionalProperties: false,
          properties: {
            addresses: {
              type: "array",
              maxItems: 16,
              items: {
                type: "string",
                format: "cloudpal-global-ipv6",
                fix: "is not a global IPv6 address in canonical form: use the provider's address, compressed as RFC 5952 says, such as 2001:db8::10",
              },
            },
            prefix: {
              type: "string",
              format: "cloudpal-global-ipv6-prefix",
              fix: "is not a global IPv6 prefix: use the provider's prefix from /32 to /64 with no host bits, such as 2001:db8:1:2::/64",
            },
            onLink: { type: "boolean", fix: "must be true or false" },
            deviceAddresses: { type: "boolean", fix: "must be true or false" },
            sessionIdle: {
              type: "integer",
              minimum: 1,
              maximum: 86400,
              fix: "is not a session idle time: use seconds from 1 to 86400",
            },
          },
        },
      },
    },
    mode: {
      enum: ["vpn", "mesh-only"],
      fix: "is not a firewall mode: use 'vpn' (full tunnel allowed) or 'mesh-only' (no internet egress)",
    },
    groups: {
      type: "array",
      minItems: 1,
      maxItems: 256,
      fix: "must define at least one group",
      items: {
        type: "object",
        additionalProperties: false,
        required: ["name", "reaches", "internet"],
        properties: {
          name: name("group"),
          reaches: { type: "array", maxItems: 256, items: name("group") },
          internet: { type: "boolean", fix: "must be true or false" },
          encryptedDns: {
            enum: ["allow", "block"],
            fix: "is not an encrypted-DNS choice: use 'block' (devices use the hub's filter) or 'allow' (DNS-over-TLS and DNS-over-HTTPS pass)",
          },
          blocklists: {
            type: "array",
            maxItems: 64,
            items: {
              type: "string",
              maxLength: 2048,
              pattern: "^(https?|file)://[\\x21-\\x7e]+$",
              fix: "is not a blocklist URL: use an http(s):// or file:// URL without spaces",
            },
          },
          allow: { type: "array", maxItems: 100000, items: domain },
          deny: { type: "array", maxItems: 100000, items: domain },
          sites: {
            enum: ["deny", "allow-list"],
            fix: "is not a site mode: use 'deny' (denied sites also dropped in the firewall) or 'allow-list' (only allowed sites), or leave it out",
          },
        },
      },
    },
    peers: {
      type: "array",
      maxItems: 60000,
      items: {
        type: "object",
        additionalProperties: false,
        required: ["name", "publicKey", "ipv4", "ipv6", "group"],
        properties: {
          name: name("peer"),
          publicKey: key("public key", "wg genkey | wg pubkey"),
          presharedKey: key("preshared key", "wg genpsk"),
          ipv4,
          ipv6,
          group: name("group"),
          tcpKey: {
            type: "string",
            pattern: TCP_KEY_PATTERN,
            fix: "is not a TCP-path key: expected 43 base64url characters (32 random bytes); the Pulumi program makes one per device",
          },
          publicIpv6: {
            enum: ["off", "session", "per-site"],
            fix: "is not a public IPv6 mode: use 'off', 'session' or 'per-site'",
          },
          nat64: { type: "boolean", fix: "must be true or false" },
        },
      },
    },
    dns: {
      type: "object",
      additionalProperties: false,
      required: ["blocklists", "allow", "deny", "upstreams", "dnssec", "queryLog"],
      properties: {
        blocklists: {
          type: "array",
          maxItems: 64,
          items: {
            type: "string",
            maxLength: 2048,
            pattern: "^(https?|file)://[\\x21-\\x7e]+$",
            fix: "is not a blocklist URL: use an http(s):// or file:// URL without spaces",
          },
        },
        allow: { type: "array", maxItems: 100000, items: domain },
        deny: { type: "array", maxItems: 100000, items: domain },
        upstreams: {
          type: "array",
          minItems: 1,
          maxItems: 8,
          fix: "must list at least one DNS-over-TLS upstream, e.g. { address: 1.1.1.1, tlsName: cloudflare-dns.com, port: 853 }",
          items: {
            type: "object",
            additionalProperties: false,
            required: ["address", "tlsName", "port"],
            properties: {
              address: {
                type: "string",
                format: "cloudpal-ip",
                fix: "is not an IP address in canonical form: use the resolver's IPv4 address in dotted decimal without leading zeros, or its IPv6 address compressed as RFC 5952 says",
              },
              tlsName: domain,
              port,
            },
          },
        },
        dnssec: { type: "boolean", fix: "must be true or false" },
        queryLog: { type: "boolean", fix: "must be true or false" },
      },
    },
  },
} as const;

export class StateError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.join("\n"));
    this.name = "StateError";
  }
}

function isPrivateV4Subnet(s: string): boolean {
  if (!isCanonicalCidr(s)) return false;
  const [addr, prefix] = ipaddr.parseCIDR(s);
  if (addr.kind() !== "ipv4" || prefix < 8 || prefix > 28) return false;
  return addr.range() === "private" && addr.toString() === ipaddr.IPv4.networkAddressFromCIDR(s).toString();
}

function isUlaPrefix(s: string): boolean {
  if (!isCanonicalCidr(s)) return false;
  const [addr, prefix] = ipaddr.parseCIDR(s);
  if (addr.kind() !== "ipv6" || prefix < 48 || prefix > 120) return false;
  return (
    addr.range() === "uniqueLocal" &&
    addr.toNormalizedString() === ipaddr.IPv6.networkAddressFromCIDR(s).toNormalizedString()
  );
}

function makeValidator() {
  const ajv = new Ajv({ allErrors: true, verbose: true, strict: true });
  ajv.addVocabulary([...MESSAGE_KEYWORDS]);
  // Canonical forms only (model/canonical.ts): "10.077.0.0" or "0xa.0.0.1" would pass ipaddr.js and then be
  // read differently, or refused, by nft, unbound or wg.
  ajv.addFormat("cloudpal-ipv4", isCanonicalIpv4);
  ajv.addFormat("cloudpal-ipv6", isCanonicalIpv6);
  ajv.addFormat("cloudpal-ip", isCanonicalIp);
  ajv.addFormat("cloudpal-cidr", isCanonicalCidr);
  ajv.addFormat("cloudpal-endpoint", (s: string) => endpointProblem(s) === undefined);
  ajv.addFormat("cloudpal-ipv4-subnet", isPrivateV4Subnet);
  ajv.addFormat("cloudpal-ipv6-prefix", isUlaPrefix);
  ajv.addFormat("cloudpal-global-ipv6", isGlobalIpv6);
  ajv.addFormat("cloudpal-global-ipv6-prefix", isGlobalIpv6Prefix);
  return ajv.compile(HUB_STATE_SCHEMA);
}

let compiled: ReturnType<typeof makeValidator> | undefined;

/** Key material is never echoed back: a malformed key is still most of a key, and errors reach logs. */
const SECRET_FIELD = /(^|\.)(privateKey|presharedKey|tcpKey)$/;

const WORDING = {
  noun: "field",
  missing: "add it (see model/state.ts for its meaning)",
  shown: (field: string, value: unknown) =>
    SECRET_FIELD.test(field) || (typeof value === "string" && new RegExp(WIREGUARD_KEY_PATTERN).test(value))
      ? "(hidden)"
      : show(value),
};

/** Subnets parsed once: with 10,000 peers, parsing them per peer dominated validation time. */
function inV4Subnet(address: string, subnet: [ipaddr.IPv4, number]): boolean {
  return ipaddr.IPv4.parse(address).match(subnet);
}

function inV6Prefix(address: string, prefix: [ipaddr.IPv6, number]): { inside: boolean; normalized: string } {
  const a = ipaddr.IPv6.parse(address);
  return { inside: a.match(prefix), normalized: a.toString() };
}

/** Checks across fields; the input already matches the schema. */
function crossCheck(state: HubState): string[] {
  const problems: string[] = [];
  const groups = new Map<string, number>();
  state.groups.forEach((g, i) => {
    if (groups.has(g.name)) {
      problems.push(
        `'groups[${i}].name' (${show(g.name)}) repeats 'groups[${groups.get(g.name)}].name': give every group its own name.`,
      );
    }
    groups.set(g.name, i);
  });
  state.groups.forEach((g, i) =>
    g.reaches.forEach((r, j) => {
      if (!groups.has(r)) {
        problems.push(
          `'groups[${i}].reaches[${j}]' (${show(r)}) is not a defined group: define it in 'groups' or remove it.`,
        );
      }
    }),
  );
  const { ipv4: hubIpv4, ipv6: hubIpv6 } = hubAddresses(state.hub);
  const v4net = ipaddr.IPv4.parseCIDR(state.hub.ipv4Subnet);
  const v6net = ipaddr.IPv6.parseCIDR(state.hub.ipv6Prefix);
  const broadcast = ipaddr.IPv4.broadcastAddressFromCIDR(state.hub.ipv4Subnet).toString();
  const network = ipaddr.IPv4.networkAddressFromCIDR(state.hub.ipv4Subnet).toString();
  const seen = {
    name: new Map<string, number>(),
    key: new Map<string, number>(),
    v4: new Map<string, number>(),
    v6: new Map<string, number>(),
  };
  const hubPublic = isWireGuardKey(state.hub.privateKey)
    ? publicKeyFromPrivate(state.hub.privateKey)
    : undefined;
  state.peers.forEach((p, i) => {
    const f = `peers[${i}]`;
    const dup = (kind: keyof typeof seen, value: string, field: string, fix: string) => {
      const first = seen[kind].get(value);
      if (first !== undefined)
        problems.push(`'${f}.${field}' (${show(value)}) is already used by 'peers[${first}]': ${fix}.`);
      else seen[kind].set(value, i);
    };
    if (p.name === "hub")
      problems.push(`'${f}.name' ("hub") is the hub's own DNS name: choose another peer name.`);
    dup("name", p.name, "name", "give every peer its own name");
    dup("key", p.publicKey, "publicKey", "every device needs its own key pair");
    if (hubPublic !== undefined && p.publicKey === hubPublic) {
      problems.push(
        `'${f}.publicKey' (${show(p.publicKey)}) is the hub's own public key: use the device's public key.`,
      );
    }
    if (!isWireGuardKey(p.publicKey))
      problems.push(
        `'${f}.publicKey' (${show(p.publicKey)}) is not 32 bytes of base64: generate one with 'wg genkey | wg pubkey'.`,
      );
    if (!groups.has(p.group))
      problems.push(
        `'${f}.group' (${show(p.group)}) is not a defined group: use one of ${[...groups.keys()].join(", ")}.`,
      );
    if (!inV4Subnet(p.ipv4, v4net) || p.ipv4 === network || p.ipv4 === broadcast || p.ipv4 === hubIpv4) {
      problems.push(
        `'${f}.ipv4' (${show(p.ipv4)}) is not a peer address of ${state.hub.ipv4Subnet}: use the address allocateAddresses() gives (model/addressing.ts); the network, broadcast and hub (${hubIpv4}) addresses are reserved.`,
      );
    } else dup("v4", p.ipv4, "ipv4", "use the address allocateAddresses() gives, or pin a free one");
    const { inside, normalized: v6 } = inV6Prefix(p.ipv6, v6net);
    if (!inside || v6 === hubIpv6) {
      problems.push(
        `'${f}.ipv6' (${show(p.ipv6)}) is not a peer address of ${state.hub.ipv6Prefix}: use the address allocateAddresses() gives (model/addressing.ts); ${hubIpv6} is the hub's.`,
      );
    } else dup("v6", v6, "ipv6", "use the address allocateAddresses() gives, or pin a free one");
  });
  if (state.hub.publicIpv6?.prefix === undefined) {
    state.peers.forEach((p, i) => {
      if (p.publicIpv6 === "session" || p.publicIpv6 === "per-site")
        problems.push(
          `'peers[${i}].publicIpv6' (${show(p.publicIpv6)}) needs a public prefix, and 'hub.publicIpv6.prefix' is not set: use 'off' on this hub.`,
        );
    });
  }
  state.hub.sshAllowedCidrs.forEach((c, i) => {
    const [addr, bits] = ipaddr.parseCIDR(c);
    const network = `${(addr.kind() === "ipv4" ? ipaddr.IPv4 : ipaddr.IPv6).networkAddressFromCIDR(c).toString()}/${bits}`;
    if (network !== c)
      problems.push(
        `'hub.sshAllowedCidrs[${i}]' (${show(c)}) has host bits set: write the network, '${network}'.`,
      );
  });
  (state.hub.wireguardExtraPorts ?? []).forEach((p, i) => {
    if (p === state.hub.listenPort || p === state.hub.sshPort)
      problems.push(
        `'hub.wireguardExtraPorts[${i}]' (${p}) is also '${p === state.hub.listenPort ? "hub.listenPort" : "hub.sshPort"}': list only other ports, e.g. 443 or 53.`,
      );
  });
  if (state.hub.tcpPort !== undefined && state.hub.tcpPort === state.hub.sshPort)
    problems.push(
      `'hub.tcpPort' (${state.hub.tcpPort}) is also 'hub.sshPort': give the TCP path its own port (443 by default).`,
    );
  if (!isWireGuardKey(state.hub.privateKey))
    problems.push(`'hub.privateKey' is not 32 bytes of base64: generate one with 'wg genkey'.`);
  problems.push(...filterEntryProblems("dns", state.dns));
  state.groups.forEach((g, gi) => {
    problems.push(...filterEntryProblems(`groups[${gi}]`, g));
    if (g.sites === "allow-list" && (g.allow ?? []).length === 0)
      problems.push(
        `'groups[${gi}].sites' ("allow-list") allows no site: list the group's sites in 'groups[${gi}].allow'.`,
      );
    if (g.sites === "deny" && (g.deny ?? []).length === 0)
      problems.push(`'groups[${gi}].sites' ("deny") denies no site: list the sites in 'groups[${gi}].deny'.`);
  });
  return problems;
}

/**
 * The allow and deny entries of the hub (`at` "dns") or of a group (`at` "groups[N]"): each a name the filter can
 * hold, and none in both lists (deny would win, which is surely not what was meant).
 */
function filterEntryProblems(
  at: string,
  lists: { readonly allow?: readonly string[]; readonly deny?: readonly string[] },
): string[] {
  const problems: string[] = [];
  for (const list of ["allow", "deny"] as const)
    (lists[list] ?? []).forEach((d, i) => {
      const problem = filterEntryProblem(d);
      if (problem !== undefined) problems.push(`'${at}.${list}[${i}]' (${show(d)}) ${problem}.`);
    });
  const deny = new Set(lists.deny ?? []);
  (lists.allow ?? []).forEach((d, i) => {
    if (deny.has(d))
      problems.push(
        `'${at}.allow[${i}]' (${show(d)}) is also in '${at}.deny': keep it in one of the two lists.`,
      );
  });
  return problems;
}

/**
 * The deepest a state nests is 4 (dns.upstreams[i].port); anything far deeper is hostile or broken, and the
 * recursive validator and messages would end in "Maximum call stack size exceeded" on it.
 */
export const MAX_STATE_DEPTH = 32;
/** 60,000 peers with preshared keys and 200,000 filter entries stay far below this. */
export const MAX_STATE_BYTES = 64 * 1024 * 1024;

const TOO_DEEP = `the state nests objects or arrays more than ${MAX_STATE_DEPTH} levels deep, which no hub state does: pipe the document the Pulumi program builds.`;

/** How deep the JSON text nests, in one linear pass that skips strings (and stops past `limit`). */
function jsonDepth(text: string, limit: number): number {
  let depth = 0;
  let deepest = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x5c /* \ */) i++;
        else if (d === 0x22) break;
      }
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (++depth > deepest) deepest = depth;
      if (deepest > limit) return deepest;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) depth--;
  }
  return deepest;
}

/** Parse and validate; throws StateError listing every problem. Secrets are never echoed back. */
export function validateHubState(input: unknown): HubState {
  try {
    return validateUnguarded(input);
  } catch (e) {
    // An object built in memory (not parsed from text) can still nest deeply enough to exhaust the stack.
    if (e instanceof RangeError) throw new StateError([TOO_DEEP]);
    throw e;
  }
}

function validateUnguarded(input: unknown): HubState {
  compiled ??= makeValidator();
  if (!compiled(input)) {
    const problems = (compiled.errors ?? []).map((e) => describeAjvError(e, WORDING)).filter((p) => p !== "");
    throw new StateError([...new Set(problems)]);
  }
  const state = input as unknown as HubState;
  const problems = crossCheck(state);
  if (problems.length > 0) throw new StateError(problems);
  return state;
}

/** JSON text → HubState, with a clear error for text that is not JSON. */
export function parseHubState(text: string): HubState {
  if (text.length > MAX_STATE_BYTES)
    throw new StateError([
      `the state on stdin is ${text.length} characters, more than the ${MAX_STATE_BYTES} any hub state needs: pipe the document the Pulumi program builds.`,
    ]);
  if (jsonDepth(text, MAX_STATE_DEPTH) > MAX_STATE_DEPTH) throw new StateError([TOO_DEEP]);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new StateError([
      `the state on stdin is not JSON (${(e as Error).message}): pipe the document the Pulumi program builds.`,
    ]);
  }
  return validateHubState(value);
}
