/**
 * Linode (Akamai): an Instance with an encrypted disk, a Cloud Firewall attached through FirewallDevice
 * (changing the instance's own firewallId would replace it), and a reserved IPv4. IPv6 is the instance's
 * own SLAAC address.
 */
import * as linode from "@pulumi/linode";
import * as pulumi from "@pulumi/pulumi";
import { CATALOG } from "../catalog";
import type { CloudHostTarget } from "../config";
import { type Host, type HostArgs, inboundRules, RESERVED_IP_OPTIONS } from "./host";

export function linodeHost(name: string, args: HostArgs, parent: pulumi.Resource): Host {
  const { config, userData } = args;
  const target = config.host as CloudHostTarget;
  const opts = { parent };
  const instance = new linode.Instance(
    `${name}-instance`,
    {
      label: config.hostname,
      region: target.region,
      type: target.size,
      image: String(CATALOG.linode.images[config.image]),
      // Linode's metadata service wants user-data already base64-encoded.
      metadatas: [{ userData: Buffer.from(userData, "utf8").toString("base64") }],
      diskEncryption: "enabled",
      backupsEnabled: target.backups,
      privateIp: false,
    },
    opts,
  );
  const linodeId = instance.id.apply(Number);
  const firewall = new linode.Firewall(
    `${name}-firewall`,
    {
      label: `${config.hostname}-firewall`,
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
  const ipv4 = new linode.NetworkingIp(
    `${name}-ipv4`,
    { type: "ipv4", public: true, reserved: true, region: target.region },
    { ...opts, ...RESERVED_IP_OPTIONS },
  );
  const assignment = new linode.ReservedIpAssignment(
    `${name}-ipv4-assignment`,
    { linodeId, address: ipv4.address, public: true, applyImmediately: true },
    opts,
  );
  return {
    sshHost: ipv4.address,
    ipv4: ipv4.address,
    // Linode reports "2600:3c0a::f03c:95ff:fe1b:2a3b/128"; devices need the bare address.
    ipv6: instance.ipv6.apply((v) => (v ? v.split("/")[0] : undefined)),
    ready: [instance, attachment, assignment],
    machineId: instance.id,
  };
}
