/**
 * What each cloud refuses in the names and sizes CloudPal derives from the config, checked before anything is
 * registered: a first `pulumi up` must not fail half-way on a label or a size the provider would refuse.
 * Pure: it returns every problem as one sentence (field in quotes, value, fix); components/config/checks.ts
 * reports them with the rest.
 */
import { show } from "../../model/messages";
import { CATALOG, type CloudProvider } from "../catalog";
import type { RawConfig, UnallocatedConfig } from "../config/types";

/**
 * Linode labels: an Instance's is 3-50 characters (linode/terraform-provider-linode
 * linode/instance/schema_resource.go, `label` StringLenBetween(3, 50)) and a Firewall's 3-32
 * (linode/firewall/framework_schema_resource.go, `label` LengthBetween(3, 32)); the API also wants them to
 * start with a letter, end with a letter or digit, and never repeat '-', '_' or '.'. The hub's hostname is
 * the instance label and, with "-fw", the firewall label (hosts/linode.ts), so the firewall bounds it.
 */
export const LINODE_FIREWALL_SUFFIX = "-fw";
const LINODE_LABEL_MAX = 32;
export const LINODE_HOSTNAME_MIN = 3;
export const LINODE_HOSTNAME_MAX = LINODE_LABEL_MAX - LINODE_FIREWALL_SUFFIX.length;

/** Vultr sells some plans without IPv4 (their slugs end in "-v6"); the hub needs a reserved IPv4. */
const VULTR_IPV6_ONLY = /-v6$/;

export function checkProviderLimits(raw: RawConfig, cfg: UnallocatedConfig): string[] {
  const out: string[] = [];
  const provider = cfg.host.provider;
  if (raw.linodeReservedIpv4 === true && provider !== "linode") {
    out.push(
      `'linodeReservedIpv4' (true) does not apply to provider ${show(provider)}: remove it (${provider === "existing" ? "the server keeps its own address" : "this cloud's hub always has a reserved IPv4"}).`,
    );
  }
  if (provider === "existing") return out;
  out.push(...checkSize(provider, raw.size));
  if (provider === "linode") out.push(...checkLinodeHostname(cfg.hostname));
  // On Linode the keys live on the instance disk, which is encrypted; its backups are not ("Backups aren't
  // encrypted even when they're taken from an encrypted disk", Linode API reference; /tmp/audit/linode.md), so
  // they would hold the hub's keys in the clear. DigitalOcean and Vultr keep the keys on a volume, which
  // their backups of the machine do not include.
  if (provider === "linode" && raw.backups === true) {
    out.push(
      `'backups' (true) is refused on Linode: Linode backups are not encrypted, and they would copy the hub's keys off its encrypted disk; remove it (the stack holds everything needed to rebuild the hub).`,
    );
  }
  return out;
}

function checkSize(provider: CloudProvider, size: string | undefined): string[] {
  if (size === undefined) return [];
  const c = CATALOG[provider];
  const examples = c.smallSizes.map((s) => `'${s}'`).join(", ");
  if (!c.sizePattern.test(size)) {
    return [
      `'size' (${show(size)}) is not a ${c.title} size: use one of ${examples} (the default is '${c.defaultSize}'), or another from '${c.sizeCommand}'.`,
    ];
  }
  if (provider === "vultr" && VULTR_IPV6_ONLY.test(size)) {
    return [
      `'size' (${show(size)}) is a Vultr plan without IPv4, and the hub needs a reserved IPv4: use one of ${examples} (the default is '${c.defaultSize}').`,
    ];
  }
  return [];
}

function checkLinodeHostname(hostname: string): string[] {
  const problems: string[] = [];
  if (hostname.length < LINODE_HOSTNAME_MIN || hostname.length > LINODE_HOSTNAME_MAX)
    problems.push(`${LINODE_HOSTNAME_MIN} to ${LINODE_HOSTNAME_MAX} characters long`);
  if (!/^[a-z]/.test(hostname)) problems.push("starting with a letter");
  if (hostname.includes("--")) problems.push("without '--'");
  if (problems.length === 0) return [];
  return [
    `'hostname' (${show(hostname)}) cannot be a Linode label (the instance's, and with '${LINODE_FIREWALL_SUFFIX}' the firewall's, which Linode limits to ${LINODE_LABEL_MAX} characters): use one ${problems.join(", ")}, e.g. 'cloudpal-hub'.`,
  ];
}
