/**
 * One interface for every place a hub can run. The Hub picks the implementation with an exhaustive switch
 * over the provider and never looks inside it.
 */
import * as pulumi from "@pulumi/pulumi";
import { hubPublicPorts } from "../../model/public-ports";
import type { HubConfig } from "../config";
import type { PublicIpv6State } from "../../model/state";

export interface HostArgs {
  readonly config: HubConfig;
  /**
   * cloud-init user-data from cloud-init/render.ts: depends only on the BootstrapSpec and the hub's SSH host
   * key, never on peers. A secret Output: it holds the host key's private half.
   */
  readonly userData: pulumi.Output<string>;
}

export interface Host {
  /** The address delivery connects to over SSH: the reserved IPv4, or the existing server's host. */
  readonly sshHost: pulumi.Output<string>;
  /**
   * Public IPv4/IPv6 of the hub (undefined where there is none). The IPv4 is a reserved one that stays across
   * rebuilds, except on Linode without 'linodeReservedIpv4', where it is the instance's own.
   */
  readonly ipv4: pulumi.Output<string | undefined>;
  readonly ipv6: pulumi.Output<string | undefined>;
  /**
   * The public IPv6 the agent manages (model/public-ipv6.ts): addresses the hub configures itself
   * (DigitalOcean's reserved IPv6) and the prefix devices get global addresses from (Linode's routed range,
   * Vultr's on-link /64, an `existing` server's prefix). Undefined where there is neither.
   */
  readonly publicIpv6: pulumi.Output<PublicIpv6State | undefined>;
  /** Everything that must exist before SSH can reach the operator user (VM, firewall, IP assignment). */
  readonly ready: readonly pulumi.Resource[];
  /** Changes exactly when the machine is replaced, so delivery runs again on the new one. */
  readonly machineId: pulumi.Output<string>;
}

/**
 * Provider firewall rules, written once from the hub's public ports (model/public-ports.ts, which the hub's
 * nftables ruleset also follows): WireGuard on its listen port and every extra port from anywhere, SSH only
 * from the allowed CIDRs. One rule per port: DigitalOcean's `port_range` and Vultr's `port` take one port or
 * one range, not a list (simulate/rules.ts FIREWALL_PORT_SYNTAX).
 */
export interface InboundRule {
  readonly label: string;
  readonly protocol: "udp" | "tcp";
  readonly port: number;
  readonly ipv4: readonly string[];
  readonly ipv6: readonly string[];
}

export function inboundRules(config: HubConfig): InboundRule[] {
  const v4 = config.sshAllowedCidrs.filter((c) => !c.includes(":"));
  const v6 = config.sshAllowedCidrs.filter((c) => c.includes(":"));
  return hubPublicPorts(config).map((p) => ({
    label: p.label,
    protocol: p.protocol,
    port: p.port,
    ...(p.from === "ssh" ? { ipv4: v4, ipv6: v6 } : { ipv4: ["0.0.0.0/0"], ipv6: ["::/0"] }),
  }));
}

/**
 * Reserved addresses outlive the VM: losing one means every device config points nowhere. They are not
 * `protect`ed: the engine refuses to replace a protected resource (pulumi/pulumi
 * pkg/resource/deploy/step_generator.go) and checks `protect` before `retainOnDelete` on a delete
 * (pkg/resource/deploy/step.go), so a region move or a provider switch would stop half-way. Instead each address is named after its region (reservedIpName) and kept in the account when the
 * program stops registering it: a move builds new addresses and leaves the old ones for the operator to
 * release by hand once every device uses the new endpoint (README, "Move the hub").
 */
export const RESERVED_IP_OPTIONS: pulumi.CustomResourceOptions = { retainOnDelete: true };

/**
 * The options of a region-named reserved address. The alias is the name stacks made before region naming
 * used (`hub-ipv4`, protected): their first `pulumi up` on this version renames the address in the state,
 * drops `protect` and keeps it, rather than making a new address that every device config would miss.
 */
export function reservedIpOptions(name: string, family: "ipv4" | "ipv6"): pulumi.CustomResourceOptions {
  return { ...RESERVED_IP_OPTIONS, aliases: [{ name: `${name}-${family}` }] };
}

/** The logical name of a region-bound reserved address: a new region is a new resource, never a replace. */
export function reservedIpName(name: string, family: "ipv4" | "ipv6", region: string): string {
  return `${name}-${family}-${region}`;
}

/**
 * The machine, and anything that attaches one thing to it, is replaced delete-before-replace on every cloud.
 * There is one hub, one reserved address that only one machine may hold, and a label some clouds want
 * unique (Linode: "Label must be unique among your Linodes", pulumi/pulumi-linode#882; Vultr: the new
 * instance waits for a reserved IP the old one still holds, vultr/resource_vultr_instance.go). A rebuild is
 * down for one boot anyway, so building the new machine second costs nothing.
 */
export const MACHINE_OPTIONS: pulumi.CustomResourceOptions = { deleteBeforeReplace: true };
