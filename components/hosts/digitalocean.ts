/**
 * DigitalOcean: a Droplet behind a Cloud Firewall, with reserved IPv4 and IPv6 and a state volume
 * (DigitalOcean encrypts volumes at rest; there is no switch for it).
 */
import { createHash } from "crypto";
import * as digitalocean from "@pulumi/digitalocean";
import * as pulumi from "@pulumi/pulumi";
import { CATALOG } from "../catalog";
import type { CloudHostTarget } from "../config";
import { type Host, type HostArgs, inboundRules, RESERVED_IP_OPTIONS } from "./host";

const ANYWHERE = ["0.0.0.0/0", "::/0"];

export function digitalOceanHost(name: string, args: HostArgs, parent: pulumi.Resource): Host {
  const { config, userData } = args;
  const target = config.host as CloudHostTarget;
  const opts = { parent };
  // Without an account SSH key DigitalOcean e-mails a root password. Keys are named by their hash so
  // reordering the list changes nothing.
  const sshKeys = config.sshPublicKeys.map(
    (publicKey) =>
      new digitalocean.SshKey(
        `${name}-ssh-${createHash("sha256").update(publicKey).digest("hex").slice(0, 12)}`,
        { name: `${config.hostname}-operator`, publicKey },
        opts,
      ),
  );
  const droplet = new digitalocean.Droplet(
    `${name}-droplet`,
    {
      name: config.hostname,
      region: target.region,
      size: target.size,
      image: String(CATALOG.digitalocean.images[config.image]),
      ipv6: true,
      userData,
      sshKeys: sshKeys.map((k) => k.id),
      // Privacy defaults: no metrics agent, no droplet agent (web console), no provider backups unless asked.
      monitoring: false,
      dropletAgent: false,
      backups: target.backups,
    },
    opts,
  );
  const dropletId = droplet.id.apply(Number);
  const firewall = new digitalocean.Firewall(
    `${name}-firewall`,
    {
      name: `${config.hostname}-firewall`,
      dropletIds: [dropletId],
      inboundRules: inboundRules(config)
        .filter((r) => r.ipv4.length + r.ipv6.length > 0)
        .map((r) => ({
          protocol: r.protocol,
          portRange: String(r.port),
          sourceAddresses: [...r.ipv4, ...r.ipv6],
        })),
      // A Cloud Firewall without outbound rules drops all egress; the hub must reach the internet for
      // apt, DNS-over-TLS and (in vpn mode) its peers' traffic.
      outboundRules: [
        { protocol: "tcp", portRange: "1-65535", destinationAddresses: ANYWHERE },
        { protocol: "udp", portRange: "1-65535", destinationAddresses: ANYWHERE },
        { protocol: "icmp", destinationAddresses: ANYWHERE },
      ],
    },
    opts,
  );
  const ipv4 = new digitalocean.ReservedIp(
    `${name}-ipv4`,
    { region: target.region },
    { ...opts, ...RESERVED_IP_OPTIONS },
  );
  const ipv4Assignment = new digitalocean.ReservedIpAssignment(
    `${name}-ipv4-assignment`,
    { ipAddress: ipv4.ipAddress, dropletId },
    opts,
  );
  const ipv6 = new digitalocean.ReservedIpv6(
    `${name}-ipv6`,
    { regionSlug: target.region },
    { ...opts, ...RESERVED_IP_OPTIONS },
  );
  const ipv6Assignment = new digitalocean.ReservedIpv6Assignment(
    `${name}-ipv6-assignment`,
    { ip: ipv6.ip, dropletId },
    opts,
  );
  const volume = new digitalocean.Volume(
    `${name}-state-volume`,
    {
      name: `${config.hostname}-state`,
      region: target.region,
      size: 1,
      initialFilesystemType: "ext4",
      description: "CloudPal hub state",
    },
    opts,
  );
  const attachment = new digitalocean.VolumeAttachment(
    `${name}-state-attachment`,
    { dropletId, volumeId: volume.id },
    opts,
  );
  return {
    sshHost: ipv4.ipAddress,
    ipv4: ipv4.ipAddress,
    ipv6: ipv6.ip,
    ready: [droplet, firewall, ipv4Assignment, ipv6Assignment, attachment],
    machineId: droplet.id,
  };
}
