/**
 * DigitalOcean: a Droplet behind a Cloud Firewall, with reserved IPv4 and IPv6 and a state volume. Droplet
 * disks are not encrypted at rest, volumes are (LUKS, no switch), so the hub's keys live on the volume
 * (model/layout.ts stateVolume).
 */
import { createPrivateKey, createPublicKey } from "crypto";
import * as digitalocean from "@pulumi/digitalocean";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import * as ipaddr from "ipaddr.js";
import { LAYOUT } from "../../model/layout";
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

const ANYWHERE = ["0.0.0.0/0", "::/0"];

export function digitalOceanHost(name: string, args: HostArgs, parent: pulumi.Resource): Host {
  const { config, userData } = args;
  const target = config.host as CloudHostTarget;
  const opts = { parent };
  // Without an account SSH key DigitalOcean e-mails a root password, and it refuses to add a key the account
  // already holds (the operator's usually is). A key made for this hub alone avoids both. Nobody logs in with
  // it: cloud-init sets PermitRootLogin no, and the operator's own keys go in through user-data.
  const rootKeySeed = new random.RandomBytes(`${name}-root-key-seed`, { length: 32 }, opts);
  const rootKey = new digitalocean.SshKey(
    `${name}-root-key`,
    {
      name: `${config.hostname}-cloudpal-root`,
      publicKey: pulumi.unsecret(rootKeySeed.base64.apply((b) => ed25519PublicKeyLine(b, config.hostname))),
    },
    opts,
  );
  // DigitalOcean formats it with the label the hub's mount unit looks for (cloud-init/units.ts stateMountUnit).
  const volume = new digitalocean.Volume(
    `${name}-state-volume`,
    {
      // Volume names "must begin with a letter" (DigitalOcean's volume API); a hostname may start with a digit.
      name: `state-${config.hostname}`,
      region: target.region,
      size: 1,
      initialFilesystemType: LAYOUT.stateVolume.fsType,
      initialFilesystemLabel: LAYOUT.stateVolume.label,
      description: "CloudPal hub state",
    },
    {
      ...opts,
      // Create-before-delete, against the bridge's delete-first for an explicit `name` (digitalocean.md §0):
      // a region or hostname change would otherwise delete the old volume while the old droplet still has it
      // attached (the API answers 409 "A volume that's attached to a Droplet cannot be deleted"). This way the
      // new volume is made first, the droplet (replaced delete-first) releases the old one as it goes, and
      // the old volume is deleted at the end of the update, detached.
      deleteBeforeReplace: false,
    },
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
      sshKeys: [rootKey.id],
      // Privacy defaults: no metrics agent, no droplet agent (web console), no provider backups unless asked.
      monitoring: false,
      dropletAgent: false,
      backups: target.backups,
      // Attached in the create request, not by a VolumeAttachment: the volume is there at first boot, and no
      // attach action runs on the droplet beside the reserved IP assignments. The droplet is replaced
      // delete-before-replace, and deleting it detaches its volumes first
      // (digitalocean/droplet/resource_droplet.go detachVolumesFromDroplet), so the new one can take the volume.
      volumeIds: [volume.id],
    },
    // The bridge already asks for delete-before-replace because `name` is set explicitly
    // (pulumi/pulumi-terraform-bridge pkg/tfbridge/schema.go nameRequiresDeleteBeforeReplace); saying it here
    // keeps that true if the name ever goes (host.ts, MACHINE_OPTIONS).
    { ...opts, ...MACHINE_OPTIONS },
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
    reservedIpName(name, "ipv4", target.region),
    { region: target.region },
    { ...opts, ...reservedIpOptions(name, "ipv4") },
  );
  const ipv4Assignment = new digitalocean.ReservedIpAssignment(
    `${name}-ipv4-assignment`,
    { ipAddress: ipv4.ipAddress, dropletId },
    // One reserved IP per droplet, one droplet per reserved IP: the old assignment goes first.
    { ...opts, ...MACHINE_OPTIONS },
  );
  const ipv6 = new digitalocean.ReservedIpv6(
    reservedIpName(name, "ipv6", target.region),
    { regionSlug: target.region },
    { ...opts, ...reservedIpOptions(name, "ipv6") },
  );
  const ipv6Assignment = new digitalocean.ReservedIpv6Assignment(
    `${name}-ipv6-assignment`,
    { ip: ipv6.ip, dropletId },
    // One action at a time on the droplet: DigitalOcean refuses an action while another is pending ("Droplet
    // already has a pending event"), and only some resources cope. The IPv4 assignment waits for the droplet's
    // actions to finish before it assigns (digitalocean/reservedip/reserved_ip_actions.go waitOnDroplet) and
    // then polls its own action to completion; the IPv6 assignment neither waits nor retries
    // (digitalocean/reservedipv6/resource_reserved_ipv6_assignment.go), so it runs after the IPv4 one.
    { ...opts, ...MACHINE_OPTIONS, dependsOn: [ipv4Assignment] },
  );
  return {
    sshHost: ipv4.ipAddress,
    ipv4: ipv4.ipAddress,
    ipv6: ipv6.ip,
    // DigitalOcean routes the reserved IPv6 to the droplet but does not configure it on the droplet
    // (digitalocean/reservedipv6/resource_reserved_ipv6_assignment.go only calls the assign action): the agent
    // adds it to the hub's internet interface at every apply and boot (agent/src/public-ipv6.ts), and NAT66
    // uses it, so devices leave from the one address that survives rebuilds. The droplet's own /124 is too
    // small for per-device or per-session addresses: devices keep ULA.
    publicIpv6: ipv6.ip.apply((ip) => (ip ? { addresses: [ipaddr.IPv6.parse(ip).toString()] } : undefined)),
    ready: [droplet, firewall, ipv4Assignment, ipv6Assignment],
    machineId: droplet.id,
  };
}

/** An OpenSSH ed25519 public key line for a 32-byte seed (base64). */
export function ed25519PublicKeyLine(seedBase64: string, comment: string): string {
  const d = Buffer.from(seedBase64, "base64").toString("base64url");
  const jwk = createPublicKey(
    createPrivateKey({ key: { kty: "OKP", crv: "Ed25519", d, x: "" }, format: "jwk" }),
  ).export({ format: "jwk" });
  const field = (bytes: Buffer) => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.length);
    return Buffer.concat([length, bytes]);
  };
  const blob = Buffer.concat([
    field(Buffer.from("ssh-ed25519")),
    field(Buffer.from(String(jwk.x), "base64url")),
  ]);
  return `ssh-ed25519 ${blob.toString("base64")} ${comment}-cloudpal-root`;
}
