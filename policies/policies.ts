/**
 * CloudPal's policies, as plain objects so tests can call them without starting a policy pack (index.ts
 * builds the pack). Grouped by area; each check is written once and loops over the resource types of every
 * provider. Messages say what must hold, with the resource name in parentheses.
 */
import * as vultr from "@ediri/vultr";
import * as digitalocean from "@pulumi/digitalocean";
import * as linode from "@pulumi/linode";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { ed25519PublicOfPrivate, publicKeyWithoutComment } from "../model/ssh-host-key";
import type {
  ReportViolation,
  ResourceValidationArgs,
  ResourceValidationPolicy,
  StackValidationPolicy,
} from "@pulumi/policy";
import { WIREGUARD_KEY_PATTERN } from "../model/rules";

type ResourceClass = Parameters<ResourceValidationArgs["isType"]>[0];

/** The type token a provider class registers under (the same value `isType` compares). */
function typeOf(cls: ResourceClass): string {
  return (cls as unknown as { __pulumiType: string }).__pulumiType;
}

const WORLD = new Set(["0.0.0.0/0", "::/0"]);

// ---------------------------------------------------------------------------------------------- network

interface InboundRule {
  readonly protocol: string;
  readonly ports: string;
  readonly sources: readonly string[];
}

/** How each provider's firewall spells an inbound rule; the checks below see only InboundRule. */
const INBOUND_RULES: readonly { cls: ResourceClass; rules(props: Record<string, unknown>): InboundRule[] }[] =
  [
    {
      cls: digitalocean.Firewall,
      rules: (p) =>
        ((p.inboundRules as Record<string, unknown>[] | undefined) ?? []).map((r) => ({
          protocol: String(r.protocol),
          ports: String(r.portRange ?? "all"),
          sources: (r.sourceAddresses as string[] | undefined) ?? [],
        })),
    },
    {
      cls: linode.Firewall,
      rules: (p) =>
        ((p.inbounds as Record<string, unknown>[] | undefined) ?? [])
          .filter((r) => String(r.action).toUpperCase() === "ACCEPT")
          .map((r) => ({
            protocol: String(r.protocol),
            ports: String(r.ports ?? "all"),
            sources: [
              ...((r.ipv4s as string[] | undefined) ?? []),
              ...((r.ipv6s as string[] | undefined) ?? []),
            ],
          })),
    },
    {
      cls: vultr.FirewallRule,
      rules: (p) => [
        {
          protocol: String(p.protocol),
          ports: String(p.port ?? "all"),
          sources: [`${String(p.subnet)}/${String(p.subnetSize)}`],
        },
      ],
    },
  ];

export interface SshNotWorldOpenConfig {
  allowWorldSsh: boolean;
  /** The TCP path's port ('cloudpal:tcpPort'), which is open to the world by design. */
  tcpPathPorts: number[];
}

/**
 * The hub opens TCP for SSH and for the TCP path (WireGuard is UDP), so any inbound TCP rule open to the
 * world on another port than the TCP path's is SSH open to the world. Checking TCP rather than one port number
 * keeps the check right when 'sshPort' changes; a stack with another 'tcpPort' sets `tcpPathPorts` here.
 */
export const sshNotWorldOpen: ResourceValidationPolicy = {
  name: "ssh-not-world-open",
  description: "SSH must not be reachable from the whole internet unless explicitly allowed.",
  enforcementLevel: "mandatory",
  configSchema: {
    properties: {
      allowWorldSsh: { type: "boolean", default: false },
      tcpPathPorts: { type: "array", items: { type: "integer" }, default: [443] },
    },
  },
  validateResource: (args: ResourceValidationArgs, report: ReportViolation) => {
    const { allowWorldSsh, tcpPathPorts } = args.getConfig<SshNotWorldOpenConfig>();
    if (allowWorldSsh) return;
    const tcpPath = new Set((tcpPathPorts ?? [443]).map(String));
    for (const kind of INBOUND_RULES) {
      if (!args.isType(kind.cls)) continue;
      for (const rule of kind.rules(args.props)) {
        const world = rule.sources.filter((s) => WORLD.has(s));
        if (rule.protocol.toLowerCase() === "tcp" && world.length > 0 && !tcpPath.has(rule.ports)) {
          report(
            `Inbound TCP (SSH) must not accept ${world.join(" and ")} on port ${rule.ports} (${args.name}): list your own addresses in 'cloudpal:sshAllowedCidrs', or set this policy's allowWorldSsh to true.`,
          );
        }
      }
    }
  },
};

/** Each VM must sit behind its provider's firewall. Attachment is often a separate resource, so the check
 * looks at the whole stack. */
export const firewallAttached: StackValidationPolicy = {
  name: "firewall-attached",
  description: "Every hub VM must have its provider's firewall attached.",
  enforcementLevel: "mandatory",
  configSchema: { properties: {} },
  validateStack: (args, report) => {
    const attachedBy = (attachType: string, property: string) =>
      new Set(
        args.resources
          .filter((r) => r.type === attachType)
          .flatMap((r) => (r.propertyDependencies[property] ?? []).map((d) => d.urn)),
      );
    const doAttached = attachedBy(typeOf(digitalocean.Firewall), "dropletIds");
    const linodeAttached = attachedBy(typeOf(linode.FirewallDevice), "entityId");
    const vms: { type: string; attached(r: (typeof args.resources)[number]): boolean; how: string }[] = [
      {
        type: typeOf(digitalocean.Droplet),
        attached: (r) => doAttached.has(r.urn),
        how: "list it in a digitalocean.Firewall's dropletIds",
      },
      {
        type: typeOf(linode.Instance),
        attached: (r) => linodeAttached.has(r.urn) || r.props.firewallId !== undefined,
        how: "attach a linode.Firewall with a linode.FirewallDevice",
      },
      {
        type: typeOf(vultr.Instance),
        attached: (r) => typeof r.props.firewallGroupId === "string" && r.props.firewallGroupId !== "",
        how: "set its firewallGroupId to a vultr.FirewallGroup",
      },
    ];
    for (const vm of vms) {
      for (const r of args.resources.filter((x) => x.type === vm.type)) {
        if (!vm.attached(r)) report(`A hub VM must have a firewall attached (${r.name}): ${vm.how}.`, r.urn);
      }
    }
  },
};

// ---------------------------------------------------------------------------------------------- storage

/** Where a provider can encrypt at rest, and the property that says it does. */
const ENCRYPTABLE: readonly {
  cls: ResourceClass;
  encrypted(props: Record<string, unknown>): boolean;
  fix: string;
}[] = [
  {
    cls: linode.Instance,
    encrypted: (p) => p.diskEncryption === "enabled",
    fix: 'set diskEncryption: "enabled"',
  },
  { cls: linode.Volume, encrypted: (p) => p.encryption === "enabled", fix: 'set encryption: "enabled"' },
];

export const storageEncrypted: ResourceValidationPolicy = {
  name: "storage-encrypted",
  description:
    "Disks and volumes must be encrypted at rest where the provider offers it (Linode). DigitalOcean encrypts volumes itself.",
  enforcementLevel: "mandatory",
  configSchema: { properties: {} },
  validateResource: (args, report) => {
    for (const kind of ENCRYPTABLE) {
      if (args.isType(kind.cls) && !kind.encrypted(args.props))
        report(`Storage must be encrypted at rest (${args.name}): ${kind.fix}.`);
    }
  },
};

/** Vultr has no at-rest encryption switch: say so on every deploy rather than pretend. */
export const storageEncryptionUnavailable: ResourceValidationPolicy = {
  name: "storage-encryption-unavailable",
  description:
    "Vultr documents no encryption at rest for disks or block storage; the hub's keys are as private as Vultr's storage.",
  enforcementLevel: "advisory",
  configSchema: { properties: {} },
  validateResource: (args, report) => {
    if (args.isType(vultr.BlockStorage) || args.isType(vultr.Instance))
      report(
        `Storage should be encrypted at rest, which Vultr does not document (${args.name}): the hub's keys live on its Block Storage, as private as Vultr keeps it; choose DigitalOcean or Linode where that matters.`,
      );
  },
};

// ---------------------------------------------------------------------------------------------- compute

/** What key material looks like in text; each pattern names what it found, never the match itself. */
export const KEY_MATERIAL: readonly { what: string; pattern: RegExp }[] = [
  {
    what: "a WireGuard private or preshared key",
    // The key itself by the model's rule, unanchored: it is searched for inside larger text.
    pattern: new RegExp(
      `(PrivateKey|PresharedKey|private_key|preshared_key)["']?\\s*[:=]\\s*["']?${WIREGUARD_KEY_PATTERN.slice(1, -1)}`,
      "i",
    ),
  },
  { what: "a PEM or OpenSSH private key", pattern: /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/ },
  { what: "a DigitalOcean token", pattern: /\bdo[opr]_v1_[a-f0-9]{64}\b/ },
  { what: "a GitHub token", pattern: /\bgh[pousr]_[A-Za-z0-9]{36,}\b/ },
  {
    what: "a token, password or API key",
    pattern: /\b(api[_-]?key|token|secret|password|passwd)["']?\s*[:=]\s*["']?[A-Za-z0-9+/_\-.]{16,}/i,
  },
];

/** Where each provider keeps user-data, decoded to text. */
const USER_DATA: readonly { cls: ResourceClass; texts(props: Record<string, unknown>): string[] }[] = [
  { cls: digitalocean.Droplet, texts: (p) => (typeof p.userData === "string" ? [p.userData] : []) },
  {
    cls: linode.Instance,
    // Linode takes user-data base64-encoded; the key material would be inside the encoding.
    texts: (p) =>
      ((p.metadatas as { userData?: string }[] | undefined) ?? [])
        .map((m) => m.userData)
        .filter((u): u is string => typeof u === "string")
        .map((u) => Buffer.from(u, "base64").toString("utf8")),
  },
  { cls: vultr.Instance, texts: (p) => (typeof p.userData === "string" ? [p.userData] : []) },
];

const PRIVATE_KEY_BLOCK = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/g;

/**
 * The user-data with the one secret it may hold taken out: the hub's SSH host key (README "Delivery trust"),
 * exactly as cloud-init/ssh.ts writes it. It is allowed only as `ssh_keys` with nothing but `ed25519_private`
 * and `ed25519_public`, the private half an unencrypted OpenSSH ed25519 key whose public half is
 * `ed25519_public`, and it must be the only private key block in the text. Anything else is returned as a
 * problem, and the rest of the document is what the key-material patterns then see.
 */
export function withoutHostKey(text: string): { rest: string; problems: string[] } {
  if (!text.startsWith("#cloud-config")) return { rest: text, problems: [] };
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch {
    return { rest: text, problems: [] };
  }
  if (typeof doc !== "object" || doc === null || !("ssh_keys" in doc)) return { rest: text, problems: [] };
  const { ssh_keys: keys, ...others } = doc as Record<string, unknown>;
  const problems: string[] = [];
  const entries = typeof keys === "object" && keys !== null ? (keys as Record<string, unknown>) : {};
  const extra = Object.keys(entries).filter((k) => k !== "ed25519_private" && k !== "ed25519_public");
  if (extra.length > 0)
    problems.push(`ssh_keys entries other than the ed25519 host key (${extra.join(", ")})`);
  const priv = entries.ed25519_private;
  const pub = entries.ed25519_public;
  const derived = typeof priv === "string" ? ed25519PublicOfPrivate(priv) : undefined;
  if (derived === undefined || typeof pub !== "string" || publicKeyWithoutComment(pub) !== derived)
    problems.push("an ssh_keys host key that is not one unencrypted ed25519 key matching its ed25519_public");
  if ((text.match(PRIVATE_KEY_BLOCK) ?? []).length !== 1) problems.push("a private key besides the host key");
  const rest = stringifyYaml({ ...others, ssh_keys: { ...entries, ed25519_private: "(host key)" } });
  return { rest, problems };
}

export const userDataNoKeyMaterial: ResourceValidationPolicy = {
  name: "user-data-no-key-material",
  description:
    "User-data must hold no keys, tokens or passwords (the provider and root on the VM can read it), except the hub's own SSH host key in ssh_keys.",
  enforcementLevel: "mandatory",
  configSchema: { properties: {} },
  validateResource: (args, report) => {
    for (const kind of USER_DATA) {
      if (!args.isType(kind.cls)) continue;
      for (const text of kind.texts(args.props)) {
        const { rest, problems } = withoutHostKey(text);
        for (const problem of problems)
          report(
            `User-data may hold only the hub's ed25519 SSH host key (${args.name}): it holds ${problem}. Deliver secrets over SSH on stdin instead.`,
          );
        for (const k of KEY_MATERIAL) {
          if (k.pattern.test(rest))
            report(
              `User-data must not contain key material (${args.name}): it holds ${k.what}. Deliver secrets over SSH on stdin instead.`,
            );
        }
      }
    }
  },
};

// ---------------------------------------------------------------------------------------------- addresses

/** Reserved addresses per provider, with the input naming their region; Linode's only when `reserved`. */
const RESERVED_IPS: readonly {
  cls: ResourceClass;
  reserved(props: Record<string, unknown>): boolean;
  region: string;
}[] = [
  { cls: digitalocean.ReservedIp, reserved: () => true, region: "region" },
  { cls: digitalocean.ReservedIpv6, reserved: () => true, region: "regionSlug" },
  { cls: linode.NetworkingIp, reserved: (p) => p.reserved === true, region: "region" },
  { cls: vultr.ReservedIp, reserved: () => true, region: "region" },
];

/**
 * A reserved address is region-bound: named after its region, a move creates a new one instead of replacing
 * it. And it must not be protected: the engine refuses to replace or delete a protected resource, so a move
 * or a provider switch would stop half-way (pulumi/pulumi pkg/resource/deploy/step_generator.go, step.go).
 * The program keeps old addresses with `retainOnDelete` instead, which the policy SDK does not show
 * (test/program.test.ts checks it).
 */
export const reservedIpMovable: ResourceValidationPolicy = {
  name: "reserved-ip-movable",
  description: "Reserved IPs are named after their region and not protected, so the hub can move.",
  enforcementLevel: "mandatory",
  configSchema: { properties: {} },
  validateResource: (args, report) => {
    for (const kind of RESERVED_IPS) {
      if (!args.isType(kind.cls) || !kind.reserved(args.props)) continue;
      const region = args.props[kind.region];
      if (typeof region === "string" && !args.name.endsWith(`-${region}`))
        report(
          `A reserved IP must be named after its region (${args.name}): end its name with "-${region}", so a region move creates a new address instead of replacing this one.`,
        );
      if (args.opts.protect)
        report(
          `A reserved IP must not be protected (${args.name}): the engine would stop a region move or provider switch half-way; keep it with { retainOnDelete: true } instead.`,
        );
    }
  },
};

export const POLICIES = {
  resource: [
    sshNotWorldOpen,
    storageEncrypted,
    storageEncryptionUnavailable,
    userDataNoKeyMaterial,
    reservedIpMovable,
  ],
  stack: [firewallAttached],
} as const;
