/**
 * Vultr: an Instance with IPv6 and a reserved IPv4, a firewall group with v4 and v6 rules, and block storage
 * that holds the hub's keys. Whether Vultr encrypts instance disks or block storage at rest is not stated in
 * any Vultr document found (README, provider table); the keys go on the block storage, kept apart from the disk.
 */
import * as vultr from "@ediri/vultr";
import * as pulumi from "@pulumi/pulumi";
import * as ipaddr from "ipaddr.js";
import { CATALOG } from "../catalog";
import type { CloudHostTarget } from "../config";
import {
  type Host,
  type HostArgs,
  inboundRules,
  MACHINE_OPTIONS,
  reservedIpOptions,
  reservedIpName,
} from "./host";

export function vultrHost(name: string, args: HostArgs, parent: pulumi.Resource): Host {
  const { config, userData } = args;
  const target = config.host as CloudHostTarget;
  const opts = { parent };
  const group = new vultr.FirewallGroup(
    `${name}-firewall`,
    { description: `${config.hostname} (CloudPal)` },
    opts,
  );
  const rules: vultr.FirewallRule[] = [];
  for (const rule of inboundRules(config)) {
    const sources = [...rule.ipv4.map((c) => ["v4", c]), ...rule.ipv6.map((c) => ["v6", c])];
    for (const [ipType, cidr] of sources) {
      const [subnet, size] = cidr.split("/");
      rules.push(
        new vultr.FirewallRule(
          `${name}-firewall-${rule.label}-${ipType}-${subnet.replace(/[.:]/g, "-")}-${size}`,
          {
            firewallGroupId: group.id,
            protocol: rule.protocol,
            ipType,
            subnet,
            subnetSize: Number(size),
            port: String(rule.port),
            notes: rule.label,
          },
          opts,
        ),
      );
    }
  }
  const ipv4 = new vultr.ReservedIp(
    reservedIpName(name, "ipv4", target.region),
    { region: target.region, ipType: "v4", label: `${config.hostname}-ipv4` },
    { ...opts, ...reservedIpOptions(name, "ipv4") },
  );
  const instance = new vultr.Instance(
    `${name}-instance`,
    {
      label: config.hostname,
      hostname: config.hostname,
      region: target.region,
      plan: target.size,
      osId: Number(CATALOG.vultr.images[config.image]),
      enableIpv6: true,
      reservedIpId: ipv4.id,
      firewallGroupId: group.id,
      userData,
      backups: target.backups ? "enabled" : "disabled",
      // The provider refuses enabled backups without a schedule, and a schedule with backups disabled
      // (vultr/resource_vultr_instance.go, "Backups are set to enabled please provide a backups_schedule").
      // Daily at the hour before the default auto-reboot window (04:00 UTC).
      ...(target.backups ? { backupsSchedule: { type: "daily", hour: 3 } } : {}),
      ddosProtection: false,
      activationEmail: false,
    },
    // `reservedIpId` (and `userData`, `hostname`, `region`, `osId`) force a new instance
    // (vultr/resource_vultr_instance.go). Created first, the new instance would wait for the reserved IP the
    // old one still holds, retrying "Floating IPv4 address is already attached to another server" for 59
    // minutes, then fail; deleted first, the provider's retry covers the API's asynchronous detach
    // (vultr/terraform-provider-vultr#77, #322).
    { ...opts, ...MACHINE_OPTIONS, dependsOn: rules },
  );
  // The hub's keys live here (model/layout.ts stateVolume). It arrives blank and is hot-plugged (`live`: no
  // reboot) after the instance exists; the delivery's storage step formats it with the label and mounts it
  // before any key is sent (components/delivery.ts). `storage_opt` (HDD) is the type every region offers;
  // `high_perf` is missing in several, the default `fra` among them (Vultr /v2/regions `options`). 40 GB: the
  // smallest HDD volume Vultr's order form offers (not enforced by the provider, which only validates the
  // type: vultr/resource_vultr_block_storage.go).
  const storage = new vultr.BlockStorage(
    `${name}-state-volume`,
    {
      label: `${config.hostname}-state`,
      region: target.region,
      sizeGb: 40,
      blockType: "storage_opt",
      attachedToInstance: instance.id,
      live: true,
    },
    opts,
  );
  return {
    sshHost: ipv4.subnet,
    ipv4: ipv4.subnet,
    ipv6: instance.v6MainIp,
    // The instance's /64 is on the link, not routed to it, and it is the instance's own: a rebuild brings a
    // new one (README, provider table). The hub answers neighbour discovery for the addresses it uses.
    publicIpv6: pulumi
      .all([instance.v6Network, instance.v6NetworkSize])
      .apply(([network, size]) =>
        network ? { prefix: `${ipaddr.IPv6.parse(network).toString()}/${size}`, onLink: true } : undefined,
      ),
    ready: [instance, storage, ...rules],
    machineId: instance.id,
  };
}
