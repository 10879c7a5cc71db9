/**
 * The `cloudpal:` stack config: validated with one JSON Schema (config-schema.ts), completed with defaults in
 * one function (`withDefaults`), checked across fields (config-checks.ts), and returned as a typed, frozen
 * HubConfig. Every problem is collected and reported at once, one sentence per line, before the program
 * registers a single resource.
 */
import Ajv, { type ErrorObject } from "ajv";
import * as pulumi from "@pulumi/pulumi";
import { allocateAddresses, AllocationError } from "../../model/addressing";
import type { DnsState, FirewallMode } from "../../model/state";
import type { ImageFamily } from "../../cloud-init/spec";
import { CATALOG, type CloudProvider } from "../catalog";
import { checkConfig } from "./checks";
import { fieldPath, show } from "../../model/messages";
import { CONFIG_KEYS, CONFIG_SCHEMA } from "./schema";

export const CONFIG_NAMESPACE = "cloudpal";
/** Secret config holding the operator's SSH private key for delivery; not part of HubConfig. */
export const SSH_PRIVATE_KEY_KEY = "sshPrivateKey";

export interface CloudHostTarget {
  readonly provider: CloudProvider;
  /** Defaults to the provider's Frankfurt region (components/catalog.ts). */
  readonly region: string;
  /** Defaults to the provider's cheapest size (components/catalog.ts). */
  readonly size: string;
  /** Defaults to false: no copies of the hub on the provider's backup systems. */
  readonly backups: boolean;
}

export interface ExistingHostTarget {
  readonly provider: "existing";
  readonly host: string;
  /** Required, not root (the bootstrap turns root login off). Also the operator user. */
  readonly user: string;
}

export type HostTarget = CloudHostTarget | ExistingHostTarget;

export interface PeerConfig {
  readonly name: string;
  /** Absent: CloudPal makes the device's key pair and puts the private key in its client config. */
  readonly publicKey?: string;
  /** Defaults to "family". */
  readonly group: string;
  /** Pinned IPv4 address, if any. */
  readonly address?: string;
  /** Allocated tunnel addresses (agent/src/addressing.ts). */
  readonly ipv4: string;
  readonly ipv6: string;
}

export interface GroupConfig {
  readonly name: string;
  /** Defaults to []. */
  readonly reaches: readonly string[];
  /** Defaults to false. */
  readonly internet: boolean;
}

export interface AutoRebootConfig {
  /** Defaults to true: kernel security fixes only take effect after a reboot. */
  readonly enabled: boolean;
  /** Defaults to "04:00" (UTC). */
  readonly time: string;
}

export interface HubConfig {
  readonly host: HostTarget;
  /** Defaults to "debian-12". */
  readonly image: ImageFamily;
  /** Defaults to "cloudpal-hub". */
  readonly hostname: string;
  readonly sshPublicKeys: readonly string[];
  /** Required: no default can know where the operator runs `pulumi up` from. */
  readonly sshAllowedCidrs: readonly string[];
  /** Defaults to false. */
  readonly allowWorldSsh: boolean;
  /** Defaults to 22. For `existing`, the port the server's sshd already listens on. */
  readonly sshPort: number;
  /** Defaults to "cloudpal-admin" (for `existing`: existing.user). */
  readonly operatorUser: string;
  /** Defaults to 51820. */
  readonly wireguardPort: number;
  /** Defaults to "10.77.0.0/16". */
  readonly ipv4Subnet: string;
  /** Defaults to "fd7a:c10d:9a1::/64". */
  readonly ipv6Prefix: string;
  /** Defaults to []. */
  readonly peers: readonly PeerConfig[];
  /** Defaults to one group, "family", which reaches itself and the internet. */
  readonly groups: readonly GroupConfig[];
  /** Defaults: one blocklist, no allow/deny entries, Quad9 and Cloudflare over TLS, DNSSEC on, no query log. */
  readonly dns: DnsState;
  /** Defaults to "vpn". */
  readonly firewallMode: FirewallMode;
  readonly endpointHostname?: string;
  readonly autoReboot: AutoRebootConfig;
  /** Defaults to 25 seconds. */
  readonly persistentKeepalive: number;
}

/**
 * Every default, in one place. Pulumi.yaml repeats the provider-independent ones because the Pulumi CLI
 * demands a default for each optional key it declares; test/config.test.ts fails if the two ever differ.
 */
export const DEFAULTS = {
  image: "debian-12" as ImageFamily,
  hostname: "cloudpal-hub",
  allowWorldSsh: false,
  sshPort: 22,
  operatorUser: "cloudpal-admin",
  wireguardPort: 51820,
  // 10.77/16: clear of the home-router favourites (192.168.0/1.x, 10.0.0.x), of Docker (172.17/16), and
  // of the cloud ranges config-checks.ts rejects; /16 keeps name-hash collisions rare.
  ipv4Subnet: "10.77.0.0/16",
  // A fixed ULA /64 (RFC 4193 global id 7a:c10d:09a1) rather than one derived from the stack name: device
  // configs carry these addresses, and renaming or moving a stack must not renumber every device.
  ipv6Prefix: "fd7a:c10d:9a1::/64",
  peerGroup: "family",
  groups: { family: { reaches: ["family"], internet: true } } as Record<
    string,
    { reaches?: string[]; internet?: boolean }
  >,
  dns: {
    blocklists: ["https://raw.githubusercontent.com/StevenBlack/hosts/master/hosts"],
    allow: [] as string[],
    deny: [] as string[],
    upstreams: [
      { address: "9.9.9.9", tlsName: "dns.quad9.net", port: 853 },
      { address: "149.112.112.112", tlsName: "dns.quad9.net", port: 853 },
      { address: "1.1.1.1", tlsName: "cloudflare-dns.com", port: 853 },
      { address: "1.0.0.1", tlsName: "cloudflare-dns.com", port: 853 },
    ],
    dnssec: true,
    queryLog: false,
  },
  upstreamPort: 853,
  firewallMode: "vpn" as FirewallMode,
  backups: false,
  autoReboot: { enabled: true, time: "04:00" },
  persistentKeepalive: 25,
} as const;

/** The stack config as the user wrote it, after the schema accepted its shape. */
export interface RawConfig {
  provider: HostTarget["provider"];
  region?: string;
  size?: string;
  image?: ImageFamily;
  existing?: { host: string; user: string };
  hostname?: string;
  sshPublicKeys: string[];
  sshAllowedCidrs: string[];
  allowWorldSsh?: boolean;
  sshPort?: number;
  operatorUser?: string;
  wireguardPort?: number;
  ipv4Subnet?: string;
  ipv6Prefix?: string;
  peers?: { name: string; publicKey?: string; group?: string; address?: string }[];
  groups?: Record<string, { reaches?: string[]; internet?: boolean }>;
  dns?: {
    blocklists?: string[];
    allow?: string[];
    deny?: string[];
    upstreams?: { address: string; tlsName: string; port?: number }[];
    dnssec?: boolean;
    queryLog?: boolean;
  };
  firewallMode?: FirewallMode;
  endpointHostname?: string;
  backups?: boolean;
  autoReboot?: { enabled?: boolean; time?: string };
  persistentKeepalive?: number;
}

/** HubConfig before addresses are allocated. */
export type UnallocatedConfig = Omit<HubConfig, "peers"> & {
  readonly peers: readonly Omit<PeerConfig, "ipv4" | "ipv6">[];
};

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(
      `The ${CONFIG_NAMESPACE} stack config has ${problems.length} problem${problems.length === 1 ? "" : "s"}:\n` +
        problems.map((p) => `  - ${p}`).join("\n"),
    );
    this.name = "ConfigError";
  }
}

/** The one function that applies defaults. */
export function withDefaults(raw: RawConfig): UnallocatedConfig {
  const host: HostTarget =
    raw.provider === "existing"
      ? {
          provider: "existing",
          host: raw.existing?.host ?? "",
          user: raw.existing?.user ?? "",
        }
      : {
          provider: raw.provider,
          region: raw.region ?? CATALOG[raw.provider].defaultRegion,
          size: raw.size ?? CATALOG[raw.provider].defaultSize,
          backups: raw.backups ?? DEFAULTS.backups,
        };
  const dns = raw.dns ?? {};
  return {
    host,
    image: raw.image ?? DEFAULTS.image,
    hostname: raw.hostname ?? DEFAULTS.hostname,
    sshPublicKeys: raw.sshPublicKeys,
    sshAllowedCidrs: raw.sshAllowedCidrs,
    allowWorldSsh: raw.allowWorldSsh ?? DEFAULTS.allowWorldSsh,
    sshPort: raw.sshPort ?? DEFAULTS.sshPort,
    operatorUser: host.provider === "existing" ? host.user : (raw.operatorUser ?? DEFAULTS.operatorUser),
    wireguardPort: raw.wireguardPort ?? DEFAULTS.wireguardPort,
    ipv4Subnet: raw.ipv4Subnet ?? DEFAULTS.ipv4Subnet,
    ipv6Prefix: raw.ipv6Prefix ?? DEFAULTS.ipv6Prefix,
    peers: (raw.peers ?? []).map((p) => ({
      name: p.name,
      group: p.group ?? DEFAULTS.peerGroup,
      ...(p.publicKey !== undefined ? { publicKey: p.publicKey } : {}),
      ...(p.address !== undefined ? { address: p.address } : {}),
    })),
    groups: Object.entries(raw.groups ?? DEFAULTS.groups).map(([name, g]) => ({
      name,
      reaches: g.reaches ?? [],
      internet: g.internet ?? false,
    })),
    dns: {
      blocklists: dns.blocklists ?? [...DEFAULTS.dns.blocklists],
      allow: dns.allow ?? [],
      deny: dns.deny ?? [],
      upstreams: (dns.upstreams ?? DEFAULTS.dns.upstreams).map((u) => ({
        address: u.address,
        tlsName: u.tlsName,
        port: u.port ?? DEFAULTS.upstreamPort,
      })),
      dnssec: dns.dnssec ?? DEFAULTS.dns.dnssec,
      queryLog: dns.queryLog ?? DEFAULTS.dns.queryLog,
    },
    firewallMode: raw.firewallMode ?? DEFAULTS.firewallMode,
    ...(raw.endpointHostname !== undefined ? { endpointHostname: raw.endpointHostname } : {}),
    autoReboot: {
      enabled: raw.autoReboot?.enabled ?? DEFAULTS.autoReboot.enabled,
      time: raw.autoReboot?.time ?? DEFAULTS.autoReboot.time,
    },
    persistentKeepalive: raw.persistentKeepalive ?? DEFAULTS.persistentKeepalive,
  };
}

// strictTypes off: the per-provider if/then branches name properties without restating `type: object`.
const ajv = new Ajv({ allErrors: true, verbose: true, strict: true, strictTypes: false });
ajv.addVocabulary(["fix", "missing"]);
const validateShape = ajv.compile(CONFIG_SCHEMA);

/**
 * Validate the user's config and return the frozen HubConfig, or throw a ConfigError listing every problem.
 * Pure: tests call it directly, and the program calls it before registering any resource.
 */
export function loadConfig(input: unknown): HubConfig {
  const shapeOk = validateShape(input);
  const errors = shapeOk ? [] : (validateShape.errors ?? []);
  const problems = errors.map(describeSchemaError).filter((l) => l !== "");
  const usable = usablePart(input, errors);
  if (!usable) throw new ConfigError(unique(problems));
  // Cross-field checks run on every top-level field the schema accepted, each only when all the fields it
  // reads are sound, so the user sees every problem in one run without echoes of the schema's complaints.
  const { raw, clean } = usable;
  const resolved = withDefaults(raw);
  problems.push(...checkConfig(raw, resolved, clean));
  let peers: PeerConfig[] = [];
  // Allocation needs valid subnets and unique names; otherwise it would only repeat those problems.
  const subnetsValid = !problems.some((p) => p.startsWith("'ipv4Subnet'") || p.startsWith("'ipv6Prefix'"));
  const namesUnique = new Set(resolved.peers.map((p) => p.name)).size === resolved.peers.length;
  if (subnetsValid && namesUnique && clean("peers", "ipv4Subnet", "ipv6Prefix")) {
    try {
      const addresses = allocateAddresses(resolved, resolved.peers);
      peers = resolved.peers.map((p) => ({ ...p, ...pick(addresses.get(p.name)) }));
    } catch (e) {
      if (!(e instanceof AllocationError)) throw e;
      problems.push(...e.problems);
    }
  }
  if (problems.length > 0) throw new ConfigError(unique(problems));
  return deepFreeze({ ...resolved, peers });
}

/**
 * The input without the top-level fields the schema rejected (unknown keys dropped, rejected required lists
 * emptied), and which fields are sound. Undefined when the provider itself is unusable: then nothing else
 * can be judged.
 */
function usablePart(
  input: unknown,
  errors: readonly ErrorObject[],
): { raw: RawConfig; clean: (...fields: string[]) => boolean } | undefined {
  if (typeof input !== "object" || input === null || Array.isArray(input)) return undefined;
  const dirty = new Set<string>();
  const unknown = new Set<string>();
  for (const e of errors) {
    const top = e.instancePath.split("/")[1];
    if (top !== undefined) dirty.add(top);
    else if (e.keyword === "required") dirty.add((e.params as { missingProperty: string }).missingProperty);
    else if (e.keyword === "if")
      continue; // its branch's own error names the field
    else if (e.keyword === "additionalProperties")
      unknown.add((e.params as { additionalProperty: string }).additionalProperty);
    else return undefined;
  }
  if (dirty.has("provider")) return undefined;
  const raw: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(input)) {
    if (!dirty.has(key) && !unknown.has(key)) raw[key] = value;
  }
  for (const required of ["sshPublicKeys", "sshAllowedCidrs"]) raw[required] ??= [];
  return { raw: raw as unknown as RawConfig, clean: (...fields) => fields.every((f) => !dirty.has(f)) };
}

/**
 * Reads `cloudpal:*` from the running Pulumi program and validates it, the SSH private key included, so a
 * wrong key is reported with the other problems instead of failing the first SSH step minutes later.
 */
export function loadStackConfig(): HubConfig {
  const all = pulumi.runtime.allConfig();
  const keyProblems = checkSshPrivateKey(all[`${CONFIG_NAMESPACE}:${SSH_PRIVATE_KEY_KEY}`]);
  try {
    const config = loadConfig(readStackConfig(all));
    if (keyProblems.length > 0) throw new ConfigError(keyProblems);
    return config;
  } catch (e) {
    if (e instanceof ConfigError && keyProblems.length > 0 && e.problems !== keyProblems)
      throw new ConfigError([...e.problems, ...keyProblems]);
    throw e;
  }
}

const SET_KEY = `pulumi config set --secret ${CONFIG_NAMESPACE}:${SSH_PRIVATE_KEY_KEY} < ~/.ssh/id_ed25519`;

/** The private key's text is never shown: only what is wrong with it. */
export function checkSshPrivateKey(value: string | undefined): string[] {
  const field = `'${SSH_PRIVATE_KEY_KEY}'`;
  if (value === undefined || value.trim() === "")
    return [`${field} is missing: delivery logs in over SSH with it; set it with '${SET_KEY}'.`];
  if (/^(ssh-|ecdsa-|sk-)/.test(value.trim()))
    return [
      `${field} (not shown) is a public key: give the private key, the same file without '.pub', with '${SET_KEY}'.`,
    ];
  const pem = /-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----([\s\S]*?)-----END/.exec(value);
  if (!pem)
    return [
      `${field} (not shown) is not an SSH private key (a file path instead of the file's content?): set it with '${SET_KEY}'.`,
    ];
  if (pem[1] === "ENCRYPTED " || /Proc-Type: 4,ENCRYPTED/.test(value) || openSshCipher(pem[2]) !== "none")
    return [
      `${field} (not shown) is protected by a passphrase, which delivery cannot type: make a key without one for CloudPal ('ssh-keygen -t ed25519 -N "" -f ~/.ssh/cloudpal'), add its .pub to 'sshPublicKeys', and set it with '${SET_KEY.replace("id_ed25519", "cloudpal")}'.`,
    ];
  return [];
}

/** The cipher an OpenSSH-format key is encrypted with ("none" when it is not), from its binary header. */
function openSshCipher(body: string): string {
  const bytes = Buffer.from(body.replace(/\s+/g, ""), "base64");
  const magic = "openssh-key-v1\0";
  if (bytes.subarray(0, magic.length).toString("latin1") !== magic) return "none"; // PEM (PKCS#1/#8)
  const length = bytes.readUInt32BE(magic.length);
  return bytes.subarray(magic.length + 4, magic.length + 4 + length).toString("latin1");
}

/**
 * Turns Pulumi's flat config map (structured values arrive as JSON text) into one object. Unknown keys are
 * kept so the schema reports them (a typo such as `cloudpal:sshport` must not be silently ignored).
 */
export function readStackConfig(all: Record<string, string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const prefix = `${CONFIG_NAMESPACE}:`;
  for (const [fullKey, text] of Object.entries(all)) {
    if (!fullKey.startsWith(prefix)) continue;
    const key = fullKey.slice(prefix.length);
    if (key === SSH_PRIVATE_KEY_KEY) continue;
    const schema = (CONFIG_SCHEMA.properties as Record<string, { type?: string; enum?: unknown }>)[key];
    const isText = schema !== undefined && (schema.type === "string" || schema.enum !== undefined);
    const value = isText ? text : parseJson(text);
    // Pulumi.yaml must give optional keys a default; "" and {} there mean "not set" (see its header).
    if (value === "" || isEmptyObject(value)) continue;
    out[key] = value;
  }
  return out;
}

function isEmptyObject(value: unknown): boolean {
  return (
    typeof value === "object" && value !== null && !Array.isArray(value) && Object.keys(value).length === 0
  );
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text; // The schema then says what type was expected.
  }
}

function pick(a: { ipv4: string; ipv6: string } | undefined): { ipv4: string; ipv6: string } {
  if (!a) throw new Error("allocateAddresses returned no address for a peer");
  return { ipv4: a.ipv4, ipv6: a.ipv6 };
}

function unique(lines: string[]): string[] {
  return [...new Set(lines)];
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value as object)) deepFreeze(v);
  }
  return value;
}

interface Annotated {
  fix?: string;
  missing?: string;
  properties?: Record<string, Annotated>;
}

function describeSchemaError(e: ErrorObject): string {
  const schema = (e.parentSchema ?? {}) as Annotated;
  const field = fieldPath(e.instancePath);
  const value = e.data;
  const shown = looksLikePrivateKey(value) ? "(a private key, not shown)" : show(value);
  switch (e.keyword) {
    case "required": {
      const missing = (e.params as { missingProperty: string }).missingProperty;
      const hint = schema.properties?.[missing]?.missing ?? "set it";
      return `'${fieldPath(e.instancePath, missing)}' is missing: ${hint}.`;
    }
    case "additionalProperties": {
      const extra = (e.params as { additionalProperty: string }).additionalProperty;
      const known = Object.keys(schema.properties ?? {});
      const guess = closest(extra, known);
      const where = fieldPath(e.instancePath, extra);
      const extraValue = (value as Record<string, unknown>)[extra];
      return `'${where}' (${show(extraValue)}) is not a known setting: ${guess ? `did you mean '${fieldPath(e.instancePath, guess)}'?` : `remove it (known settings: ${known.join(", ")}).`}`;
    }
    case "propertyNames": {
      const name = (e.params as { propertyName: string }).propertyName;
      return `'${fieldPath(e.instancePath, name)}' (${show(name)}) ${schema.fix ?? "is not a valid name"}.`;
    }
    case "minItems":
      return `'${field}' (${shown}) ${schema.fix ?? `needs at least ${(e.params as { limit: number }).limit} entries`}.`;
    case "if":
      return ""; // the failing branch's own error says what is wrong
    default:
      if (e.propertyName !== undefined) return ""; // reported by its propertyNames error
      if (looksLikePrivateKey(value))
        return `'${field}' ${shown} must never be in the stack config: paste the public key ('~/.ssh/id_ed25519.pub') instead.`;
      return `'${field}' (${shown}) ${schema.fix ?? fallback(e)}.`;
  }
}

function fallback(e: ErrorObject): string {
  if (e.keyword === "type") return `must be of type ${(e.params as { type: string }).type}`;
  return `is not valid: ${e.message ?? e.keyword}`;
}

function looksLikePrivateKey(value: unknown): boolean {
  return typeof value === "string" && /PRIVATE KEY/.test(value);
}

/** The known key closest to a misspelt one, if it is close enough to be a typo. */
function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return bestDistance <= Math.max(2, Math.floor(word.length / 4)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length];
}

export { CONFIG_KEYS };
