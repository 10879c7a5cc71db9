/**
 * What the providers enforce, per resource type the program registers: which inputs force a new resource,
 * which names must be unique, and what attaches to one resource at a time. Mocks accept anything; these rules
 * are what makes the scenario simulation (simulate/engine.ts) fail where a real `pulumi up` would.
 *
 * Every rule cites the upstream source it was read from, at the version our lockfile bridges:
 * - @pulumi/digitalocean 4.80.1 bridges digitalocean/terraform-provider-digitalocean (see DO below);
 * - @pulumi/linode 5.1.1 bridges linode/terraform-provider-linode;
 * - @ediri/vultr 2.21.0 bridges vultr/terraform-provider-vultr;
 * - @pulumi/command 1.2.1 and @pulumi/random 4.21.2 are read in their own repositories.
 * Input names are the Pulumi (camelCase) names.
 */

export interface UniqueRule {
  /** The input whose value must be unique among live resources of the type. */
  readonly input: string;
  /** "account": across the whole account; "region": among those whose `regionInput` is the same. */
  readonly scope: "account" | "region";
  readonly regionInput?: string;
  /** The provider's answer on a clash. */
  readonly error: string;
}

export interface ExclusiveRule {
  /** At most one live resource of the type may hold a given value of this input at a time. */
  readonly input: string;
  /** What the value names, for the message ("volume", "reserved IP"). */
  readonly what: string;
  readonly error: string;
}

export interface HeldByRule {
  /** A live resource of this type whose `input` holds this resource's id keeps it from being deleted. */
  readonly type: string;
  readonly input: string;
  readonly error: string;
}

export interface ResourceRule {
  readonly type: string;
  /** Inputs whose change makes the provider replace the resource (ForceNew / RequiresReplace). */
  readonly forceNew: readonly string[];
  readonly unique?: readonly UniqueRule[];
  readonly exclusive?: readonly ExclusiveRule[];
  /** The provider itself asks the engine to delete before it replaces (the engine honours it). */
  readonly alwaysDeleteBeforeReplace?: boolean;
  /**
   * The provider asks for delete-before-replace when the program sets this input itself: the bridge does so
   * for an auto-named `name` that the autonamer did not fill (pulumi/pulumi-terraform-bridge
   * pkg/tfbridge/provider.go Diff → schema.go nameRequiresDeleteBeforeReplace).
   */
  readonly deleteBeforeReplaceWhenSet?: string;
  /** Resources that must let go of this one before it can be deleted. */
  readonly heldBy?: readonly HeldByRule[];
  /** Where the rule was read: repository, path, version. */
  readonly source: string;
}

// @pulumi/digitalocean 4.80.1 bridges a v2.9x release; read at v2.99.1, identical to v2.96.0 for these files
// except gpuPartitionMode. Its provider/resources.go calls SetAutonaming, so every resource with a `name`
// input set by the program is replaced delete-before-replace (deleteBeforeReplaceWhenSet below).
const TF_DO = "digitalocean/terraform-provider-digitalocean v2.99.1";
const TF_LINODE = "linode/terraform-provider-linode v3.1.1";
const TF_VULTR = "vultr/terraform-provider-vultr e300edfa103a (v2.21.0)";

export const RULES: readonly ResourceRule[] = [
  // Components have no provider: the engine never replaces them on their own.
  { type: "cloudpal:index:Hub", forceNew: [], source: "component resource (no provider)" },
  {
    type: "random:index/randomBytes:RandomBytes",
    forceNew: ["length", "keepers"],
    source: "pulumi/pulumi-random, terraform-provider-random internal/provider/resource_bytes.go",
  },
  {
    type: "command:remote:Command",
    forceNew: ["triggers"],
    source: "pulumi/pulumi-command v1.2.1 provider/pkg/provider/remote/command.go",
  },
  {
    // `triggers` is replaceOnChanges (common/inputs.go); a changed `source` hash or `remotePath` is an Update
    // that copies again (copyController.go Update), not a replacement.
    type: "command:remote:CopyToRemote",
    forceNew: ["triggers"],
    source: "pulumi/pulumi-command v1.2.1 provider/pkg/provider/remote/copy.go, copyController.go",
  },
  {
    type: "digitalocean:index/sshKey:SshKey",
    forceNew: ["publicKey"],
    deleteBeforeReplaceWhenSet: "name",
    unique: [{ input: "publicKey", scope: "account", error: "SSH Key is already in use on your account" }],
    source: `${TF_DO} digitalocean/sshkey/resource_ssh_key.go`,
  },
  {
    type: "digitalocean:index/droplet:Droplet",
    // `ipv6` forces a new droplet only from true to false (CustomizeDiff ForceNewIfChange): the hub never
    // turns it off. `name` and `size` change in place (rename, resize).
    forceNew: [
      "image",
      "region",
      "publicNetworking",
      "sshKeys",
      "userData",
      "monitoring",
      "dropletAgent",
      "vpcUuid",
      "gpuPartitionMode",
    ],
    deleteBeforeReplaceWhenSet: "name",
    exclusive: [
      {
        input: "volumeIds",
        what: "volumes",
        error:
          "a volume attaches to one droplet at a time; the droplet's create request attaches `volume_ids`, and only deleting the old droplet detaches them (detachVolumesFromDroplet)",
      },
    ],
    source: `${TF_DO} digitalocean/droplet/resource_droplet.go`,
  },
  {
    type: "digitalocean:index/firewall:Firewall",
    forceNew: [],
    deleteBeforeReplaceWhenSet: "name",
    source: `${TF_DO} digitalocean/firewall/resource_firewall.go`,
  },
  {
    type: "digitalocean:index/reservedIp:ReservedIp",
    forceNew: ["region"],
    source: `${TF_DO} digitalocean/reservedip/resource_reserved_ip.go`,
  },
  {
    type: "digitalocean:index/reservedIpAssignment:ReservedIpAssignment",
    forceNew: ["ipAddress", "dropletId"],
    // A reserved IP is on one droplet, and a droplet holds one reserved IP ("Droplets cannot have more than
    // one Reserved IP address assigned to them at a time": docs.digitalocean.com/products/droplets/details/limits/).
    exclusive: [
      { input: "ipAddress", what: "reserved IP", error: "the reserved IP is assigned to another droplet" },
      { input: "dropletId", what: "droplet", error: "the droplet already has a reserved IP" },
    ],
    source: `${TF_DO} digitalocean/reservedip/resource_reserved_ip_assignment.go`,
  },
  {
    type: "digitalocean:index/reservedIpv6:ReservedIpv6",
    forceNew: ["regionSlug"],
    source: `${TF_DO} digitalocean/reservedipv6/resource_reserved_ipv6.go`,
  },
  {
    type: "digitalocean:index/reservedIpv6Assignment:ReservedIpv6Assignment",
    forceNew: ["ip", "dropletId"],
    exclusive: [
      { input: "ip", what: "reserved IPv6", error: "the reserved IPv6 is assigned to another droplet" },
    ],
    source: `${TF_DO} digitalocean/reservedipv6/resource_reserved_ipv6_assignment.go`,
  },
  {
    type: "digitalocean:index/volume:Volume",
    forceNew: [
      "region",
      "name",
      "description",
      "initialFilesystemType",
      "initialFilesystemLabel",
      "snapshotId",
    ],
    deleteBeforeReplaceWhenSet: "name",
    // Name uniqueness is neither in the provider's source nor in DigitalOcean's docs: kept as the cautious reading.
    unique: [
      {
        input: "name",
        scope: "region",
        regionInput: "region",
        error: "a volume with that name already exists in the region",
      },
    ],
    // resourceDigitalOceanVolumeDelete calls DeleteVolume without detaching first; the API refuses an attached
    // volume (terraform-provider-digitalocean issue 27, PR 32).
    heldBy: [
      {
        type: "digitalocean:index/droplet:Droplet",
        input: "volumeIds",
        error:
          "409 A volume that's attached to a Droplet cannot be deleted. Please detach it first before deleting.",
      },
    ],
    source: `${TF_DO} digitalocean/volume/resource_volume.go`,
  },
  {
    type: "digitalocean:index/volumeAttachment:VolumeAttachment",
    forceNew: ["dropletId", "volumeId"],
    exclusive: [
      {
        input: "volumeId",
        what: "volume",
        error:
          "a volume attaches to one droplet at a time (the attach action fails while it is attached elsewhere)",
      },
    ],
    source: `${TF_DO} digitalocean/volume/resource_volume_attachment.go`,
  },
  {
    type: "linode:index/instance:Instance",
    // Not `region` (an in-place migration: resource.go → helpers.go applyInstanceMigration; the program asks
    // for a replacement with replaceOnChanges), not `label`, `type`, `backupsEnabled` or `privateIp` (in place).
    forceNew: [
      "image",
      "backupId",
      "stackscriptId",
      "stackscriptData",
      "ipv4s",
      "authorizedKeys",
      "authorizedUsers",
      "rootPass",
      "firewallId",
      "metadatas",
      "diskEncryption",
    ],
    unique: [{ input: "label", scope: "account", error: "[400] Label must be unique among your Linodes" }],
    // A reserved IPv4 given at creation must be unassigned: "Address must be currently unassigned." (recorded
    // API answer, linode/linodego test/integration/fixtures/TestInstance_CreateWithAlreadyAssignedReservedIP.yaml).
    exclusive: [
      { input: "ipv4s", what: "reserved IPv4", error: "[400] Address must be currently unassigned." },
    ],
    source: `${TF_LINODE} linode/instance/schema_resource.go`,
  },
  {
    type: "linode:index/firewall:Firewall",
    forceNew: [],
    // Unique labels: the API's description ("Must be unique"), not checked in the provider.
    unique: [{ input: "label", scope: "account", error: "[400] Label must be unique among your Firewalls" }],
    source: `${TF_LINODE} linode/firewall/framework_schema_resource.go`,
  },
  {
    type: "linode:index/firewallDevice:FirewallDevice",
    forceNew: ["firewallId", "entityId", "entityType"],
    source: `${TF_LINODE} linode/firewalldevice/framework_resource_schema.go`,
  },
  {
    type: "linode:index/networkingIp:NetworkingIp",
    // No RequiresReplace at all: a `region` change is planned as an update that changes nothing in the API
    // (Update ignores it), which is why the program names reserved addresses by region. ModifyPlan adds
    // RequiresReplace on `linodeId` only for an address that is not reserved (framework_resource.go).
    forceNew: [],
    source: `${TF_LINODE} linode/networkingip/framework_resource_schema.go`,
  },
  {
    type: "linode:index/ipv6Range:Ipv6Range",
    // `prefix_length` and `route_target` RequiresReplace. The program sets `linodeId` only; the provider fills
    // `route_target` from it, and when `linodeId` changes the framework plans the unset, computed
    // `route_target` as unknown, which differs from the state and so requires replacement
    // (terraform-plugin-framework v1.15.0 stringplanmodifier/requires_replace_if.go): a new instance means a
    // new range. Hence `linodeId` here.
    forceNew: ["prefixLength", "routeTarget", "linodeId"],
    source: `${TF_LINODE} linode/ipv6range/framework_schema_resource.go, framework_resource.go`,
  },
  {
    type: "linode:index/reservedIpAssignment:ReservedIpAssignment",
    // `address` has no RequiresReplace: changing it is a silent no-op in the API (Update keeps the plan).
    forceNew: ["linodeId", "public"],
    source: `${TF_LINODE} linode/instancereservedipassignment/framework_schema.go`,
  },
  {
    type: "vultr:index/instance:Instance",
    forceNew: [
      "region",
      "appId",
      "imageId",
      "osId",
      "scriptId",
      "disablePublicIpv4",
      "sshKeyIds",
      "snapshotId",
      "userData",
      "hostname",
      "reservedIpId",
      "appVariables",
    ],
    exclusive: [
      {
        input: "reservedIpId",
        what: "reserved IP",
        error:
          "Floating IPv4 address is already attached (the provider retries for about an hour, then fails)",
      },
    ],
    source: `${TF_VULTR} vultr/resource_vultr_instance.go`,
  },
  {
    type: "vultr:index/firewallGroup:FirewallGroup",
    forceNew: [],
    source: `${TF_VULTR} vultr/resource_vultr_firewall_group.go`,
  },
  {
    type: "vultr:index/firewallRule:FirewallRule",
    forceNew: ["firewallGroupId", "protocol", "ipType", "subnet", "subnetSize", "port", "source", "notes"],
    source: `${TF_VULTR} vultr/resource_vultr_firewall_rule.go`,
  },
  {
    type: "vultr:index/reservedIp:ReservedIp",
    forceNew: ["region", "ipType"],
    source: `${TF_VULTR} vultr/resource_vultr_reserved_ip.go`,
  },
  {
    type: "vultr:index/blockStorage:BlockStorage",
    forceNew: ["region", "blockType"],
    source: `${TF_VULTR} vultr/resource_vultr_block_storage.go`,
  },
];

const BY_TYPE = new Map(RULES.map((r) => [r.type, r]));

/** The rule for a type; a type with no rule is a mistake to fix here, never a silent pass. */
export function ruleFor(type: string): ResourceRule {
  const rule = BY_TYPE.get(type);
  if (!rule) {
    throw new Error(
      `no provider rule for ${type}: add one to simulate/rules.ts, read from the provider's source, before the program registers it`,
    );
  }
  return rule;
}

/**
 * How each provider's firewall says which ports it opens, read at the bridged versions above, and what a rule
 * may say. firewallOpenings reads the firewall inputs the program registered back into openings
 * ("udp/443 from 0.0.0.0/0"), refusing what the provider would refuse, so a test can compare them with the
 * hub's public ports (model/public-ports.ts) and a wrong firewall fails `npm test`.
 */
export const FIREWALL_PORT_SYNTAX = {
  // `port_range`: "a single port, a range (e.g. "8000-9000"), or "1-65535"" (docs/resources/firewall.md);
  // protocol StringInSlice tcp/udp/icmp, lower case (digitalocean/firewall/firewalls.go firewallRuleSchema);
  // `inbound_rule` is a TypeSet, so two identical rules collapse into one.
  "digitalocean:index/firewall:Firewall": {
    ports: /^([0-9]{1,5})(?:-([0-9]{1,5}))?$/,
    protocols: ["tcp", "udp", "icmp"],
    source: `${TF_DO} digitalocean/firewall/firewalls.go, docs/resources/firewall.md`,
  },
  // `ports`: "A string representation of ports and/or port ranges (i.e. "443" or "80-90, 91")"; `label`
  // LengthBetween(3, 32); protocol OneOf TCP/UDP/ICMP/IPENCAP (linode/firewall/framework_schema_resource.go).
  // "A Firewall may have up to 25 rules across its inbound and outbound rulesets" (Linode API v4, Firewall
  // `rules`); the provider does not check it, the API refuses the update.
  "linode:index/firewall:Firewall": {
    ports: /^[0-9]{1,5}(-[0-9]{1,5})?(, ?[0-9]{1,5}(-[0-9]{1,5})?)*$/,
    protocols: ["TCP", "UDP", "ICMP", "IPENCAP"],
    maxRules: 25,
    label: { min: 3, max: 32 },
    source: `${TF_LINODE} linode/firewall/framework_schema_resource.go`,
  },
  // `port`: "a specific port or a colon separated port range" (website/docs/r/firewall_rule.html.markdown);
  // protocol StringInSlice icmp/tcp/udp/gre/ah/esp, and Create refuses upper case
  // (vultr/resource_vultr_firewall_rule.go).
  "vultr:index/firewallRule:FirewallRule": {
    ports: /^([0-9]{1,5})(?::([0-9]{1,5}))?$/,
    protocols: ["icmp", "tcp", "udp", "gre", "ah", "esp"],
    source: `${TF_VULTR} vultr/resource_vultr_firewall_rule.go, website/docs/r/firewall_rule.html.markdown`,
  },
} as const;

export type FirewallType = keyof typeof FIREWALL_PORT_SYNTAX;

/** "udp/443", "tcp/8000-9000": one port or a range, as the provider reads the text. */
function portsOf(type: FirewallType, text: unknown): string[] {
  const syntax = FIREWALL_PORT_SYNTAX[type];
  const t = String(text);
  const parts = type === "linode:index/firewall:Firewall" ? t.split(/, ?/) : [t];
  if (!syntax.ports.test(t))
    throw new Error(`${type}: port ${JSON.stringify(t)} is not what the provider accepts (${syntax.source})`);
  return parts.map((part) => {
    const [lo, hi] = part.split(/[-:]/).map(Number);
    for (const p of [lo, hi])
      if (p !== undefined && !(p >= 1 && p <= 65535)) throw new Error(`${type}: port ${p}`);
    return hi === undefined || hi === lo ? String(lo) : `${lo}-${hi}`;
  });
}

function protocolOf(type: FirewallType, protocol: unknown): string {
  const allowed: readonly string[] = FIREWALL_PORT_SYNTAX[type].protocols;
  if (!allowed.includes(String(protocol)))
    throw new Error(`${type}: protocol ${JSON.stringify(protocol)} is not one of ${allowed.join(", ")}`);
  return String(protocol).toLowerCase();
}

/**
 * What the registered firewall resources of one stack open, one "protocol/port from cidr" per opening, sorted
 * and without repeats. `resources` are every registered firewall resource of one type: the DigitalOcean or
 * Linode firewall, or all of Vultr's rules. Throws on what the provider would refuse.
 */
export function firewallOpenings(
  type: FirewallType,
  resources: readonly { readonly inputs: Record<string, unknown> }[],
): string[] {
  const out = new Set<string>();
  const add = (protocol: string, ports: string[], sources: readonly unknown[]) => {
    for (const port of ports) for (const s of sources) out.add(`${protocol}/${port} from ${String(s)}`);
  };
  for (const { inputs } of resources) {
    if (type === "digitalocean:index/firewall:Firewall") {
      for (const r of (inputs.inboundRules ?? []) as Record<string, unknown>[])
        add(protocolOf(type, r.protocol), portsOf(type, r.portRange), (r.sourceAddresses ?? []) as unknown[]);
    } else if (type === "linode:index/firewall:Firewall") {
      const syntax = FIREWALL_PORT_SYNTAX[type];
      const inbound = (inputs.inbounds ?? []) as Record<string, unknown>[];
      const outbound = (inputs.outbounds ?? []) as unknown[];
      if (inbound.length + outbound.length > syntax.maxRules)
        throw new Error(
          `${type}: ${inbound.length + outbound.length} rules, the API allows ${syntax.maxRules}`,
        );
      for (const r of inbound) {
        const label = String(r.label);
        if (label.length < syntax.label.min || label.length > syntax.label.max)
          throw new Error(`${type}: rule label ${JSON.stringify(label)} is not 3 to 32 characters`);
        if (r.action !== "ACCEPT") continue;
        add(protocolOf(type, r.protocol), portsOf(type, r.ports), [
          ...((r.ipv4s ?? []) as unknown[]),
          ...((r.ipv6s ?? []) as unknown[]),
        ]);
      }
    } else {
      const source =
        inputs.ipType === "v6" || inputs.ipType === "v4"
          ? `${String(inputs.subnet)}/${String(inputs.subnetSize)}`
          : "";
      if (source === "") throw new Error(`${type}: ipType ${JSON.stringify(inputs.ipType)}`);
      add(protocolOf(type, inputs.protocol), portsOf(type, inputs.port), [source]);
    }
  }
  return [...out].sort();
}
