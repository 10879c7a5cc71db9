/**
 * The Hub under Pulumi's mocks, per provider: exactly which resources it registers, with which properties,
 * the firewall rules, secrets staying secret, and that a change of peers, groups or DNS changes no input of
 * the machine or its network (adding a device must never rebuild the hub).
 */
import { createHash } from "crypto";
import * as pulumi from "@pulumi/pulumi";
import { installMocks, MOCK_ADDRESSES, type Registered, settle, valueOf } from "./helpers/pulumi-mocks";
import { minimalConfig, OPERATOR_CIDR, wireguardPublicKey } from "./helpers/fixtures";

// Registering a resource under mocks costs tens of milliseconds (more on a busy machine); a hub is dozens.
jest.setTimeout(60_000);

const recorder = installMocks(pulumi);

// Imported after setMocks (the project rule: mocks before the program); these modules register nothing at import time.
import { loadConfig } from "../components/config";
import { Hub } from "../components/hub";
import { isWireGuardKey, publicKeyFromPrivate } from "../model/keys";
import { renderUserData } from "../cloud-init/render";
import { bootstrapSpec } from "../components/hub";
import { LAYOUT } from "../model/layout";
import type { HubState } from "../model/state";
import { parseHubState } from "../model/state-schema";
import { ed25519PublicOfPrivate, publicKeyWithoutComment } from "../model/ssh-host-key";
import { parse as parseYaml } from "yaml";
import { AGENT_UPLOAD_PATH, DIAL } from "../components/delivery";
import { writeAgentBundleFile } from "../components/agent-bundle-file";
import { readFileSync } from "fs";
import { hubPublicPorts } from "../model/public-ports";
import { firewallOpenings, type FirewallType } from "../simulate/rules";

/**
 * The user-data is exactly renderUserData(spec, key) for the host key it carries, and that key is one
 * well-formed ed25519 key whose public half is the `ssh_keys.ed25519_public` line. Returns that line.
 */
function expectUserDataWithHostKey(userData: string, provider: string): string {
  const keys = (parseYaml(userData) as { ssh_keys: { ed25519_private: string; ed25519_public: string } })
    .ssh_keys;
  expect(ed25519PublicOfPrivate(keys.ed25519_private)).toBe(publicKeyWithoutComment(keys.ed25519_public));
  expect(userData).toBe(
    renderUserData(bootstrapSpec(loadConfig(minimalConfig(provider))), {
      privateKey: keys.ed25519_private,
      publicKey: keys.ed25519_public,
    }),
  );
  return keys.ed25519_public;
}

const FAKE_AGENT = "// agent bundle stand-in\n";
const SSH_PRIVATE_KEY =
  "-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-real-key\n-----END OPENSSH PRIVATE KEY-----\n";

interface Run {
  hub: Hub;
  resources: Registered[];
  byType(type: string): Registered[];
  one(type: string): Registered;
}

let counter = 0;

async function run(raw: Record<string, unknown>, name = `hub${counter++}`): Promise<Run> {
  recorder.reset();
  const config = loadConfig(raw);
  const hub = new Hub(
    name,
    {
      config,
      sshPrivateKey: pulumi.secret(SSH_PRIVATE_KEY),
      agentBundle: { code: FAKE_AGENT, sha256: createHash("sha256").update(FAKE_AGENT).digest("hex") },
    },
    { transformations: [recorder.transformation] },
  );
  await valueOf(pulumi.all([hub.clientConfigs, hub.state, hub.endpoint, hub.ipv4, hub.ipv6]));
  await settle(recorder);
  const resources = [...recorder.registered];
  const byType = (type: string) => resources.filter((r) => r.type === type);
  return {
    hub,
    resources,
    byType,
    one(type: string) {
      const found = byType(type);
      if (found.length !== 1) throw new Error(`expected one ${type}, found ${found.length}`);
      return found[0];
    },
  };
}

const PEERS = {
  peers: [{ name: "laptop" }, { name: "phone", publicKey: wireguardPublicKey("phone"), group: "kids" }],
  groups: { family: { reaches: ["family", "kids"], internet: true }, kids: { reaches: ["kids"] } },
};

/** Types and counts, sorted, for exact comparison. */
function inventory(resources: Registered[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of resources) out[r.type] = (out[r.type] ?? 0) + 1;
  return Object.fromEntries(Object.entries(out).sort());
}

const COMMON = {
  "cloudpal:index:Hub": 1,
  "command:remote:Command": 3,
  // the agent bundle, as a file
  "command:remote:CopyToRemote": 1,
  // hub key, SSH host key + per peer: laptop (psk + device key + TCP-path key), phone (psk + TCP-path key only:
  // it brought its own public key)
  "random:index/randomBytes:RandomBytes": 7,
};

describe("DigitalOcean", () => {
  it("registers exactly the droplet, firewall, reserved IPv4/IPv6, state volume, keys and delivery", async () => {
    const r = await run(minimalConfig("digitalocean", PEERS));
    expect(inventory(r.resources)).toEqual({
      ...COMMON,
      // one more: the seed of the droplet's own root key
      "random:index/randomBytes:RandomBytes": COMMON["random:index/randomBytes:RandomBytes"] + 1,
      "digitalocean:index/droplet:Droplet": 1,
      "digitalocean:index/firewall:Firewall": 1,
      "digitalocean:index/reservedIp:ReservedIp": 1,
      "digitalocean:index/reservedIpAssignment:ReservedIpAssignment": 1,
      "digitalocean:index/reservedIpv6:ReservedIpv6": 1,
      "digitalocean:index/reservedIpv6Assignment:ReservedIpv6Assignment": 1,
      "digitalocean:index/sshKey:SshKey": 1,
      "digitalocean:index/volume:Volume": 1,
      // one more delivery step: mounting the state volume before the state is sent
      "command:remote:Command": COMMON["command:remote:Command"] + 1,
    });
  });

  it("attaches the state volume in the droplet's create request, formatted with the label the hub mounts", async () => {
    const r = await run(minimalConfig("digitalocean"));
    const volume = r.one("digitalocean:index/volume:Volume");
    expect(volume.inputs).toMatchObject({
      region: "fra1",
      initialFilesystemType: "ext4",
      initialFilesystemLabel: LAYOUT.stateVolume.label,
    });
    // The mocks give DigitalOcean resources numeric ids; the volume is the only one that could be listed here.
    expect(r.one("digitalocean:index/droplet:Droplet").inputs.volumeIds).toEqual([
      expect.stringMatching(/^\d+$/),
    ]);
    expect(r.byType("digitalocean:index/volumeAttachment:VolumeAttachment")).toEqual([]);
  });

  it("creates the droplet with the cheapest defaults, IPv6 and the privacy defaults", async () => {
    const r = await run(minimalConfig("digitalocean"));
    const droplet = r.one("digitalocean:index/droplet:Droplet").inputs;
    expect(droplet).toMatchObject({
      region: "fra1",
      size: "s-1vcpu-512mb-10gb",
      image: "debian-12-x64",
      ipv6: true,
      monitoring: false,
      dropletAgent: false,
      backups: false,
    });
    expectUserDataWithHostKey(String(droplet.userData), "digitalocean");
    expect(String(droplet.userData).startsWith("#cloud-config")).toBe(true);
  });

  it("gives the droplet an account key of its own, never the operator's (DigitalOcean refuses duplicates)", async () => {
    const r = await run(minimalConfig("digitalocean"));
    const key = r.one("digitalocean:index/sshKey:SshKey");
    const publicKey = String(key.inputs.publicKey);
    const operatorBlob = (minimalConfig("digitalocean").sshPublicKeys as string[])[0].split(" ")[1];
    expect(publicKey.split(" ")[1]).not.toBe(operatorBlob);
    // A well-formed OpenSSH key: the config's own SSH key check accepts it.
    expect(() => loadConfig(minimalConfig("digitalocean", { sshPublicKeys: [publicKey] }))).not.toThrow();
    expect(r.one("digitalocean:index/droplet:Droplet").inputs.sshKeys).toEqual([expect.any(String)]);
    expect(key.secretInputs).toEqual([]);
  });

  it("honours region, size, image and backups", async () => {
    const r = await run(
      minimalConfig("digitalocean", {
        region: "ams3",
        size: "s-1vcpu-1gb",
        image: "ubuntu-24.04",
        backups: true,
      }),
    );
    expect(r.one("digitalocean:index/droplet:Droplet").inputs).toMatchObject({
      region: "ams3",
      size: "s-1vcpu-1gb",
      image: "ubuntu-24-04-x64",
      backups: true,
    });
    expect(r.one("digitalocean:index/reservedIp:ReservedIp").inputs.region).toBe("ams3");
    expect(r.one("digitalocean:index/reservedIpv6:ReservedIpv6").inputs.regionSlug).toBe("ams3");
  });

  it("opens WireGuard to everyone and SSH only to the allowed CIDRs, and allows egress", async () => {
    const r = await run(minimalConfig("digitalocean", { wireguardPort: 51999, sshPort: 2222 }));
    const fw = r.one("digitalocean:index/firewall:Firewall").inputs;
    expect(fw.inboundRules).toEqual([
      { protocol: "udp", portRange: "51999", sourceAddresses: ["0.0.0.0/0", "::/0"] },
      { protocol: "udp", portRange: "443", sourceAddresses: ["0.0.0.0/0", "::/0"] },
      { protocol: "udp", portRange: "53", sourceAddresses: ["0.0.0.0/0", "::/0"] },
      { protocol: "tcp", portRange: "2222", sourceAddresses: [OPERATOR_CIDR] },
      { protocol: "tcp", portRange: "443", sourceAddresses: ["0.0.0.0/0", "::/0"] },
    ]);
    const droplet = r.resources.find((x) => x.type === "digitalocean:index/droplet:Droplet");
    expect(fw.dropletIds).toEqual([expect.any(Number)]);
    expect(droplet).toBeDefined();
    expect((fw.outboundRules as { protocol: string }[]).map((o) => o.protocol).sort()).toEqual([
      "icmp",
      "tcp",
      "udp",
    ]);
  });

  it("keeps the reserved addresses in the account (named by region, retained, never protected)", async () => {
    const r = await run(minimalConfig("digitalocean", { region: "ams3" }), "hub");
    const names = r.resources
      .filter((x) => x.type.includes("reservedIp:") || x.type.includes("reservedIpv6:"))
      .map((x) => x.name)
      .sort();
    expect(names).toEqual(["hub-ipv4-ams3", "hub-ipv6-ams3"]);
    const retained = [...recorder.options].filter(([, o]) => o.retainOnDelete).map(([n]) => n);
    expect(retained.sort()).toEqual(names);
    // protect would stop a move: the engine refuses to delete a protected resource even with retainOnDelete.
    expect([...recorder.options].filter(([, o]) => o.protect)).toEqual([]);
    // Stacks from before region naming called them hub-ipv4 / hub-ipv6: aliased, so their address stays.
    expect(names.map((n) => recorder.options.get(n)?.aliasNames)).toEqual([["hub-ipv4"], ["hub-ipv6"]]);
  });

  it("replaces the droplet and its IP assignments delete-first, and assigns IPv4 before IPv6", async () => {
    const r = await run(minimalConfig("digitalocean"));
    const byName = (type: string) => r.one(type).name;
    const droplet = byName("digitalocean:index/droplet:Droplet");
    const v4 = byName("digitalocean:index/reservedIpAssignment:ReservedIpAssignment");
    const v6 = byName("digitalocean:index/reservedIpv6Assignment:ReservedIpv6Assignment");
    for (const name of [droplet, v4, v6]) expect(recorder.options.get(name)?.deleteBeforeReplace).toBe(true);
    const v6After = await Promise.all(
      (recorder.options.get(v6)?.dependsOn ?? []).map((d) => valueOf((d as pulumi.CustomResource).urn)),
    );
    expect(v6After.some((urn) => urn.endsWith(`::${v4}`))).toBe(true);
  });

  it("reports the reserved addresses as the hub's addresses and endpoint", async () => {
    const r = await run(minimalConfig("digitalocean"));
    expect(await valueOf(r.hub.ipv4)).toBe(MOCK_ADDRESSES.digitalocean.ipv4);
    expect(await valueOf(r.hub.ipv6)).toBe(MOCK_ADDRESSES.digitalocean.ipv6);
    expect(await valueOf(r.hub.endpoint)).toBe(`${MOCK_ADDRESSES.digitalocean.ipv4}:51820`);
  });
});

describe("Linode", () => {
  it("registers exactly the instance, firewall + device, keys and delivery (no reservation by default)", async () => {
    const r = await run(minimalConfig("linode", PEERS));
    expect(inventory(r.resources)).toEqual({
      ...COMMON,
      "linode:index/firewall:Firewall": 1,
      "linode:index/firewallDevice:FirewallDevice": 1,
      "linode:index/instance:Instance": 1,
      "linode:index/ipv6Range:Ipv6Range": 1,
    });
  });

  it("routes a /64 to the instance for the devices' global addresses (linode.Ipv6Range)", async () => {
    const r = await run(
      minimalConfig("linode", {
        peers: [{ name: "laptop", publicIpv6: "session" }],
        ipv6DeviceAddresses: true,
      }),
    );
    const range = r.one("linode:index/ipv6Range:Ipv6Range");
    expect(range.inputs).toMatchObject({ prefixLength: 64, linodeId: expect.any(Number) });
    const state = parseHubState(await valueOf(r.hub.state));
    expect(state.hub.publicIpv6).toEqual({
      prefix: `${MOCK_ADDRESSES.linode.ipv6Range}/64`,
      sessionIdle: 300,
      deviceAddresses: true,
    });
    expect(state.peers[0].publicIpv6).toBe("session");
    const config = (await valueOf(r.hub.clientConfigs)).laptop;
    expect(config).toMatch(
      /^Address = 10\.77\.[0-9.]+\/32, fd7a:c10d:9a1::[0-9a-f]+\/128, 2001:db8:21::[0-9a-f]+\/128$/m,
    );
  });

  it("nat64: the state asks the hub for NAT64 and DNS64 for that device only; its config is a dual-stack one as before", async () => {
    const peers = [{ name: "laptop" }, { name: "phone", nat64: true }];
    const r = await run(minimalConfig("linode", { peers }));
    const state = parseHubState(await valueOf(r.hub.state));
    expect(state.peers.map((p) => [p.name, p.nat64])).toEqual([
      ["laptop", undefined],
      ["phone", true],
    ]);
    const plain = await run(minimalConfig("linode", { peers: [{ name: "laptop" }, { name: "phone" }] }));
    // The device's DNS is still the hub (which answers it with DNS64): nothing in its config changes but the
    // keys, which the mocks make anew for each run.
    const noKeys = (c: string) => c.replace(/^(PrivateKey|PublicKey|PresharedKey) = .*$/gm, "$1 = ...");
    const config = noKeys((await valueOf(r.hub.clientConfigs)).phone);
    expect(config).toBe(noKeys((await valueOf(plain.hub.clientConfigs)).phone));
    expect(config).toMatch(/^DNS = 10\.77\.0\.1, fd7a:c10d:9a1::1$/m);
  });

  it("encrypts the disk, disables backups and passes user-data base64-encoded", async () => {
    const r = await run(minimalConfig("linode"));
    const instance = r.one("linode:index/instance:Instance").inputs;
    expect(instance).toMatchObject({
      region: "eu-central",
      type: "g6-nanode-1",
      image: "linode/debian12",
      diskEncryption: "enabled",
      backupsEnabled: false,
    });
    expect(instance.firewallId).toBeUndefined(); // attached by FirewallDevice, so firewall changes never replace it
    const [meta] = instance.metadatas as { userData: string }[];
    expectUserDataWithHostKey(Buffer.from(meta.userData, "base64").toString("utf8"), "linode");
  });

  it("drops inbound by default and accepts WireGuard from anywhere, SSH from the allowed v4 and v6 CIDRs", async () => {
    const r = await run(minimalConfig("linode", { sshAllowedCidrs: [OPERATOR_CIDR, "2001:db8:77::/48"] }));
    const fw = r.one("linode:index/firewall:Firewall").inputs;
    expect(fw).toMatchObject({ inboundPolicy: "DROP", outboundPolicy: "ACCEPT" });
    expect(fw.inbounds).toEqual([
      {
        label: "wireguard",
        action: "ACCEPT",
        protocol: "UDP",
        ports: "51820",
        ipv4s: ["0.0.0.0/0"],
        ipv6s: ["::/0"],
      },
      ...[443, 53].map((port) => ({
        label: `wireguard-${port}`,
        action: "ACCEPT",
        protocol: "UDP",
        ports: String(port),
        ipv4s: ["0.0.0.0/0"],
        ipv6s: ["::/0"],
      })),
      {
        label: "ssh",
        action: "ACCEPT",
        protocol: "TCP",
        ports: "22",
        ipv4s: [OPERATOR_CIDR],
        ipv6s: ["2001:db8:77::/48"],
      },
      {
        label: "tcp-path",
        action: "ACCEPT",
        protocol: "TCP",
        ports: "443",
        ipv4s: ["0.0.0.0/0"],
        ipv6s: ["::/0"],
      },
    ]);
    const device = r.one("linode:index/firewallDevice:FirewallDevice").inputs;
    expect(device).toMatchObject({
      entityType: "linode",
      firewallId: expect.any(Number),
      entityId: expect.any(Number),
    });
  });

  it("without reservation, uses the instance's own IPv4 and IPv6 (without its prefix length)", async () => {
    const r = await run(minimalConfig("linode"));
    expect(r.byType("linode:index/networkingIp:NetworkingIp")).toEqual([]);
    expect(r.one("linode:index/instance:Instance").inputs.ipv4s).toBeUndefined();
    expect(await valueOf(r.hub.ipv4)).toBe("198.51.100.20");
    expect(await valueOf(r.hub.endpoint)).toBe("198.51.100.20:51820");
    expect(await valueOf(r.hub.ipv6)).toBe(MOCK_ADDRESSES.linode.ipv6);
  });

  it("with 'linodeReservedIpv4', gives the instance the reservation at creation: no assignment, no reboot", async () => {
    const r = await run(minimalConfig("linode", { linodeReservedIpv4: true, region: "nl-ams" }), "hub");
    const ip = r.one("linode:index/networkingIp:NetworkingIp");
    expect(ip.name).toBe("hub-ipv4-nl-ams");
    expect(ip.inputs).toMatchObject({ type: "ipv4", public: true, reserved: true, region: "nl-ams" });
    expect(recorder.options.get(ip.name)).toMatchObject({ retainOnDelete: true, protect: false });
    const instance = r.one("linode:index/instance:Instance");
    // The only public IPv4 of the instance: egress leaves from it. A private IP would be read back into
    // `ipv4s` (ForceNew) and replace the hub on every `pulumi up`.
    expect(instance.inputs).toMatchObject({ ipv4s: [MOCK_ADDRESSES.linode.ipv4], privateIp: false });
    expect(r.byType("linode:index/reservedIpAssignment:ReservedIpAssignment")).toEqual([]);
    expect(await valueOf(r.hub.endpoint)).toBe(`${MOCK_ADDRESSES.linode.ipv4}:51820`);
  });

  it("rebuilds delete-first (unique label, one holder of the address) and treats a region change as a rebuild", async () => {
    const r = await run(minimalConfig("linode"));
    const instance = r.one("linode:index/instance:Instance");
    expect(recorder.options.get(instance.name)).toMatchObject({
      deleteBeforeReplace: true,
      replaceOnChanges: ["region"],
    });
  });

  it("labels the firewall within Linode's 32 characters, whatever hostname the config accepts", async () => {
    const r = await run(minimalConfig("linode", { hostname: "a".repeat(29) }));
    const label = String(r.one("linode:index/firewall:Firewall").inputs.label);
    expect(label).toBe(`${"a".repeat(29)}-fw`);
    expect(label.length).toBeLessThanOrEqual(32);
    expect(String(r.one("linode:index/instance:Instance").inputs.label).length).toBeLessThanOrEqual(50);
  });
});

describe("Vultr", () => {
  it("registers exactly the instance, firewall group and rules, reserved IPv4, block storage, keys and delivery", async () => {
    const r = await run(minimalConfig("vultr", PEERS));
    expect(inventory(r.resources)).toEqual({
      ...COMMON,
      "vultr:index/blockStorage:BlockStorage": 1,
      "vultr:index/firewallGroup:FirewallGroup": 1,
      // v4 and v6 for WireGuard's port, each extra one (443, 53) and the TCP path (443), one for the SSH CIDR
      "vultr:index/firewallRule:FirewallRule": 9,
      "vultr:index/instance:Instance": 1,
      "vultr:index/reservedIp:ReservedIp": 1,
      // one more delivery step: formatting (if blank) and mounting the state volume before the state is sent
      "command:remote:Command": COMMON["command:remote:Command"] + 1,
    });
  });

  it("creates the instance with IPv6, the reserved IPv4, the firewall group and backups off", async () => {
    const r = await run(minimalConfig("vultr"));
    const instance = r.one("vultr:index/instance:Instance").inputs;
    expect(instance).toMatchObject({
      region: "fra",
      plan: "vc2-1c-1gb",
      osId: 2136,
      enableIpv6: true,
      backups: "disabled",
      reservedIpId: expect.stringContaining("ipv4"),
      firewallGroupId: expect.stringContaining("firewall"),
    });
    expectUserDataWithHostKey(String(instance.userData), "vultr");
    const ip = r.one("vultr:index/reservedIp:ReservedIp");
    expect(ip.inputs).toMatchObject({ ipType: "v4", region: "fra" });
    expect(ip.name.endsWith("-ipv4-fra")).toBe(true);
    expect(recorder.options.get(ip.name)).toMatchObject({ retainOnDelete: true, protect: false });
    expect(instance.backupsSchedule).toBeUndefined();
    expect(r.one("vultr:index/blockStorage:BlockStorage").inputs).toMatchObject({
      region: "fra",
      live: true,
      // `high_perf` does not exist in fra (Vultr /v2/regions options).
      blockType: "storage_opt",
      attachedToInstance: expect.stringContaining(r.one("vultr:index/instance:Instance").name),
    });
  });

  it("replaces the instance delete-first, so the new one can take the reserved IP the old one held", async () => {
    const r = await run(minimalConfig("vultr"));
    expect(recorder.options.get(r.one("vultr:index/instance:Instance").name)?.deleteBeforeReplace).toBe(true);
  });

  it("gives enabled backups the schedule the provider requires", async () => {
    const r = await run(minimalConfig("vultr", { backups: true }));
    expect(r.one("vultr:index/instance:Instance").inputs).toMatchObject({
      backups: "enabled",
      backupsSchedule: { type: "daily", hour: 3 },
    });
  });

  it("writes one v4 and one v6 WireGuard rule and one SSH rule per allowed CIDR", async () => {
    const r = await run(minimalConfig("vultr", { sshAllowedCidrs: [OPERATOR_CIDR, "2001:db8:77::/48"] }));
    const rules = r.byType("vultr:index/firewallRule:FirewallRule").map((x) => {
      const { protocol, ipType, subnet, subnetSize, port } = x.inputs;
      return { protocol, ipType, subnet, subnetSize, port };
    });
    expect(rules).toEqual([
      { protocol: "udp", ipType: "v4", subnet: "0.0.0.0", subnetSize: 0, port: "51820" },
      { protocol: "udp", ipType: "v6", subnet: "::", subnetSize: 0, port: "51820" },
      { protocol: "udp", ipType: "v4", subnet: "0.0.0.0", subnetSize: 0, port: "443" },
      { protocol: "udp", ipType: "v6", subnet: "::", subnetSize: 0, port: "443" },
      { protocol: "udp", ipType: "v4", subnet: "0.0.0.0", subnetSize: 0, port: "53" },
      { protocol: "udp", ipType: "v6", subnet: "::", subnetSize: 0, port: "53" },
      { protocol: "tcp", ipType: "v4", subnet: "203.0.113.7", subnetSize: 32, port: "22" },
      { protocol: "tcp", ipType: "v6", subnet: "2001:db8:77::", subnetSize: 48, port: "22" },
      { protocol: "tcp", ipType: "v4", subnet: "0.0.0.0", subnetSize: 0, port: "443" },
      { protocol: "tcp", ipType: "v6", subnet: "::", subnetSize: 0, port: "443" },
    ]);
  });
});

describe("provider firewalls open exactly the hub's public ports (model/public-ports.ts)", () => {
  const FIREWALL: Record<string, FirewallType> = {
    digitalocean: "digitalocean:index/firewall:Firewall",
    linode: "linode:index/firewall:Firewall",
    vultr: "vultr:index/firewallRule:FirewallRule",
  };
  /** What the public ports say should be open, in firewallOpenings' words. */
  function expected(config: ReturnType<typeof loadConfig>): string[] {
    return hubPublicPorts(config)
      .flatMap((p) =>
        (p.from === "ssh" ? config.sshAllowedCidrs : ["0.0.0.0/0", "::/0"]).map(
          (c) => `${p.protocol}/${p.port} from ${c}`,
        ),
      )
      .sort();
  }
  const CASES: [string, Record<string, unknown>][] = [
    ["the defaults (extra ports 443 and 53)", {}],
    ["no extra ports", { wireguardExtraPorts: [] }],
    [
      "other ports and v6 SSH",
      {
        wireguardPort: 51999,
        sshPort: 2222,
        wireguardExtraPorts: [443, 8443, 53],
        sshAllowedCidrs: [OPERATOR_CIDR, "2001:db8:77::/48"],
      },
    ],
  ];
  it.each(Object.keys(FIREWALL).flatMap((provider) => CASES.map((c) => [provider, ...c] as const)))(
    "%s: %s",
    async (provider, _what, extra) => {
      const raw = minimalConfig(provider, extra);
      const r = await run(raw);
      const opened = firewallOpenings(FIREWALL[provider], r.byType(FIREWALL[provider]));
      expect(opened).toEqual(expected(loadConfig(raw)));
      expect(opened.some((o) => o.startsWith("udp/443 "))).toBe(
        (extra.wireguardExtraPorts as number[] | undefined)?.includes(443) ?? true,
      );
    },
  );

  it("the reading fails on what a provider refuses, so a wrong firewall fails", () => {
    const rule = (r: Record<string, unknown>) => [{ inputs: { inboundRules: [r] } }];
    const DO = FIREWALL.digitalocean;
    expect(
      firewallOpenings(DO, rule({ protocol: "udp", portRange: "443", sourceAddresses: ["::/0"] })),
    ).toEqual(["udp/443 from ::/0"]);
    // DigitalOcean takes one port or one range, not a list; protocols are lower case.
    expect(() =>
      firewallOpenings(DO, rule({ protocol: "udp", portRange: "443,53", sourceAddresses: [] })),
    ).toThrow(/not what the provider accepts/);
    expect(() =>
      firewallOpenings(DO, rule({ protocol: "UDP", portRange: "443", sourceAddresses: [] })),
    ).toThrow(/protocol "UDP"/);
    // Vultr ranges use ':'; Linode labels are 3 to 32 characters and a firewall has at most 25 rules.
    expect(() =>
      firewallOpenings(FIREWALL.vultr, [
        { inputs: { protocol: "udp", ipType: "v4", subnet: "0.0.0.0", subnetSize: 0, port: "1-2" } },
      ]),
    ).toThrow(/not what the provider accepts/);
    const linode = (n: number, label = "wireguard") => [
      {
        inputs: {
          inbounds: Array.from({ length: n }, () => ({
            label,
            action: "ACCEPT",
            protocol: "UDP",
            ports: "443",
          })),
        },
      },
    ];
    expect(() => firewallOpenings(FIREWALL.linode, linode(1, "wg"))).toThrow(/3 to 32/);
    expect(() => firewallOpenings(FIREWALL.linode, linode(26))).toThrow(/26 rules/);
  });
});

describe("existing server", () => {
  it("creates no cloud resource: keys and delivery only, with the bootstrap over SSH first", async () => {
    const r = await run(minimalConfig("existing", PEERS));
    // No SSH host key seed: the server keeps its own key, pinned from 'existing.hostKey'.
    expect(inventory(r.resources)).toEqual({
      ...COMMON,
      "command:remote:Command": 4,
      "random:index/randomBytes:RandomBytes": 6,
    });
    const commands = r.byType("command:remote:Command");
    expect(commands[0].inputs.connection).toMatchObject({ host: "198.51.100.44", port: 22, user: "admin" });
    const bootstrap = commands.find((c) => c.name.endsWith("-bootstrap"));
    expect(String(bootstrap?.inputs.stdin)).toContain("#!/");
  });

  it("uses the host as endpoint and IPv4 when it is an address", async () => {
    const r = await run(minimalConfig("existing"));
    expect(await valueOf(r.hub.endpoint)).toBe("198.51.100.44:51820");
    expect(await valueOf(r.hub.ipv4)).toBe("198.51.100.44");
    expect(await valueOf(r.hub.ipv6)).toBeUndefined();
  });
});

describe.each(["digitalocean", "linode", "vultr"])(
  "%s: adding a device never rebuilds the hub",
  (provider) => {
    /** Inputs of every resource that is the machine or its network: everything but keys and delivery. */
    function machineInputs(r: Run): Record<string, unknown> {
      return Object.fromEntries(
        r.resources
          .filter((x) => !x.type.startsWith("random:") && !x.type.startsWith("command:"))
          .map((x) => [x.name, x.inputs]),
      );
    }

    it("changes no input of the VM, firewall, addresses or storage when peers, groups and DNS change", async () => {
      const before = await run(minimalConfig(provider, PEERS), "hub");
      const after = await run(
        minimalConfig(provider, {
          peers: [...PEERS.peers, { name: "tablet", group: "kids" }, { name: "desk", address: "10.77.3.3" }],
          groups: { ...PEERS.groups, family: { reaches: ["family"], internet: false } },
          dns: { deny: ["ads.example.com"], blocklists: [], dnssec: false, queryLog: true },
          firewallMode: "mesh-only",
          persistentKeepalive: 0,
        }),
        "hub",
      );
      expect(machineInputs(after)).toEqual(machineInputs(before));
      // ...while the desired state the agent receives did change.
      expect(await valueOf(after.hub.state)).not.toEqual(await valueOf(before.hub.state));
    });

    it("changes only the firewall and the agent's state when the extra WireGuard ports change, never the VM", async () => {
      const before = await run(minimalConfig(provider, PEERS), "hub");
      const after = await run(minimalConfig(provider, { ...PEERS, wireguardExtraPorts: [8443] }), "hub");
      /** Everything machineInputs covers except the provider firewall's own resources. */
      const notFirewall = (r: Run) =>
        Object.fromEntries(Object.entries(machineInputs(r)).filter(([name]) => !/-firewall/.test(name)));
      expect(notFirewall(after)).toEqual(notFirewall(before));
      expect(parseHubState(await valueOf(after.hub.state)).hub.wireguardExtraPorts).toEqual([8443]);
    });
  },
);

describe.each(["digitalocean", "linode", "vultr", "existing"])(
  "%s: the state sent to the agent",
  (provider) => {
    it("passes the agent's own validation, with every peer, group and DNS setting from the config", async () => {
      const r = await run(
        minimalConfig(provider, {
          ...PEERS,
          dns: { deny: ["ads.example.com"], allow: ["ok.example.com"], queryLog: true },
          firewallMode: "mesh-only",
        }),
      );
      const state = parseHubState(await valueOf(r.hub.state));
      expect(state.peers.map((p) => [p.name, p.group])).toEqual([
        ["laptop", "family"],
        ["phone", "kids"],
      ]);
      expect(state.groups.map((g) => g.name)).toEqual(["family", "kids"]);
      expect(state.dns).toMatchObject({
        deny: ["ads.example.com"],
        allow: ["ok.example.com"],
        queryLog: true,
      });
      expect(state.mode).toBe("mesh-only");
      expect(state.hub).toMatchObject({ listenPort: 51820, sshPort: 22, sshAllowedCidrs: [OPERATOR_CIDR] });
    });
  },
);

describe("keys, state and client configs", () => {
  it("derives the hub key from random bytes and keeps private material secret", async () => {
    const r = await run(minimalConfig("digitalocean", PEERS));
    const state = JSON.parse(await valueOf(r.hub.state)) as HubState;
    expect(isWireGuardKey(state.hub.privateKey)).toBe(true);
    expect(await valueOf(r.hub.hubPublicKey)).toBe(publicKeyFromPrivate(state.hub.privateKey));
    expect(await pulumi.isSecret(r.hub.state)).toBe(true);
    expect(await pulumi.isSecret(r.hub.clientConfigs)).toBe(true);
    expect(await pulumi.isSecret(r.hub.hubPublicKey)).toBe(false);
  });

  it("sends the state only on stdin of the apply step, as a secret, with no secret in any command line", async () => {
    const r = await run(minimalConfig("digitalocean", PEERS));
    const stateJson = await valueOf(r.hub.state);
    const state = JSON.parse(stateJson) as HubState;
    const commands = r.byType("command:remote:Command");
    const apply = commands.find((c) => c.inputs.stdin === stateJson);
    expect(apply).toBeDefined();
    expect(apply?.secretInputs).toContain("stdin");
    const secrets = [state.hub.privateKey, ...state.peers.map((p) => p.presharedKey as string)];
    for (const c of commands) {
      for (const s of secrets) {
        expect(String(c.inputs.create)).not.toContain(s);
        expect(JSON.stringify(c.inputs.triggers)).not.toContain(s);
      }
      expect(c.inputs.connection).toMatchObject({
        host: MOCK_ADDRESSES.digitalocean.ipv4,
        user: "cloudpal-admin",
        port: 22,
        privateKey: SSH_PRIVATE_KEY,
      });
    }
    for (const r2 of r.resources.filter((x) => !x.type.startsWith("command:"))) {
      for (const s of secrets) expect(JSON.stringify(r2.inputs)).not.toContain(s);
    }
  });

  it("chains the delivery steps after the machine is ready, in order", async () => {
    const r = await run(minimalConfig("linode"));
    // The Commands and the bundle's CopyToRemote, in registration order.
    const names = r.resources
      .filter((x) => x.type === "command:remote:Command" || x.type === "command:remote:CopyToRemote")
      .map((c) => c.name);
    const deps = names.map((n) => recorder.options.get(n)?.dependsOn ?? []);
    expect(deps[0].length).toBeGreaterThan(0);
    for (let i = 1; i < names.length; i++) {
      const previousUrn = await valueOf((deps[i][0] as pulumi.CustomResource).urn);
      expect(previousUrn.endsWith(names[i - 1])).toBe(true);
    }
  });

  it("re-runs a step when the agent bundle changes only where the step uses or watches it", async () => {
    const r = await run(minimalConfig("vultr"));
    const commands = r.byType("command:remote:Command");
    const agentHash = createHash("sha256").update(FAKE_AGENT).digest("hex");
    const watching = commands
      .filter((c) => (c.inputs.triggers as unknown[]).includes(agentHash))
      .map((c) => c.name);
    expect(watching.map((n) => n.replace(/^hub\d+-/, ""))).toEqual(["agent-bundle", "state"]);
    // The machine id is in every step's triggers: a replaced VM gets the agent and state again.
    for (const c of commands)
      expect((c.inputs.triggers as unknown[])[0]).toEqual(expect.stringContaining("instance"));
  });

  it("gives each device a client config with its addresses, the hub key, the endpoint and its routes", async () => {
    const r = await run(minimalConfig("digitalocean", { ...PEERS, endpointHostname: "vpn.example.com" }));
    const configs = await valueOf(r.hub.clientConfigs);
    const state = JSON.parse(await valueOf(r.hub.state)) as HubState;
    const hubKey = await valueOf(r.hub.hubPublicKey);
    expect(Object.keys(configs).sort()).toEqual(["laptop", "phone"]);
    const laptop = state.peers.find((p) => p.name === "laptop");
    expect(configs.laptop).toContain(`Address = ${laptop?.ipv4}/32, ${laptop?.ipv6}/128`);
    expect(configs.laptop).toContain(`PublicKey = ${hubKey}`);
    expect(configs.laptop).toContain("Endpoint = vpn.example.com:51820");
    expect(configs.laptop).toContain("AllowedIPs = 0.0.0.0/0, ::/0");
    expect(configs.laptop).toContain(`PresharedKey = ${laptop?.presharedKey}`);
    // The laptop's key pair was made here: its private key is in its config and matches the state's public key.
    const privateKey = /PrivateKey = (\S+)/.exec(configs.laptop)?.[1] ?? "";
    expect(publicKeyFromPrivate(privateKey)).toBe(laptop?.publicKey);
    // The phone brought its own key: its private key never existed here.
    expect(configs.phone).toContain("<this device's private key");
    expect(configs.phone).toContain("AllowedIPs = 10.77.0.0/16, fd7a:c10d:9a1::/64");
    expect(state.peers.find((p) => p.name === "phone")?.publicKey).toBe(wireguardPublicKey("phone"));
  });

  it("names per-device key resources by device name, so reordering devices recreates nothing", async () => {
    const a = await run(minimalConfig("digitalocean", PEERS), "same");
    const b = await run(
      minimalConfig("digitalocean", { ...PEERS, peers: [...PEERS.peers].reverse() }),
      "same",
    );
    const names = (x: Run) =>
      x
        .byType("random:index/randomBytes:RandomBytes")
        .map((y) => y.name)
        .sort();
    expect(names(b)).toEqual(names(a));
    expect(names(a)).toEqual([
      "same-peer-laptop-key",
      "same-peer-laptop-psk",
      "same-peer-laptop-tcp",
      "same-peer-phone-psk",
      "same-peer-phone-tcp",
      "same-root-key-seed",
      "same-ssh-host-key",
      "same-wireguard-key",
    ]);
  });
});

describe("delivery trust and connection options", () => {
  const deliveryResources = (r: Run) =>
    r.resources.filter(
      (x) => x.type === "command:remote:Command" || x.type === "command:remote:CopyToRemote",
    );

  it.each(["digitalocean", "linode", "vultr"])(
    "%s: every connection pins the host key that the user-data installs",
    async (provider) => {
      const r = await run(minimalConfig(provider, PEERS));
      const machine = r.resources.find(
        (x) => x.inputs.userData !== undefined || x.inputs.metadatas !== undefined,
      );
      const text =
        provider === "linode"
          ? Buffer.from(
              (machine?.inputs.metadatas as { userData: string }[])[0].userData,
              "base64",
            ).toString()
          : String(machine?.inputs.userData);
      const publicLine = expectUserDataWithHostKey(text, provider);
      expect(await valueOf(r.hub.sshHostKey)).toBe(publicLine);
      // The private key is in the user-data (a secret input) and in no other resource's inputs.
      const privateKey = (parseYaml(text) as { ssh_keys: { ed25519_private: string } }).ssh_keys
        .ed25519_private;
      expect(machine?.secretInputs).toContain(provider === "linode" ? "metadatas" : "userData");
      for (const x of r.resources.filter((y) => y !== machine))
        expect(JSON.stringify(x.inputs)).not.toContain(privateKey.split("\n")[2]);
      const delivery = deliveryResources(r);
      expect(delivery.length).toBeGreaterThanOrEqual(4);
      for (const c of delivery) expect(c.inputs.connection).toMatchObject({ hostKey: publicLine });
    },
  );

  it("pins the configured key on an existing server, which gets no user-data and no host key seed", async () => {
    const r = await run(minimalConfig("existing"));
    const configured = loadConfig(minimalConfig("existing")).host as { hostKey: string };
    for (const c of deliveryResources(r))
      expect(c.inputs.connection).toMatchObject({ hostKey: configured.hostKey });
    expect(r.resources.some((x) => x.name.endsWith("-ssh-host-key"))).toBe(false);
  });

  it("exports a known_hosts line, bracketed with the port when it is not 22", async () => {
    const r = await run(minimalConfig("vultr", { sshPort: 2222 }));
    const key = publicKeyWithoutComment(await valueOf(r.hub.sshHostKey));
    expect(await valueOf(r.hub.knownHosts)).toBe(`[${MOCK_ADDRESSES.vultr.ipv4}]:2222 ${key}`);
    const r22 = await run(minimalConfig("vultr"));
    expect(await valueOf(r22.hub.knownHosts)).toBe(
      `${MOCK_ADDRESSES.vultr.ipv4} ${publicKeyWithoutComment(await valueOf(r22.hub.sshHostKey))}`,
    );
  });

  it("dials the first step for a first boot and the rest briefly; logging off, no previous output in env", async () => {
    const r = await run(minimalConfig("digitalocean", PEERS));
    const commands = r.byType("command:remote:Command");
    commands.forEach((c, i) => {
      expect(c.inputs.connection).toMatchObject({
        perDialTimeout: DIAL.perDialTimeoutSeconds,
        dialErrorLimit: i === 0 ? DIAL.firstBootDialErrorLimit : DIAL.dialErrorLimit,
      });
      expect(c.inputs.logging).toBe("none");
      expect(c.inputs.addPreviousOutputInEnv).toBe(false);
    });
    const existing = await run(minimalConfig("existing"));
    for (const c of existing.byType("command:remote:Command"))
      expect(c.inputs.connection).toMatchObject({ dialErrorLimit: DIAL.dialErrorLimit });
  });

  it("sends the agent bundle as a FileAsset (path and hash in state), never as a Command's stdin", async () => {
    const r = await run(minimalConfig("linode"));
    for (const c of r.byType("command:remote:Command"))
      expect(String(c.inputs.stdin ?? "")).not.toContain(FAKE_AGENT);
    const copy = r.one("command:remote:CopyToRemote");
    // A FileAsset (recorded as the asset marker and a path; state keeps path and hash), not a StringAsset.
    const source = copy.inputs.source as { __pulumiAsset?: boolean; path?: unknown; text?: unknown };
    expect(source.__pulumiAsset).toBe(true);
    expect(source).toHaveProperty("path");
    expect(source.text).toBeUndefined();
    // The file it names holds exactly the bundle (written under build/agent, named by its hash).
    const file = writeAgentBundleFile({
      code: FAKE_AGENT,
      sha256: createHash("sha256").update(FAKE_AGENT).digest("hex"),
    });
    expect(file).toMatch(/^build\/agent\/cloudpal-agent-[0-9a-f]{16}\.js$/);
    expect(readFileSync(file, "utf8")).toBe(FAKE_AGENT);
    expect(copy.inputs.remotePath).toBe(AGENT_UPLOAD_PATH);
    // The install step runs after the copy, which runs after the cloud-init wait.
    const install = r.byType("command:remote:Command").find((c) => c.name.endsWith("-agent-bundle"));
    const dep = recorder.options.get(String(install?.name))?.dependsOn as pulumi.Resource[];
    expect(await valueOf((dep[0] as pulumi.CustomResource).urn)).toMatch(/-agent-bundle-upload$/);
  });

  it("passes a key's passphrase as a secret privateKeyPassword only when one is given", async () => {
    recorder.reset();
    new Hub(
      "pw",
      {
        config: loadConfig(minimalConfig("vultr")),
        sshPrivateKey: pulumi.secret(SSH_PRIVATE_KEY),
        sshPrivateKeyPassword: pulumi.secret("correct horse"),
        agentBundle: { code: FAKE_AGENT, sha256: createHash("sha256").update(FAKE_AGENT).digest("hex") },
      },
      { transformations: [recorder.transformation] },
    );
    await settle(recorder);
    const commands = recorder.registered.filter((x) => x.type === "command:remote:Command");
    expect(commands.length).toBeGreaterThan(0);
    for (const c of commands) {
      expect(c.inputs.connection).toMatchObject({ privateKeyPassword: "correct horse" });
      expect(String(c.inputs.create)).not.toContain("correct horse");
    }
    const r = await run(minimalConfig("vultr"));
    for (const c of r.byType("command:remote:Command"))
      expect(c.inputs.connection).not.toHaveProperty("privateKeyPassword");
  });
});
