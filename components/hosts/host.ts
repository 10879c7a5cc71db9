/**
 * One interface for every place a hub can run. The Hub picks the implementation with an exhaustive switch
 * over the provider and never looks inside it.
 */
import * as pulumi from "@pulumi/pulumi";
import type { HubConfig } from "../config";

export interface HostArgs {
  readonly config: HubConfig;
  /** cloud-init user-data from cloud-init/render.ts: depends only on the BootstrapSpec, never on peers. */
  readonly userData: string;
}

export interface Host {
  /** The address delivery connects to over SSH: the reserved IPv4, or the existing server's host. */
  readonly sshHost: pulumi.Output<string>;
  /** Public IPv4/IPv6 that stay with the hub across rebuilds (undefined where there is none). */
  readonly ipv4: pulumi.Output<string | undefined>;
  readonly ipv6: pulumi.Output<string | undefined>;
  /** Everything that must exist before SSH can reach the operator user (VM, firewall, IP assignment). */
  readonly ready: readonly pulumi.Resource[];
  /** Changes exactly when the machine is replaced, so delivery runs again on the new one. */
  readonly machineId: pulumi.Output<string>;
}

/** Provider firewall rules, written once: WireGuard from anywhere, SSH only from the allowed CIDRs. */
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
  return [
    { label: "wireguard", protocol: "udp", port: config.wireguardPort, ipv4: ["0.0.0.0/0"], ipv6: ["::/0"] },
    { label: "ssh", protocol: "tcp", port: config.sshPort, ipv4: v4, ipv6: v6 },
  ];
}

/** Reserved addresses outlive the VM: losing one means every device config points nowhere. */
export const RESERVED_IP_OPTIONS: pulumi.CustomResourceOptions = { protect: true };
