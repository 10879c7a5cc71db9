/**
 * loadConfig: every field accepted when valid (with its default when left out) and rejected when not, with
 * the exact sentence the user sees; every problem reported at once; the result frozen.
 */
import { generateKeyPairSync } from "crypto";
import * as pulumi from "@pulumi/pulumi";
import {
  checkSshPrivateKey,
  ConfigError,
  DEFAULTS,
  type HubConfig,
  loadConfig,
  loadStackConfig,
  readStackConfig,
} from "../components/config";
import { preferredHost } from "../model/addressing";
import {
  EXISTING_HOST_KEY,
  minimalConfig,
  OPERATOR_CIDR,
  sshPublicKey,
  wireguardPublicKey,
} from "./helpers/fixtures";
import { configProblems as problems } from "./helpers/config-problems";

const PHONE = wireguardPublicKey("phone");
const KEY = sshPublicKey("operator");

describe("defaults", () => {
  it.each([
    ["digitalocean", "fra1", "s-1vcpu-512mb-10gb"],
    ["linode", "eu-central", "g6-nanode-1"],
    ["vultr", "fra", "vc2-1c-1gb"],
  ])("%s: the cheapest size in Frankfurt, Debian 12, no backups", (provider, region, size) => {
    const cfg = loadConfig(minimalConfig(provider));
    expect(cfg.host).toEqual({ provider, region, size, backups: false });
    expect(cfg.image).toBe("debian-12");
  });

  it("fills every optional field in one place", () => {
    const cfg = loadConfig(minimalConfig("digitalocean"));
    expect(cfg).toEqual({
      host: { provider: "digitalocean", region: "fra1", size: "s-1vcpu-512mb-10gb", backups: false },
      image: "debian-12",
      hostname: "cloudpal-hub",
      sshPublicKeys: [KEY],
      sshAllowedCidrs: [OPERATOR_CIDR],
      allowWorldSsh: false,
      sshPort: 22,
      operatorUser: "cloudpal-admin",
      wireguardPort: 51820,
      wireguardExtraPorts: [443, 53],
      tcpPort: 443,
      ipv4Subnet: "10.77.0.0/16",
      ipv6Prefix: "fd7a:c10d:9a1::/64",
      peers: [],
      groups: [
        {
          name: "family",
          reaches: ["family"],
          internet: true,
          encryptedDns: "block",
          blocklists: [],
          allow: [],
          deny: [],
          sites: "open",
        },
      ],
      dns: {
        blocklists: DEFAULTS.dns.blocklists,
        allow: [],
        deny: [],
        upstreams: DEFAULTS.dns.upstreams,
        dnssec: true,
        queryLog: false,
      },
      firewallMode: "vpn",
      autoReboot: { enabled: true, time: "04:00" },
      persistentKeepalive: 25,
      ipv6SessionIdle: 300,
      ipv6DeviceAddresses: false,
    } satisfies HubConfig);
  });

  it("is deeply frozen", () => {
    const cfg = loadConfig(minimalConfig("linode", { peers: [{ name: "laptop" }] }));
    expect(Object.isFrozen(cfg)).toBe(true);
    expect(Object.isFrozen(cfg.peers[0])).toBe(true);
    expect(Object.isFrozen(cfg.dns.upstreams[0])).toBe(true);
    expect(() => (cfg.sshAllowedCidrs as string[]).push("0.0.0.0/0")).toThrow(TypeError);
  });
});

/** [field, valid extra config, what it yields] */
const VALID: [string, Record<string, unknown>, (c: HubConfig) => unknown, unknown][] = [
  ["region", { region: "ams3" }, (c) => (c.host as { region: string }).region, "ams3"],
  ["size", { size: "s-1vcpu-1gb" }, (c) => (c.host as { size: string }).size, "s-1vcpu-1gb"],
  ["image", { image: "ubuntu-24.04" }, (c) => c.image, "ubuntu-24.04"],
  ["backups", { backups: true }, (c) => (c.host as { backups: boolean }).backups, true],
  ["hostname", { hostname: "pal-1" }, (c) => c.hostname, "pal-1"],
  ["sshPublicKeys", { sshPublicKeys: [KEY, sshPublicKey("b")] }, (c) => c.sshPublicKeys.length, 2],
  [
    "sshAllowedCidrs",
    { sshAllowedCidrs: ["198.51.100.0/24", "2001:db8::/32"] },
    (c) => c.sshAllowedCidrs,
    ["198.51.100.0/24", "2001:db8::/32"],
  ],
  [
    "allowWorldSsh",
    { allowWorldSsh: true, sshAllowedCidrs: ["0.0.0.0/0", "::/0"] },
    (c) => c.sshAllowedCidrs,
    ["0.0.0.0/0", "::/0"],
  ],
  ["sshPort", { sshPort: 2222 }, (c) => c.sshPort, 2222],
  ["operatorUser", { operatorUser: "ops" }, (c) => c.operatorUser, "ops"],
  ["wireguardPort", { wireguardPort: 443 }, (c) => c.wireguardPort, 443],
  // The default extra ports leave out the one that is now the listen port.
  ["wireguardPort", { wireguardPort: 443 }, (c) => c.wireguardExtraPorts, [53]],
  ["wireguardExtraPorts", { wireguardExtraPorts: [8443] }, (c) => c.wireguardExtraPorts, [8443]],
  ["wireguardExtraPorts", { wireguardExtraPorts: [] }, (c) => c.wireguardExtraPorts, []],
  ["ipv4Subnet", { ipv4Subnet: "192.168.77.0/24" }, (c) => c.ipv4Subnet, "192.168.77.0/24"],
  ["ipv6Prefix", { ipv6Prefix: "fd12:3456:789a::/48" }, (c) => c.ipv6Prefix, "fd12:3456:789a::/48"],
  [
    "peers",
    { peers: [{ name: "laptop" }, { name: "phone", publicKey: PHONE, address: "10.77.0.9" }] },
    (c) => c.peers.map((p) => [p.name, p.group, p.publicKey, p.ipv4]),
    [
      ["laptop", "family", undefined, expect.stringMatching(/^10\.77\.\d+\.\d+$/)],
      ["phone", "family", PHONE, "10.77.0.9"],
    ],
  ],
  [
    "groups",
    {
      groups: { adults: { reaches: ["adults", "kids"], internet: true }, kids: { encryptedDns: "allow" } },
      peers: [{ name: "a", group: "kids" }],
    },
    (c) => c.groups,
    [
      {
        name: "adults",
        reaches: ["adults", "kids"],
        internet: true,
        encryptedDns: "block",
        blocklists: [],
        allow: [],
        deny: [],
        sites: "open",
      },
      {
        name: "kids",
        reaches: [],
        internet: false,
        encryptedDns: "allow",
        blocklists: [],
        allow: [],
        deny: [],
        sites: "open",
      },
    ],
  ],
  [
    "groups (site policies)",
    {
      groups: {
        kids: {
          internet: true,
          blocklists: ["https://lists.example.org/adult.txt"],
          allow: ["school.example"],
          sites: "allow-list",
        },
        teens: { internet: true, deny: ["games.example"], allow: ["ok.example"], sites: "deny" },
      },
    },
    (c) => c.groups.map((g) => [g.name, g.sites, g.blocklists, g.allow, g.deny]),
    [
      ["kids", "allow-list", ["https://lists.example.org/adult.txt"], ["school.example"], []],
      ["teens", "deny", [], ["ok.example"], ["games.example"]],
    ],
  ],
  [
    "dns",
    {
      dns: {
        blocklists: ["https://lists.example.org/ads.txt"],
        allow: ["ok.example.com"],
        deny: ["ads.example.com"],
        upstreams: [{ address: "2620:fe::fe", tlsName: "dns.quad9.net" }],
        dnssec: false,
        queryLog: true,
      },
    },
    (c) => c.dns,
    {
      blocklists: ["https://lists.example.org/ads.txt"],
      allow: ["ok.example.com"],
      deny: ["ads.example.com"],
      upstreams: [{ address: "2620:fe::fe", tlsName: "dns.quad9.net", port: 853 }],
      dnssec: false,
      queryLog: true,
    },
  ],
  ["firewallMode", { firewallMode: "mesh-only" }, (c) => c.firewallMode, "mesh-only"],
  ["endpointHostname", { endpointHostname: "vpn.example.com" }, (c) => c.endpointHostname, "vpn.example.com"],
  ["autoReboot", { autoReboot: { enabled: false } }, (c) => c.autoReboot, { enabled: false, time: "04:00" }],
  ["persistentKeepalive", { persistentKeepalive: 0 }, (c) => c.persistentKeepalive, 0],
];

describe("valid values", () => {
  it.each(VALID)("%s", (_field, extra, get, expected) => {
    expect(get(loadConfig(minimalConfig("digitalocean", extra)))).toEqual(expected);
  });

  it("existing: host and user become the SSH target and operator; sshPort is its sshd's port", () => {
    const cfg = loadConfig(
      minimalConfig("existing", {
        existing: { host: "home.example.net", user: "me", hostKey: EXISTING_HOST_KEY },
        sshPort: 2200,
      }),
    );
    expect(cfg.host).toEqual({
      provider: "existing",
      host: "home.example.net",
      user: "me",
      hostKey: EXISTING_HOST_KEY,
    });
    expect([cfg.sshPort, cfg.operatorUser]).toEqual([2200, "me"]);
    expect(
      problems(minimalConfig("existing", { existing: { host: "198.51.100.1", hostKey: EXISTING_HOST_KEY } })),
    ).toEqual([
      `'existing.user' is missing: set it to a user with passwordless sudo and your SSH key (not root: CloudPal turns root login off).`,
    ]);
    expect(
      problems(
        minimalConfig("existing", {
          existing: { host: "198.51.100.1", user: "root", hostKey: EXISTING_HOST_KEY },
        }),
      ),
    ).toEqual([
      `'existing.user' ("root") cannot be the operator: CloudPal turns root login over SSH off. Create a user with passwordless sudo and your SSH key, and set 'existing.user' to it.`,
    ]);
    expect(problems(minimalConfig("existing", { existing: { host: "198.51.100.1", user: "me" } }))).toEqual([
      `'existing.hostKey' is missing: set it to the server's ed25519 host key, read on its console (not over the network) with 'cat /etc/ssh/ssh_host_ed25519_key.pub'.`,
    ]);
    expect(
      problems(
        minimalConfig("existing", {
          existing: { host: "198.51.100.1", user: "me", hostKey: "ssh-rsa AAAAB3NzaC1yc2E root@server" },
        }),
      ),
    ).toEqual([
      `'existing.hostKey' ("ssh-rsa AAAAB3NzaC1yc2E root@server") is not an ed25519 public key line: paste the whole line 'cat /etc/ssh/ssh_host_ed25519_key.pub' prints on the server's console.`,
    ]);
  });
});

/** [field, invalid extra config, the exact sentence(s)] */
const INVALID: [string, Record<string, unknown>, string[]][] = [
  [
    "provider",
    { provider: "aws" },
    [
      `'provider' ("aws") is not a supported provider: use one of "digitalocean", "linode", "vultr", "existing".`,
    ],
  ],
  [
    "region",
    { region: "fra" },
    [
      `'region' ("fra") is not a DigitalOcean region: use one of nyc1, nyc2, nyc3, sfo1, sfo2, sfo3, ams2, ams3, sgp1, lon1, fra1, tor1, blr1, syd1, atl1.`,
    ],
  ],
  [
    "size",
    { size: "Big Box" },
    [
      `'size' ("Big Box") is not a size slug: use the provider's slug as its API lists it, e.g. 's-1vcpu-512mb-10gb'.`,
    ],
  ],
  [
    "image",
    { image: "debian-11" },
    [`'image' ("debian-11") is not a supported image: use "debian-12" or "ubuntu-24.04".`],
  ],
  ["backups", { backups: "yes" }, [`'backups' ("yes") must be true or false.`]],
  [
    "hostname",
    { hostname: "My_Hub" },
    [
      `'hostname' ("My_Hub") is not a valid name: use 1 to 32 lower-case letters, digits or '-', starting and ending with a letter or digit.`,
    ],
  ],
  [
    "sshPublicKeys (not a key)",
    { sshPublicKeys: ["hello"] },
    [
      `'sshPublicKeys[0]' ("hello") is not an SSH public key: paste one line of your '~/.ssh/id_ed25519.pub' (create it with 'ssh-keygen -t ed25519').`,
    ],
  ],
  [
    "sshPublicKeys (truncated)",
    { sshPublicKeys: [KEY.slice(0, 50)] },
    [
      `'sshPublicKeys[0]' (${JSON.stringify(KEY.slice(0, 50))}) is not a complete ssh-ed25519 key: copy the whole line from your '.pub' file again, e.g. "ssh-ed25519 AAAAC3... me@laptop".`,
    ],
  ],
  [
    "sshPublicKeys (a private key, not echoed)",
    { sshPublicKeys: ["-----BEGIN OPENSSH PRIVATE KEY----- b3BlbnNzaC1rZXktdjEAAAAA"] },
    [
      `'sshPublicKeys[0]' (a private key, not shown) must never be in the stack config: paste the public key ('~/.ssh/id_ed25519.pub') instead.`,
    ],
  ],
  [
    "sshPublicKeys (empty)",
    { sshPublicKeys: [] },
    [
      `'sshPublicKeys' ([]) must list at least one SSH public key: paste the line from '~/.ssh/id_ed25519.pub'.`,
    ],
  ],
  [
    "sshAllowedCidrs (world-open)",
    { sshAllowedCidrs: ["0.0.0.0/0"] },
    [
      `'sshAllowedCidrs[0]' ("0.0.0.0/0") opens SSH to the whole internet: list only the addresses you run 'pulumi up' from, or set 'allowWorldSsh' to true to accept the risk.`,
    ],
  ],
  [
    "sshAllowedCidrs (host bits)",
    { sshAllowedCidrs: ["203.0.113.7/24"] },
    [
      `'sshAllowedCidrs[0]' ("203.0.113.7/24") has host bits set: write the network address, '203.0.113.0/24'.`,
    ],
  ],
  [
    "sshAllowedCidrs (overlap)",
    { sshAllowedCidrs: ["203.0.113.0/24", "203.0.113.7/32"] },
    [
      `'sshAllowedCidrs[1]' ("203.0.113.7/32") overlaps 'sshAllowedCidrs[0]' ("203.0.113.0/24"): keep only the wider one.`,
    ],
  ],
  [
    "sshAllowedCidrs (metadata range)",
    { sshAllowedCidrs: ["169.254.169.254/32"] },
    [
      `'sshAllowedCidrs[0]' ("169.254.169.254/32") is in 169.254.0.0/16 (link-local, where clouds serve instance metadata), which no SSH client comes from: use your public address.`,
    ],
  ],
  [
    "sshAllowedCidrs (not a CIDR)",
    { sshAllowedCidrs: ["203.0.113.7"] },
    [
      `'sshAllowedCidrs[0]' ("203.0.113.7") is not a CIDR: write an address with a prefix length, e.g. '203.0.113.7/32'.`,
    ],
  ],
  ["allowWorldSsh", { allowWorldSsh: 1 }, [`'allowWorldSsh' (1) must be true or false.`]],
  ["sshPort", { sshPort: 0 }, [`'sshPort' (0) is not a port: use a number from 1 to 65535 (default 22).`]],
  [
    "operatorUser",
    { operatorUser: "root" },
    [
      `'operatorUser' ("root") is reserved for the system or for CloudPal: choose another name, e.g. "admin" (the hub refuses root logins over SSH).`,
    ],
  ],
  [
    "wireguardPort",
    { wireguardPort: "51820" },
    [`'wireguardPort' ("51820") is not a port: use a number from 1 to 65535 (default 51820).`],
  ],
  [
    "wireguardExtraPorts (not a port)",
    { wireguardExtraPorts: [443, 70000] },
    [`'wireguardExtraPorts[1]' (70000) is not a port: use a number from 1 to 65535, e.g. 443.`],
  ],
  [
    "wireguardExtraPorts (not a list)",
    { wireguardExtraPorts: 443 },
    [
      `'wireguardExtraPorts' (443) must be a list of at most 8 UDP ports, e.g. [443, 53] (the default), or [] for none.`,
    ],
  ],
  [
    "wireguardExtraPorts (the listen port, SSH's, a repeat)",
    { wireguardExtraPorts: [51820, 22, 443, 443] },
    [
      `'wireguardExtraPorts[0]' (51820) is 'wireguardPort', where WireGuard already listens: remove it from 'wireguardExtraPorts'.`,
      `'wireguardExtraPorts[1]' (22) is kept for SSH: remove it from 'wireguardExtraPorts', or use another port, e.g. 443 or 53.`,
      `'wireguardExtraPorts[3]' (443) repeats 'wireguardExtraPorts[2]': list each port once.`,
    ],
  ],
  [
    "wireguardExtraPorts (the SSH port)",
    { sshPort: 2222, wireguardExtraPorts: [2222] },
    [
      `'wireguardExtraPorts[0]' (2222) is kept for SSH: remove it from 'wireguardExtraPorts', or use another port, e.g. 443 or 53.`,
    ],
  ],
  [
    "ipv4Subnet (cloud range)",
    { ipv4Subnet: "10.244.0.0/16" },
    [
      `'ipv4Subnet' ("10.244.0.0/16") overlaps 10.244.0.0/16 (DigitalOcean's internal network): choose another range, e.g. '10.77.0.0/16'.`,
    ],
  ],
  [
    "ipv4Subnet (Docker)",
    { ipv4Subnet: "172.17.5.0/24" },
    [
      `'ipv4Subnet' ("172.17.5.0/24") overlaps 172.17.0.0/16 (Docker's default bridge): choose another range, e.g. '10.77.0.0/16'.`,
    ],
  ],
  [
    "ipv4Subnet (Linode private)",
    { ipv4Subnet: "192.168.200.0/24" },
    [
      `'ipv4Subnet' ("192.168.200.0/24") overlaps 192.168.128.0/17 (Linode's private network): choose another range, e.g. '10.77.0.0/16'.`,
    ],
  ],
  [
    "ipv4Subnet (public)",
    { ipv4Subnet: "8.8.0.0/16" },
    [
      `'ipv4Subnet' ("8.8.0.0/16") is not a private range: use a subnet of 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16, e.g. '10.77.0.0/16'.`,
    ],
  ],
  [
    "ipv4Subnet (size)",
    { ipv4Subnet: "10.0.0.0/8" },
    [
      `'ipv4Subnet' ("10.0.0.0/8") must have a prefix length from /16 to /24: a smaller network runs out of addresses, a larger one collides with more LANs; e.g. '10.77.0.0/16'.`,
      `'ipv4Subnet' ("10.0.0.0/8") overlaps 10.244.0.0/16 (DigitalOcean's internal network): choose another range, e.g. '10.77.0.0/16'.`,
      `'ipv4Subnet' ("10.0.0.0/8") overlaps 10.245.0.0/16 (DigitalOcean's internal network): choose another range, e.g. '10.77.0.0/16'.`,
    ],
  ],
  [
    "ipv6Prefix (not ULA)",
    { ipv6Prefix: "2001:db8::/64" },
    [
      `'ipv6Prefix' ("2001:db8::/64") is not a unique local (ULA) prefix: use one inside fd00::/8 (RFC 4193), e.g. 'fd7a:c10d:9a1::/64'.`,
    ],
  ],
  [
    "ipv6Prefix (host bits)",
    { ipv6Prefix: "fd7a:c10d:9a1::1/64" },
    [
      `'ipv6Prefix' ("fd7a:c10d:9a1::1/64") has host bits set: write the network address, 'fd7a:c10d:9a1::/64'.`,
    ],
  ],
  [
    "peers (public key)",
    { peers: [{ name: "laptop" }, { name: "phone" }, { name: "tv", publicKey: "abc" }] },
    [
      `'peers[2].publicKey' ("abc") is not a WireGuard public key: expected 44 base64 characters ending in '='. Generate one with 'wg genkey | wg pubkey'.`,
    ],
  ],
  [
    "peers (name)",
    { peers: [{ name: "Dad's phone" }] },
    [
      `'peers[0].name' ("Dad's phone") is not a valid name: use 1 to 32 lower-case letters, digits or '-', starting and ending with a letter or digit.`,
    ],
  ],
  [
    "peers (no name)",
    { peers: [{ group: "family" }] },
    [`'peers[0].name' is missing: give the device a name such as 'laptop'.`],
  ],
  [
    "peers (duplicate name)",
    { peers: [{ name: "laptop" }, { name: "laptop" }] },
    [`'peers[1].name' ("laptop") is already used by 'peers[0]': give every device its own name.`],
  ],
  [
    "peers (duplicate key)",
    {
      peers: [
        { name: "a", publicKey: PHONE },
        { name: "b", publicKey: PHONE },
      ],
    },
    [
      `'peers[1].publicKey' ("${PHONE}") is also 'peers[0].publicKey': each device needs its own key pair ('wg genkey | wg pubkey').`,
    ],
  ],
  [
    "peers (unknown group)",
    { peers: [{ name: "tv", group: "guests" }] },
    [`'peers[0].group' ("guests") names no group: use one of 'family', or add it under 'groups'.`],
  ],
  [
    "peers (pinned outside the subnet)",
    { peers: [{ name: "nas", address: "10.78.0.5" }] },
    [
      `'peers[0].address' ("10.78.0.5") is outside the private subnet 10.77.0.0/16: pin an unused address between 10.77.0.2 and 10.77.255.254, or remove the field to derive one from the name.`,
    ],
  ],
  [
    "peers (two pins on one address)",
    {
      peers: [
        { name: "a", address: "10.77.0.5" },
        { name: "b", address: "10.77.0.5" },
      ],
    },
    [
      `'peers[0]' ("a", pinned) and 'peers[1]' ("b", pinned) would both get 10.77.0.5: on the device you are adding, set 'address' to 10.77.0.6, a free address ('peers[1].address' if it is "b", 'peers[0].address' if it is "a"), and leave the device that already works as it is, because changing its address breaks its config.`,
    ],
  ],
  [
    "groups (name)",
    { groups: { Kids: {} } },
    [
      `'groups.Kids' ("Kids") is not a valid name: use 1 to 32 lower-case letters, digits or '-', starting and ending with a letter or digit.`,
    ],
  ],
  [
    "groups (reference)",
    { groups: { family: { reaches: ["family", "kids"] } } },
    [
      `'groups.family.reaches[1]' ("kids") names no group: use one of 'family', or add a group called 'kids'.`,
    ],
  ],
  [
    "groups (site mode)",
    { groups: { family: { internet: true, sites: "whitelist" } } },
    [
      `'groups.family.sites' ("whitelist") is not a site mode: use "open" (default: every site, the group's lists act in DNS), "deny" (the group's 'deny' sites also dropped by address) or "allow-list" (only the group's 'allow' sites).`,
    ],
  ],
  [
    "groups (allow-list without sites)",
    { groups: { family: { internet: true, sites: "allow-list" } } },
    [
      `'groups.family.sites' ("allow-list") allows no site: list the sites the group may reach in 'groups.family.allow', e.g. ['school.example'].`,
    ],
  ],
  [
    "groups (deny without sites)",
    { groups: { family: { internet: true, sites: "deny", allow: ["ok.example"] } } },
    [
      `'groups.family.sites' ("deny") denies no site: list them in 'groups.family.deny', e.g. ['games.example'].`,
    ],
  ],
  [
    "groups (site mode without internet)",
    { groups: { family: { sites: "deny", deny: ["games.example"] } } },
    [
      `'groups.family.sites' ("deny") needs 'groups.family.internet: true': a group without internet reaches no site anyway; set it, or leave 'sites' out.`,
    ],
  ],
  [
    "groups (site mode in mesh-only)",
    {
      firewallMode: "mesh-only",
      groups: { family: { internet: true, sites: "allow-list", allow: ["school.example"] } },
    },
    [
      `'groups.family.sites' ("allow-list") has no effect with 'firewallMode: mesh-only' (the hub forwards nothing to the internet): leave 'sites' out, or use 'firewallMode: vpn'.`,
    ],
  ],
  [
    "groups (allow-list with encrypted DNS allowed)",
    {
      groups: {
        family: { internet: true, sites: "allow-list", allow: ["school.example"], encryptedDns: "allow" },
      },
    },
    [
      `'groups.family.encryptedDns' ("allow") cannot go with 'sites: allow-list': the group's devices must ask the hub, which learns the allowed sites' addresses from its answers; remove 'encryptedDns' or set it to "block".`,
    ],
  ],
  [
    "groups (entries)",
    {
      groups: {
        family: {
          internet: true,
          blocklists: ["http://lists.example.org/adult.txt"],
          allow: ["Games.Example", "co.uk", "nas.pal"],
          deny: ["games.example", "*.bad.example"],
        },
      },
    },
    [
      `'groups.family.blocklists[0]' ("http://lists.example.org/adult.txt") is not an https URL: blocklists are fetched over https only, e.g. 'https://example.org/adult.txt'.`,
      `'groups.family.allow[0]' ("Games.Example") is not a domain name: write it in lower case without a scheme or path, e.g. 'example.com'.`,
      `'groups.family.deny[1]' ("*.bad.example") is not a domain name: write it in lower case without a scheme or path, e.g. 'example.com'.`,
      `'groups.family.allow[1]' ("co.uk") is a public suffix (Public Suffix List, ICANN section) shared by every domain under it: name the domain itself, e.g. ads.example.co.uk.`,
      `'groups.family.allow[2]' ("nas.pal") is in 'pal', the zone of the device names, which the filter must never touch: remove it.`,
    ],
  ],
  [
    "groups (entry in allow and deny)",
    { groups: { family: { internet: true, allow: ["games.example"], deny: ["games.example"] } } },
    [
      `'groups.family.deny[0]' ("games.example") is also 'groups.family.allow[0]': keep it in one of the two lists.`,
    ],
  ],
  [
    "dns.blocklists",
    { dns: { blocklists: ["http://lists.example.org/ads.txt"] } },
    [
      `'dns.blocklists[0]' ("http://lists.example.org/ads.txt") is not an https URL: blocklists are fetched over https only, e.g. 'https://example.org/hosts.txt'.`,
    ],
  ],
  [
    "dns.allow",
    { dns: { allow: ["https://example.com/"] } },
    [
      `'dns.allow[0]' ("https://example.com/") is not a domain name: write it in lower case without a scheme or path, e.g. 'example.com'.`,
    ],
  ],
  [
    "dns.deny (also allowed)",
    { dns: { allow: ["ads.example.com"], deny: ["ads.example.com"] } },
    [`'dns.deny[0]' ("ads.example.com") is also 'dns.allow[0]': keep it in one of the two lists.`],
  ],
  [
    "dns.upstreams (address)",
    { dns: { upstreams: [{ address: "999.1.1.1", tlsName: "dns.quad9.net" }] } },
    [
      `'dns.upstreams[0].address' ("999.1.1.1") is not an IP address: DNS-over-TLS needs the resolver's IP, e.g. '9.9.9.9'.`,
    ],
  ],
  [
    "dns.upstreams (TLS name missing)",
    { dns: { upstreams: [{ address: "9.9.9.9" }] } },
    [
      `'dns.upstreams[0].tlsName' is missing: set the name on the resolver's certificate, e.g. 'dns.quad9.net'.`,
    ],
  ],
  ["dns.dnssec", { dns: { dnssec: "on" } }, [`'dns.dnssec' ("on") must be true or false.`]],
  ["dns.queryLog", { dns: { queryLog: null } }, [`'dns.queryLog' (null) must be true or false.`]],
  [
    "firewallMode",
    { firewallMode: "open" },
    [`'firewallMode' ("open") is not a firewall mode: use "vpn" or "mesh-only".`],
  ],
  [
    "endpointHostname",
    { endpointHostname: "https://vpn.example.com" },
    [
      `'endpointHostname' ("https://vpn.example.com") is not a host name: use a DNS name you control, e.g. 'vpn.example.com'.`,
    ],
  ],
  [
    "endpointHostname (the hub's own rule)",
    { endpointHostname: "1.2.3.4.5" },
    [
      `'endpointHostname' ("1.2.3.4.5") is not an address in canonical form: write it like '203.0.113.10' (IPv4 in dotted decimal without leading zeros).`,
    ],
  ],
  [
    "autoReboot.time",
    { autoReboot: { time: "4am" } },
    [`'autoReboot.time' ("4am") is not a time: write it as HH:MM in UTC, e.g. '04:00'.`],
  ],
  [
    "persistentKeepalive",
    { persistentKeepalive: -1 },
    [`'persistentKeepalive' (-1) is not a keepalive interval: use seconds from 0 to 65535 (default 25).`],
  ],
  [
    "unknown key (typo)",
    { wireguardport: 51820 },
    [`'wireguardport' (51820) is not a known setting: did you mean 'wireguardPort'?`],
  ],
];

INVALID.push(
  [
    "peers (address not IPv4)",
    { peers: [{ name: "nas", address: "nas.local" }] },
    [
      `'peers[0].address' ("nas.local") is not an IPv4 address: write it like '10.77.0.23', or remove it to derive one from the name.`,
    ],
  ],
  [
    "dns.upstreams (port)",
    { dns: { upstreams: [{ address: "9.9.9.9", tlsName: "dns.quad9.net", port: 99999 }] } },
    [`'dns.upstreams[0].port' (99999) is not a port: DNS-over-TLS uses 853.`],
  ],
  [
    "dns.upstreams (empty)",
    { dns: { upstreams: [] } },
    [
      `'dns.upstreams' ([]) must list at least one DNS-over-TLS resolver, or be left out to use Quad9 and Cloudflare.`,
    ],
  ],
  [
    "autoReboot.enabled",
    { autoReboot: { enabled: "yes" } },
    [`'autoReboot.enabled' ("yes") must be true or false.`],
  ],
);

describe("existing server fields", () => {
  it.each([
    [
      { host: "my server", user: "admin" },
      `'existing.host' ("my server") is not a host: use the server's IP address or DNS name.`,
    ],
    [
      { host: "198.51.100.4", user: "Admin User" },
      `'existing.user' ("Admin User") is not a valid user name: start with a lower-case letter, then up to 31 lower-case letters, digits, '_' or '-'.`,
    ],
    [{ user: "admin" }, `'existing.host' is missing: set it to the server's IP address or DNS name.`],
  ])("rejects %j", (existing, message) => {
    expect(
      problems(minimalConfig("existing", { existing: { ...existing, hostKey: EXISTING_HOST_KEY } })),
    ).toEqual([message]);
  });
});

describe("invalid values: one sentence naming the field, the value and the fix", () => {
  it.each(INVALID)("%s", (_field, extra, expected) => {
    expect(problems(minimalConfig("digitalocean", extra))).toEqual(expected);
  });
});

describe("required fields", () => {
  it("names each missing one with how to fill it in", () => {
    expect(problems({})).toEqual([
      `'provider' is missing: set it to "digitalocean", "linode", "vultr", "existing".`,
      `'sshPublicKeys' is missing: paste the line from '~/.ssh/id_ed25519.pub' (create it with 'ssh-keygen -t ed25519').`,
      `'sshAllowedCidrs' is missing: list where you run 'pulumi up' from, e.g. ["203.0.113.7/32"] (find your address with 'curl -4 https://ifconfig.me'); SSH stays closed to everyone else.`,
    ]);
  });
});

describe("provider-specific fields", () => {
  it("existing: needs the server and rejects what only a cloud has", () => {
    const raw = minimalConfig("existing", { region: "fra1", operatorUser: "ops", backups: true });
    delete raw.existing;
    expect(problems(raw)).toEqual([
      `'existing' is missing: provider "existing" needs the server to use, e.g. { host: "203.0.113.7", user: "admin", hostKey: "ssh-ed25519 AAAA…" } (hostKey: the line 'cat /etc/ssh/ssh_host_ed25519_key.pub' prints on the server's console).`,
      `'backups' (true) does not apply to provider "existing": remove it (back up your own server yourself).`,
      `'region' ("fra1") does not apply to provider "existing": remove it (a server you already have has no region to choose).`,
      `'operatorUser' ("ops") does not apply to provider "existing": remove it (set 'existing.user' instead).`,
    ]);
  });

  it("a cloud provider rejects an 'existing' block", () => {
    expect(
      problems(
        minimalConfig("vultr", {
          existing: { host: "198.51.100.1", user: "admin", hostKey: EXISTING_HOST_KEY },
        }),
      ),
    ).toEqual([
      expect.stringMatching(
        /^'existing' \(\{"host":"198\.51\.100\.1","user":"admin",.*\) only applies to provider "existing": remove it, or set 'provider' to "existing"\.$/,
      ),
    ]);
  });

  it.each([
    ["linode", "fra1", "Linode (Akamai)"],
    ["vultr", "eu-central", "Vultr"],
  ])("%s checks region slugs against its own list", (provider, region, title) => {
    const [line] = problems(minimalConfig(provider, { region }));
    expect(line).toMatch(
      new RegExp(
        `^'region' \\("${region}"\\) is not a ${title.replace(/[()]/g, "\\$&")} region: use one of `,
      ),
    );
  });
});

describe("all problems at once", () => {
  it("lists every schema problem together, in one error, one line each", () => {
    let error: unknown;
    try {
      loadConfig(
        minimalConfig("digitalocean", {
          region: "mars1",
          wireguardPort: 0,
          peers: [{ name: "tv", publicKey: "abc" }],
          firewallMode: "open",
        }),
      );
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message.split("\n");
    expect(message[0]).toBe("The cloudpal stack config has 4 problems:");
    expect(message.slice(1).map((l) => l.split(" ")[3])).toEqual([
      "'region'",
      "'wireguardPort'",
      "'peers[0].publicKey'",
      "'firewallMode'",
    ]);
  });

  it("lists every cross-field problem together: overlaps, references, duplicates, allocation", () => {
    const found = problems(
      minimalConfig("linode", {
        sshAllowedCidrs: ["0.0.0.0/0"],
        ipv4Subnet: "192.168.130.0/24",
        groups: { family: { reaches: ["ghosts"] } },
        peers: [{ name: "a", group: "nobody" }, { name: "a" }],
        dns: { allow: ["x.example"], deny: ["x.example"] },
      }),
    );
    expect(found.map((l) => l.split(" ")[0])).toEqual([
      "'sshAllowedCidrs[0]'",
      "'ipv4Subnet'",
      "'groups.family.reaches[0]'",
      "'peers[0].group'",
      "'peers[1].name'",
      "'dns.deny[0]'",
    ]);
  });

  it("reports schema and cross-field problems in the same run, without echoes of a rejected field", () => {
    const found = problems(
      minimalConfig("digitalocean", {
        region: "mars1",
        sshAllowedCidrs: ["0.0.0.0/0"],
        ipv4Subnet: "172.17.0.0/16",
        groups: { Family: {} },
        peers: [{ name: "tv", group: "Family" }],
        sshport: 22,
      }),
    );
    expect(found.map((l) => l.split(" ")[0])).toEqual([
      "'region'",
      "'sshport'",
      "'peers[0].group'",
      "'groups.Family'",
      "'sshAllowedCidrs[0]'",
      "'ipv4Subnet'",
    ]);
  });

  it("judges nothing else when the provider itself is unusable", () => {
    expect(problems(minimalConfig("hetzner", { sshAllowedCidrs: ["0.0.0.0/0"] }))).toEqual([
      `'provider' ("hetzner") is not a supported provider: use one of "digitalocean", "linode", "vultr", "existing".`,
    ]);
  });

  it("reports pinned-address problems next to the others", () => {
    const found = problems(
      minimalConfig("vultr", { sshAllowedCidrs: ["::/0"], peers: [{ name: "nas", address: "10.77.0.1" }] }),
    );
    expect(found).toEqual([
      expect.stringContaining("'sshAllowedCidrs[0]' (\"::/0\") opens SSH to the whole internet"),
      `'peers[0].address' ("10.77.0.1") is the hub's own address: pin an unused address between 10.77.0.2 and 10.77.255.254, or remove the field to derive one from the name.`,
    ]);
  });
});

describe("readStackConfig", () => {
  it("turns Pulumi's flat config into one object, parsing structured values and leaving strings alone", () => {
    const raw = readStackConfig({
      "cloudpal:provider": "linode",
      "cloudpal:hostname": "123",
      "cloudpal:sshPort": "2222",
      "cloudpal:allowWorldSsh": "false",
      "cloudpal:peers": '[{"name":"laptop"}]',
      "cloudpal:sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----",
      "linode:token": "ignored",
    });
    expect(raw).toEqual({
      provider: "linode",
      hostname: "123",
      sshPort: 2222,
      allowWorldSsh: false,
      peers: [{ name: "laptop" }],
    });
  });

  it('treats the "" and {} defaults Pulumi.yaml must declare as "not set"', () => {
    expect(
      readStackConfig({ "cloudpal:region": "", "cloudpal:existing": "{}", "cloudpal:endpointHostname": "" }),
    ).toEqual({});
  });

  it("keeps unknown cloudpal keys so the schema can name them", () => {
    expect(problems({ ...minimalConfig("vultr"), ...readStackConfig({ "cloudpal:sshport": "22" }) })).toEqual(
      [`'sshport' (22) is not a known setting: did you mean 'sshPort'?`],
    );
  });
});

describe("checkSshPrivateKey (the text of the key is never shown)", () => {
  const pem = (label: string, body: string) => `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`;
  const field = (bytes: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, bytes.length]), bytes]);
  const openSsh = (cipher: string) =>
    pem(
      "OPENSSH PRIVATE KEY",
      Buffer.concat([
        Buffer.from("openssh-key-v1\0", "latin1"),
        field(Buffer.from(cipher)),
        field(Buffer.from("rest")),
      ]).toString("base64"),
    );
  const real = generateKeyPairSync("ed25519").privateKey.export({ type: "pkcs8", format: "pem" }).toString();
  const SET = "'pulumi config set --secret cloudpal:sshPrivateKey < ~/.ssh/id_ed25519'";

  it("accepts an unencrypted key in OpenSSH or PEM form", () => {
    expect(checkSshPrivateKey(real)).toEqual([]);
    expect(checkSshPrivateKey(openSsh("none"))).toEqual([]);
  });

  it.each([
    [
      "missing",
      undefined,
      `'sshPrivateKey' is missing: delivery logs in over SSH with it; set it with ${SET}.`,
    ],
    [
      "a path",
      "~/.ssh/id_ed25519",
      `'sshPrivateKey' (not shown) is not an SSH private key (a file path instead of the file's content?): set it with ${SET}.`,
    ],
    [
      "the public key",
      KEY,
      `'sshPrivateKey' (not shown) is a public key: give the private key, the same file without '.pub', with ${SET}.`,
    ],
  ])("rejects %s", (_what, value, message) => {
    expect(checkSshPrivateKey(value)).toEqual([message]);
  });

  it.each([
    ["an OpenSSH key with a passphrase", openSsh("aes256-ctr")],
    [
      "an encrypted PKCS#8 key",
      generateKeyPairSync("ed25519")
        .privateKey.export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: "pw" })
        .toString(),
    ],
  ])("rejects %s: delivery cannot type a passphrase", (_what, value) => {
    const [line] = checkSshPrivateKey(value);
    expect(line).toMatch(
      /^'sshPrivateKey' \(not shown\) is protected by a passphrase, which delivery cannot type: /,
    );
    expect(line).not.toContain(value.split("\n")[1]);
  });

  it("accepts a passphrase-protected OpenSSH key with 'sshPrivateKeyPassword', and no password without one", () => {
    expect(checkSshPrivateKey(openSsh("aes256-ctr"), "pw")).toEqual([]);
    expect(checkSshPrivateKey(openSsh("aes256-ctr"))).toEqual([
      `'sshPrivateKey' (not shown) is protected by a passphrase, which delivery cannot type: set the passphrase with 'pulumi config set --secret cloudpal:sshPrivateKeyPassword' (it asks for it), or use a key without one.`,
    ]);
    expect(checkSshPrivateKey(openSsh("none"), "pw")).toEqual([
      `'sshPrivateKeyPassword' (not shown) is set but 'sshPrivateKey' has no passphrase: remove it with 'pulumi config rm cloudpal:sshPrivateKeyPassword'.`,
    ]);
  });
});

describe("a device added whose name hashes to an existing device's address", () => {
  const existing = [{ name: "laptop" }, { name: "phone" }, { name: "nas" }];
  const subnet = DEFAULTS.ipv4Subnet;
  // A name that hashes to the phone's address (about 65,000 tries in a /16).
  const phoneHost = preferredHost("phone", subnet);
  let added = "";
  for (let i = 0; added === ""; i++)
    if (preferredHost(`tablet${i}`, subnet) === phoneHost) added = `tablet${i}`;
  const at = (host: number) => `10.77.${host >> 8}.${host & 255}`;

  it("names both devices, asks to pin the one being added, and says to leave the working one alone", () => {
    const before = loadConfig(minimalConfig("linode", { peers: existing }));
    const used = before.peers.map((p) => p.ipv4);
    expect(used).not.toContain(at(phoneHost + 1)); // so the suggestion below is the next address up
    // The new device is listed first: list order must not decide which device the message moves.
    const found = problems(minimalConfig("linode", { peers: [{ name: added }, ...existing] }));
    expect(found).toEqual([
      `'peers[0]' ("${added}", from its name) and 'peers[2]' ("phone", from its name) would both get ${at(phoneHost)}: on the device you are adding, set 'address' to ${at(phoneHost + 1)}, a free address ('peers[2].address' if it is "phone", 'peers[0].address' if it is "${added}"), and leave the device that already works as it is, because changing its address breaks its config.`,
    ]);
  });

  it("pinning the added device as told moves no other device", () => {
    const before = loadConfig(minimalConfig("linode", { peers: existing }));
    const pinned = { name: added, address: at(phoneHost + 1) };
    const after = loadConfig(
      minimalConfig("linode", { peers: [...existing.slice(0, 2), pinned, existing[2]] }),
    );
    for (const p of before.peers) {
      const now = after.peers.find((q) => q.name === p.name);
      expect([p.name, now?.ipv4, now?.ipv6]).toEqual([p.name, p.ipv4, p.ipv6]);
    }
    expect(after.peers.find((q) => q.name === added)?.ipv4).toBe(at(phoneHost + 1));
  });
});

describe("DNS upstreams the hub cannot forward to", () => {
  const fix = "use a public DNS-over-TLS resolver's IP, e.g. '9.9.9.9'.";
  it.each([
    ["10.77.0.1", "is the hub's own tunnel address, so the hub's resolver would ask itself"],
    ["fd7a:c10d:9a1::1", "is the hub's own tunnel address, so the hub's resolver would ask itself"],
    ["127.0.0.1", "is a loopback address, which on the hub is the hub itself"],
    ["127.0.0.53", "is a loopback address, which on the hub is the hub itself"],
    ["::1", "is a loopback address, which on the hub is the hub itself"],
    ["::ffff:127.0.0.1", "is a loopback address, which on the hub is the hub itself"],
    [
      "169.254.169.254",
      "is link-local (169.254.0.0/16, where 169.254.169.254 is the cloud's metadata service), not a resolver the hub can use",
    ],
    ["fe80::1", "is link-local (fe80::/10), which reaches only the hub's own network segment"],
    ["0.0.0.0", "is the unspecified address, which names no resolver"],
    ["::", "is the unspecified address, which names no resolver"],
    ["224.0.0.251", "is a multicast address, which names no single resolver"],
    ["ff02::fb", "is a multicast address, which names no single resolver"],
    ["255.255.255.255", "is a broadcast address, which names no single resolver"],
  ])("refuses %s", (address, why) => {
    const dns = {
      upstreams: [
        { address: "9.9.9.9", tlsName: "dns.quad9.net" },
        { address, tlsName: "dns.example" },
      ],
    };
    expect(problems(minimalConfig("vultr", { dns }))).toEqual([
      `'dns.upstreams[1].address' (${JSON.stringify(address)}) ${why}: ${fix}`,
    ]);
  });

  it("follows the hub's address when the tunnel subnet changes", () => {
    const dns = { upstreams: [{ address: "10.9.0.1", tlsName: "dns.example" }] };
    expect(problems(minimalConfig("vultr", { ipv4Subnet: "10.9.0.0/24", dns }))).toEqual([
      `'dns.upstreams[0].address' ("10.9.0.1") is the hub's own tunnel address, so the hub's resolver would ask itself: ${fix}`,
    ]);
    // The old hub address, another device's tunnel address, or a resolver on a private network, may all
    // run DNS-over-TLS: only the hub itself and addresses that reach no resolver are refused.
    for (const address of ["10.77.0.1", "10.9.0.7", "192.168.1.53", "2620:fe::fe"]) {
      const upstreams = [{ address, tlsName: "dns.example" }];
      expect(() =>
        loadConfig(minimalConfig("vultr", { ipv4Subnet: "10.9.0.0/24", dns: { upstreams } })),
      ).not.toThrow();
    }
  });
});

describe("weak SSH keys", () => {
  /** An ssh-rsa authorized_keys line for a fresh key of `bits` bits (RFC 4253 section 6.6 blob). */
  function rsaKey(bits: number): string {
    const jwk = generateKeyPairSync("rsa", { modulusLength: bits }).publicKey.export({ format: "jwk" });
    const mpint = (b64: string) => {
      const raw = Buffer.from(b64, "base64url");
      return raw[0] & 0x80 ? Buffer.concat([Buffer.from([0]), raw]) : raw;
    };
    const field = (b: Buffer) => Buffer.concat([Buffer.from([0, 0, b.length >> 8, b.length & 255]), b]);
    const blob = Buffer.concat([field(Buffer.from("ssh-rsa")), field(mpint(jwk.e!)), field(mpint(jwk.n!))]);
    return `ssh-rsa ${blob.toString("base64")} old@laptop`;
  }

  it("refuses an RSA key under 2048 bits, naming its size", () => {
    for (const bits of [1024, 2040]) {
      const key = rsaKey(bits);
      expect(problems(minimalConfig("linode", { sshPublicKeys: [sshPublicKey("operator"), key] }))).toEqual([
        `'sshPublicKeys[1]' (${JSON.stringify(key).slice(0, 57)}...) is a ${bits}-bit RSA key, too weak to guard the hub (at least 2048 bits): make a new key with 'ssh-keygen -t ed25519' and paste its '.pub' line instead.`,
      ]);
    }
  });

  it("accepts RSA keys of 2048 bits and more", () => {
    for (const bits of [2048, 3072])
      expect(() => loadConfig(minimalConfig("linode", { sshPublicKeys: [rsaKey(bits)] }))).not.toThrow();
  });

  it("refuses a DSA key", () => {
    const key =
      "ssh-dss AAAAB3NzaC1kc3MAAACBAP1/U4EddRIpUt9KnC7s5Of2EbdSPO9EAMMeP4C2USZpRV1AIlH7WT2NWPq/xfW6 me@old";
    expect(problems(minimalConfig("linode", { sshPublicKeys: [key] }))).toEqual([
      `'sshPublicKeys[0]' (${JSON.stringify(key).slice(0, 57)}...) is not an SSH public key: paste one line of your '~/.ssh/id_ed25519.pub' (create it with 'ssh-keygen -t ed25519').`,
    ]);
  });
});

describe("every problem at once, down to one element of a list", () => {
  it("reports a duplicate name in the same element as an unknown key (the issue's example)", () => {
    const peers = [{ name: "laptop" }, { name: "laptop", adress: "10.77.0.9" }];
    expect(problems(minimalConfig("digitalocean", { peers }))).toEqual([
      `'peers[1].adress' ("10.77.0.9") is not a known setting: did you mean 'peers[1].address'?`,
      `'peers[1].name' ("laptop") is already used by 'peers[0]': give every device its own name.`,
    ]);
  });

  it("judges every sound element and field even when a sibling is refused", () => {
    const found = problems(
      minimalConfig("digitalocean", {
        sshPublicKeys: [KEY, "not a key", KEY],
        sshAllowedCidrs: ["203.0.113.7", OPERATOR_CIDR, OPERATOR_CIDR],
        peers: [{ name: "Bad Name" }, { name: "tv", group: "kids" }, { name: "tv", publicKey: "abc" }],
        dns: {
          upstreams: [{ address: "127.0.0.1", tlsName: "dns.example", port: 0 }],
          deny: ["x.org"],
          allow: ["BAD", "x.org"],
        },
      }),
    );
    expect(found.map((l) => l.split(" ")[0])).toEqual([
      "'sshPublicKeys[1]'",
      "'sshAllowedCidrs[0]'",
      "'peers[0].name'",
      "'peers[2].publicKey'",
      "'dns.allow[0]'",
      "'dns.upstreams[0].port'",
      "'sshPublicKeys[2]'",
      "'sshAllowedCidrs[2]'",
      "'peers[1].group'",
      "'peers[2].name'",
      "'dns.upstreams[0].address'",
      "'dns.deny[0]'",
    ]);
  });

  it("allocates the sound peers and reports their collisions beside a refused one", () => {
    const found = problems(
      minimalConfig("digitalocean", {
        peers: [
          { name: "a", address: "10.77.0.5" },
          { name: "b", publicKey: "abc" },
          { name: "c", address: "10.77.0.5" },
        ],
      }),
    );
    expect(found.map((l) => l.split(" ")[0])).toEqual(["'peers[1].publicKey'", "'peers[0]'"]);
    expect(found[1]).toContain(`and 'peers[2]' ("c", pinned) would both get 10.77.0.5`);
  });
});

describe("the stack file as the program reads it (loadStackConfig, as index.ts calls it)", () => {
  const privateKey = generateKeyPairSync("ed25519")
    .privateKey.export({ type: "pkcs8", format: "pem" })
    .toString();

  /** Pulumi's flat map: `cloudpal:<key>`, structured values as JSON, as the CLI passes them. */
  function stack(extra: Record<string, string> = {}): Record<string, string> {
    const flat: Record<string, string> = { "cloudpal:sshPrivateKey": privateKey };
    for (const [k, v] of Object.entries(minimalConfig("digitalocean")))
      flat[`cloudpal:${k}`] = typeof v === "string" ? v : JSON.stringify(v);
    return { ...flat, ...extra };
  }

  function stackProblems(config: Record<string, string>, secretKeys: string[]): string[] {
    pulumi.runtime.setAllConfig(config, secretKeys);
    try {
      loadStackConfig();
    } catch (e) {
      if (e instanceof ConfigError) return [...e.problems];
      throw e;
    } finally {
      pulumi.runtime.setAllConfig({}, []);
    }
    return [];
  }

  it("accepts the SSH private key when Pulumi passes it as a secret", () => {
    expect(stackProblems(stack(), ["cloudpal:sshPrivateKey"])).toEqual([]);
  });

  it("refuses the SSH private key in plain text, without showing it", () => {
    const found = stackProblems(stack(), []);
    expect(found).toEqual([
      `'cloudpal:sshPrivateKey' (not shown) is in the stack file as plain text, where anyone who reads the file sees it: set it as a secret with 'pulumi config set --secret cloudpal:sshPrivateKey < ~/.ssh/id_ed25519' (and make a new key if the file was ever shared).`,
    ]);
    expect(found.join("\n")).not.toContain(privateKey.split("\n")[1]);
  });

  it("refuses a key in a namespace nothing reads, suggesting the one meant", () => {
    const found = stackProblems(
      stack({
        "cludpal:region": "ams3",
        "cloudpall:peers": "[]",
        "aws:region": "eu-west-1",
        "digitalocean:token": "t",
      }),
      ["cloudpal:sshPrivateKey", "digitalocean:token"],
    );
    expect(found).toEqual([
      `'cludpal:region' is read by nothing (namespace "cludpal" is not CloudPal's or a provider's): did you mean 'cloudpal:region'?`,
      `'cloudpall:peers' is read by nothing (namespace "cloudpall" is not CloudPal's or a provider's): did you mean 'cloudpal:peers'?`,
      `'aws:region' is read by nothing (namespace "aws" is not CloudPal's or a provider's): CloudPal's settings are 'cloudpal:<name>'; rename it, or remove it with 'pulumi config rm aws:region'.`,
    ]);
  });
});
