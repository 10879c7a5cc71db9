/**
 * Linode (Akamai): an Instance with an encrypted disk, a Cloud Firewall attached through FirewallDevice
 * (changing the instance's own firewallId would replace it), and, for accounts that have IP reservation, a
 * reserved IPv4 that is the instance's own address. IPv6 is the instance's own SLAAC address.
 *
 * Reserved IPv4 is opt-in ('linodeReservedIpv4'): Linode says "IP reservation is not currently accessible
 * to all users" (linode/terraform-provider-linode docs/resources/networking_ip.md) and other accounts get a
 * 404 on the first `pulumi up`. Without it the hub's IPv4 is the instance's own and changes on every rebuild,
 * so devices should dial 'endpointHostname'.
 */
import * as linode from "@pulumi/linode";
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

/** Linode's private IPv4 range (never used here: `privateIp` is off), told apart from the public address. */
const PRIVATE_PREFIX = "192.168.";

export function linodeHost(name: string, args: HostArgs, parent: pulumi.Resource): Host {
  const { config, userData } = args;
  const target = config.host as CloudHostTarget;
  const opts = { parent };
  // The reservation is handed to the instance at creation (`ipv4s`), so it is the instance's primary and
  // only public IPv4 and egress leaves from it. Not ReservedIpAssignment: that adds the address as a second
  // one next to the ephemeral primary, and its `applyImmediately` reboots the instance, possibly in the
  // middle of cloud-init (linode/instancereservedipassignment/framework_resource.go). `ipv4` is ForceNew
  // (linode/instance/schema_resource.go), which delete-before-replace makes safe: the old instance releases
  // the reservation before the new one claims it ("Address must be currently unassigned" otherwise).
  const reserved = target.reservedIpv4
    ? new linode.NetworkingIp(
        reservedIpName(name, "ipv4", target.region),
        { type: "ipv4", public: true, reserved: true, region: target.region },
        { ...opts, ...reservedIpOptions(name, "ipv4") },
      )
    : undefined;
  const instance = new linode.Instance(
    `${name}-instance`,
    {
      label: config.hostname,
      region: target.region,
      type: target.size,
      image: String(CATALOG.linode.images[config.image]),
      // Linode's metadata service wants user-data already base64-encoded.
      metadatas: [{ userData: userData.apply((u) => Buffer.from(u, "utf8").toString("base64")) }],
      diskEncryption: "enabled",
      backupsEnabled: target.backups,
      // Must stay off: the provider reads every IPv4 of the instance back into `ipv4`, so a private address
      // next to the reserved one would differ from the program on every `pulumi up` and force a replacement
      // (linode/instance/resource.go).
      privateIp: false,
      ...(reserved ? { ipv4s: [reserved.address] } : {}),
    },
    {
      ...opts,
      ...MACHINE_OPTIONS,
      // `region` is not ForceNew on Linode: the provider would migrate the running instance to the new data
      // centre in place (linode/instance/resource.go updateResource → helpers.go applyInstanceMigration),
      // leaving a reserved address behind in the old region. A move builds a new hub, as on every cloud.
      replaceOnChanges: ["region"],
    },
  );
  const linodeId = instance.id.apply(Number);
  const firewall = new linode.Firewall(
    `${name}-firewall`,
    {
      // Firewall labels are 3-32 characters (linode/firewall/framework_schema_resource.go); the config allows
      // a Linode hostname of at most 29 (hosts/limits.ts), so "-fw" always fits.
      label: `${config.hostname}-fw`,
      inboundPolicy: "DROP",
      outboundPolicy: "ACCEPT",
      inbounds: inboundRules(config)
        .filter((r) => r.ipv4.length + r.ipv6.length > 0)
        .map((r) => ({
          label: r.label,
          action: "ACCEPT",
          protocol: r.protocol.toUpperCase(),
          ports: String(r.port),
          ...(r.ipv4.length > 0 ? { ipv4s: [...r.ipv4] } : {}),
          ...(r.ipv6.length > 0 ? { ipv6s: [...r.ipv6] } : {}),
        })),
    },
    opts,
  );
  const attachment = new linode.FirewallDevice(
    `${name}-firewall-device`,
    { firewallId: firewall.id.apply(Number), entityId: linodeId, entityType: "linode" },
    opts,
  );
  // A routed /64 for the devices' global addresses (linode/ipv6range). It is routed to the instance's SLAAC
  // address (`route_target`, which the provider fills from `linode_id`), and `route_target` requires
  // replacement; when `linode_id` changes, an unset `route_target` is planned unknown, so a rebuilt instance
  // gets a new range (linode/terraform-provider-linode v3.1.1 linode/ipv6range/framework_schema_resource.go;
  // terraform-plugin-framework stringplanmodifier/requires_replace_if.go). README: the prefix changes with a
  // rebuild, like the instance's own IPv6.
  const range = new linode.Ipv6Range(`${name}-ipv6-range`, { linodeId, prefixLength: 64 }, opts);
  const ownIpv4 = instance.ipv4s.apply((all) => all.find((a) => !a.startsWith(PRIVATE_PREFIX)) ?? "");
  const ipv4 = reserved ? reserved.address : ownIpv4;
  if (!reserved && config.endpointHostname === undefined) {
    pulumi.log.warn(
      "Linode without 'linodeReservedIpv4': the hub's IPv4 changes on every rebuild or move, and every device config names it; set 'endpointHostname' to a DNS name you point at the hub, so devices keep working.",
    );
  }
  return {
    sshHost: ipv4,
    ipv4,
    // Linode reports "2600:3c0a::f03c:95ff:fe1b:2a3b/128"; devices need the bare address.
    ipv6: instance.ipv6.apply((v) => (v ? v.split("/")[0] : undefined)),
    // The range's address, with or without its length, as the API returns it.
    publicIpv6: range.range.apply((r) =>
      r ? { prefix: `${ipaddr.IPv6.parse(r.split("/")[0]).toString()}/64` } : undefined,
    ),
    ready: [instance, attachment, range],
    machineId: instance.id,
  };
}
