/**
 * A server the user already has (home server, another VPS), reached over SSH. Nothing is created: the
 * bootstrap script runs over SSH instead of cloud-init, and the hub's own nftables is the only firewall.
 */
import * as pulumi from "@pulumi/pulumi";
import * as ipaddr from "ipaddr.js";
import type { ExistingHostTarget } from "../config";
import type { Host, HostArgs } from "./host";

export function existingHost(args: HostArgs): Host {
  const target = args.config.host as ExistingHostTarget;
  const literal = ipaddr.isValid(target.host) ? ipaddr.parse(target.host) : undefined;
  return {
    sshHost: pulumi.output(target.host),
    ipv4: pulumi.output(literal?.kind() === "ipv4" ? target.host : undefined),
    ipv6: pulumi.output(literal?.kind() === "ipv6" ? target.host : undefined),
    publicIpv6: pulumi.output(
      target.ipv6Prefix !== undefined
        ? { prefix: target.ipv6Prefix, ...(target.ipv6OnLink ? { onLink: true } : {}) }
        : undefined,
    ),
    ready: [],
    machineId: pulumi.output(`existing:${target.host}`),
  };
}
