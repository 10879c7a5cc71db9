/**
 * The policies, called directly (no policy engine): each one passes a compliant resource of every provider
 * and reports a non-compliant one with a message naming the resource. Then every resource the real program
 * registers, per provider, passes every resource policy.
 */
import { createHash } from "crypto";
import * as pulumi from "@pulumi/pulumi";
import { installMocks, settle } from "./helpers/pulumi-mocks";
import { minimalConfig } from "./helpers/fixtures";
import { stackViolations, violations } from "./helpers/policy-args";

// Registering a resource under mocks costs tens of milliseconds (more on a busy machine); a hub is dozens.
jest.setTimeout(60_000);

const recorder = installMocks(pulumi);

import {
  firewallAttached,
  POLICIES,
  reservedIpMovable,
  sshNotWorldOpen,
  storageEncrypted,
  storageEncryptionUnavailable,
  userDataNoKeyMaterial,
} from "../policies/policies";
import { renderUserData } from "../cloud-init/render";
import { ed25519HostKey, publicKeyWithoutComment } from "../model/ssh-host-key";
import { COMBINATIONS } from "./cloud-init-helpers";
import { loadConfig } from "../components/config";
import { Hub } from "../components/hub";
import { wireguardPublicKey } from "./helpers/fixtures";

const DO_FW = "digitalocean:index/firewall:Firewall";
const LINODE_FW = "linode:index/firewall:Firewall";
const VULTR_RULE = "vultr:index/firewallRule:FirewallRule";

describe("ssh-not-world-open", () => {
  const cases: [string, string, Record<string, unknown>, Record<string, unknown>][] = [
    [
      "DigitalOcean",
      DO_FW,
      { inboundRules: [{ protocol: "tcp", portRange: "22", sourceAddresses: ["203.0.113.7/32"] }] },
      { inboundRules: [{ protocol: "tcp", portRange: "22", sourceAddresses: ["203.0.113.7/32", "::/0"] }] },
    ],
    [
      "Linode",
      LINODE_FW,
      { inbounds: [{ action: "ACCEPT", protocol: "TCP", ports: "22", ipv4s: ["203.0.113.7/32"] }] },
      { inbounds: [{ action: "ACCEPT", protocol: "TCP", ports: "22", ipv4s: ["0.0.0.0/0"] }] },
    ],
    [
      "Vultr",
      VULTR_RULE,
      { protocol: "tcp", ipType: "v4", subnet: "203.0.113.7", subnetSize: 32, port: "22" },
      { protocol: "tcp", ipType: "v4", subnet: "0.0.0.0", subnetSize: 0, port: "22" },
    ],
  ];

  it.each(cases)("%s: passes SSH from listed addresses", (_p, type, good) => {
    expect(violations(sshNotWorldOpen, { type, props: good, name: "fw" })).toEqual([]);
  });

  it.each(cases)(
    "%s: flags SSH open to the world, naming the resource and the fix",
    (_p, type, _good, bad) => {
      const [message, ...rest] = violations(sshNotWorldOpen, { type, props: bad, name: "fw" });
      expect(rest).toEqual([]);
      expect(message).toMatch(
        /^Inbound TCP \(SSH\) must not accept (0\.0\.0\.0\/0|::\/0) on port 22 \(fw\): /,
      );
      expect(message).toContain("'cloudpal:sshAllowedCidrs'");
    },
  );

  it.each(cases)(
    "%s: accepts a world-open SSH when the policy is configured to allow it",
    (_p, type, _g, bad) => {
      expect(violations(sshNotWorldOpen, { type, props: bad }, { allowWorldSsh: true })).toEqual([]);
    },
  );

  it("lets WireGuard (UDP) be open to the world", () => {
    const props = {
      inboundRules: [{ protocol: "udp", portRange: "51820", sourceAddresses: ["0.0.0.0/0", "::/0"] }],
    };
    expect(violations(sshNotWorldOpen, { type: DO_FW, props })).toEqual([]);
  });

  it("ignores Linode rules that drop traffic", () => {
    const props = { inbounds: [{ action: "DROP", protocol: "TCP", ports: "22", ipv4s: ["0.0.0.0/0"] }] };
    expect(violations(sshNotWorldOpen, { type: LINODE_FW, props })).toEqual([]);
  });
});

describe("firewall-attached", () => {
  it("passes a droplet listed in a firewall, a Linode with a FirewallDevice and a Vultr instance in a group", () => {
    expect(
      stackViolations(firewallAttached, [
        { type: "digitalocean:index/droplet:Droplet", name: "droplet", props: {} },
        { type: DO_FW, name: "fw", props: {}, propertyDependencies: { dropletIds: ["droplet"] } },
        { type: "linode:index/instance:Instance", name: "linode", props: {} },
        {
          type: "linode:index/firewallDevice:FirewallDevice",
          name: "device",
          props: {},
          propertyDependencies: { entityId: ["linode"] },
        },
        { type: "vultr:index/instance:Instance", name: "vultr", props: { firewallGroupId: "fg-1" } },
      ]),
    ).toEqual([]);
  });

  it("flags each VM without a firewall, with the provider's way to attach one", () => {
    const found = stackViolations(firewallAttached, [
      { type: "digitalocean:index/droplet:Droplet", name: "droplet", props: {} },
      { type: DO_FW, name: "fw", props: {}, propertyDependencies: { dropletIds: [] } },
      { type: "linode:index/instance:Instance", name: "linode", props: {} },
      { type: LINODE_FW, name: "lfw", props: {} },
      { type: "vultr:index/instance:Instance", name: "vultr", props: {} },
    ]);
    expect(found).toEqual([
      "A hub VM must have a firewall attached (droplet): list it in a digitalocean.Firewall's dropletIds.",
      "A hub VM must have a firewall attached (linode): attach a linode.Firewall with a linode.FirewallDevice.",
      "A hub VM must have a firewall attached (vultr): set its firewallGroupId to a vultr.FirewallGroup.",
    ]);
  });
});

describe("storage-encrypted", () => {
  it("requires Linode disk and volume encryption", () => {
    expect(
      violations(storageEncrypted, {
        type: "linode:index/instance:Instance",
        props: { diskEncryption: "enabled" },
      }),
    ).toEqual([]);
    expect(
      violations(storageEncrypted, { type: "linode:index/volume:Volume", props: { encryption: "enabled" } }),
    ).toEqual([]);
    expect(
      violations(storageEncrypted, {
        type: "linode:index/instance:Instance",
        name: "vm",
        props: { diskEncryption: "disabled" },
      }),
    ).toEqual(['Storage must be encrypted at rest (vm): set diskEncryption: "enabled".']);
    expect(
      violations(storageEncrypted, { type: "linode:index/volume:Volume", name: "vol", props: {} }),
    ).toEqual(['Storage must be encrypted at rest (vol): set encryption: "enabled".']);
  });

  it("does not ask DigitalOcean volumes for a switch they do not have (encrypted by the provider)", () => {
    expect(
      violations(storageEncrypted, { type: "digitalocean:index/volume:Volume", props: { size: 1 } }),
    ).toEqual([]);
  });

  it("says plainly, as advice, that Vultr storage is not encrypted at rest", () => {
    const found = violations(storageEncryptionUnavailable, {
      type: "vultr:index/blockStorage:BlockStorage",
      name: "st",
      props: {},
    });
    expect(found).toEqual([expect.stringContaining("which Vultr does not document (st)")]);
    expect(storageEncryptionUnavailable.enforcementLevel).toBe("advisory");
    expect(
      violations(storageEncryptionUnavailable, { type: "linode:index/volume:Volume", props: {} }),
    ).toEqual([]);
  });
});

describe("user-data-no-key-material", () => {
  const wgKey = wireguardPublicKey("leak");
  const leaks: [string, string][] = [
    [`[Interface]\nPrivateKey = ${wgKey}\n`, "a WireGuard private or preshared key"],
    [`write_files:\n  - content: "PresharedKey = ${wgKey}"`, "a WireGuard private or preshared key"],
    [`{"privateKey": "${wgKey}"}`, "a WireGuard private or preshared key"],
    ["-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n", "a PEM or OpenSSH private key"],
    ["-----BEGIN RSA PRIVATE KEY-----\nMIIE\n", "a PEM or OpenSSH private key"],
    [`export DIGITALOCEAN_TOKEN=dop_v1_${"ab12".repeat(16)}`, "a DigitalOcean token"],
    ["api_key: Zx9vQ2mN7pL4tR8sK3wB", "a token, password or API key"],
  ];
  const carriers: [string, (text: string) => Record<string, unknown>][] = [
    ["digitalocean:index/droplet:Droplet", (t) => ({ userData: t })],
    [
      "linode:index/instance:Instance",
      (t) => ({ metadatas: [{ userData: Buffer.from(t).toString("base64") }] }),
    ],
    ["vultr:index/instance:Instance", (t) => ({ userData: t })],
  ];

  describe.each(carriers)("%s", (type, carry) => {
    it.each(leaks)("flags %j as %s, without echoing it", (text, what) => {
      const found = violations(userDataNoKeyMaterial, { type, name: "vm", props: carry(text) });
      expect(found).toContain(
        `User-data must not contain key material (vm): it holds ${what}. Deliver secrets over SSH on stdin instead.`,
      );
      for (const m of found) expect(m).not.toContain(wgKey);
    });

    it("passes ordinary cloud-config with public keys only", () => {
      const text = `#cloud-config\nusers:\n  - name: admin\n    ssh_authorized_keys: [ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA admin]\nwireguard_public_key: ${wgKey}\n`;
      expect(violations(userDataNoKeyMaterial, { type, props: carry(text) })).toEqual([]);
    });
  });
});

describe("user-data-no-key-material: the hub's SSH host key", () => {
  const spec = COMBINATIONS[0]!.spec;
  const key = ed25519HostKey(Buffer.alloc(32, 3).toString("base64"), "hub-cloudpal-host");
  const other = ed25519HostKey(Buffer.alloc(32, 4).toString("base64"), "other");
  const withKey = renderUserData(spec, key);
  const check = (text: string) =>
    violations(userDataNoKeyMaterial, {
      type: "digitalocean:index/droplet:Droplet",
      name: "vm",
      props: { userData: text },
    });

  it("allows exactly the host key cloud-init/ssh.ts renders", () => {
    expect(withKey).toContain("BEGIN OPENSSH PRIVATE KEY");
    expect(check(withKey)).toEqual([]);
  });

  it("still flags a second private key, a WireGuard key or a preshared key next to it", () => {
    const wg = wireguardPublicKey("leak");
    const extras = [
      `\nbootcmd:\n  - "echo '${other.privateKey.replace(/\n/g, " ")}'"\n`,
      `\nbootcmd:\n  - "echo PrivateKey = ${wg}"\n`,
      `\nbootcmd:\n  - "echo PresharedKey = ${wg}"\n`,
    ];
    for (const extra of extras) expect(check(withKey + extra)).not.toEqual([]);
    expect(check(`${withKey}\nbootcmd:\n  - "echo PresharedKey = ${wg}"\n`)).toContain(
      "User-data must not contain key material (vm): it holds a WireGuard private or preshared key. Deliver secrets over SSH on stdin instead.",
    );
  });

  it("flags a host key whose public half does not match, another key type, or an encrypted-looking key", () => {
    const swapped = withKey.replace(
      publicKeyWithoutComment(key.publicKey),
      publicKeyWithoutComment(other.publicKey),
    );
    expect(check(swapped)).toEqual([
      "User-data may hold only the hub's ed25519 SSH host key (vm): it holds an ssh_keys host key that is not one unencrypted ed25519 key matching its ed25519_public. Deliver secrets over SSH on stdin instead.",
    ]);
    const rsa = withKey.replace("ed25519_public:", "rsa_private: x\n  ed25519_public:");
    expect(check(rsa)).toContain(
      "User-data may hold only the hub's ed25519 SSH host key (vm): it holds ssh_keys entries other than the ed25519 host key (rsa_private). Deliver secrets over SSH on stdin instead.",
    );
  });
});

describe("reserved-ip-movable", () => {
  const reserved: [string, Record<string, unknown>][] = [
    ["digitalocean:index/reservedIp:ReservedIp", { region: "fra1" }],
    ["digitalocean:index/reservedIpv6:ReservedIpv6", { regionSlug: "fra1" }],
    ["linode:index/networkingIp:NetworkingIp", { reserved: true, type: "ipv4", region: "fra1" }],
    ["vultr:index/reservedIp:ReservedIp", { ipType: "v4", region: "fra1" }],
  ];
  it.each(reserved)("%s: passes when named by region and unprotected, flags otherwise", (type, props) => {
    expect(violations(reservedIpMovable, { type, props, name: "hub-ipv4-fra1" })).toEqual([]);
    expect(violations(reservedIpMovable, { type, props, name: "hub-ipv4", protect: true })).toEqual([
      `A reserved IP must be named after its region (hub-ipv4): end its name with "-fra1", so a region move creates a new address instead of replacing this one.`,
      "A reserved IP must not be protected (hub-ipv4): the engine would stop a region move or provider switch half-way; keep it with { retainOnDelete: true } instead.",
    ]);
  });

  it("leaves a Linode address that is not reserved alone", () => {
    expect(
      violations(reservedIpMovable, {
        type: "linode:index/networkingIp:NetworkingIp",
        props: { reserved: false },
        name: "ip",
        protect: true,
      }),
    ).toEqual([]);
  });
});

describe("every policy declares a kebab-case name and a config schema", () => {
  it.each([...POLICIES.resource, ...POLICIES.stack].map((p) => [p.name, p]))("%s", (_name, policy) => {
    expect(policy.name).toMatch(/^[a-z]+(-[a-z]+)*$/);
    expect(policy.configSchema).toBeDefined();
    expect(["mandatory", "advisory"]).toContain(policy.enforcementLevel);
  });
});

describe.each(["digitalocean", "linode", "vultr"])(
  "the %s program passes every mandatory resource policy",
  (provider) => {
    it("with the options it registers (protect) and the user-data it renders", async () => {
      recorder.reset();
      const code = "// agent\n";
      new Hub(
        `policy-${provider}`,
        {
          config: loadConfig(minimalConfig(provider, { peers: [{ name: "laptop" }] })),
          sshPrivateKey: pulumi.secret(
            "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----\n",
          ),
          agentBundle: { code, sha256: createHash("sha256").update(code).digest("hex") },
        },
        { transformations: [recorder.transformation] },
      );
      await settle(recorder);
      const mandatory = POLICIES.resource.filter((p) => p.enforcementLevel === "mandatory");
      const found = recorder.registered.flatMap((r) =>
        mandatory.flatMap((p) =>
          violations(p, {
            type: r.type,
            name: r.name,
            props: r.inputs,
            protect: recorder.options.get(r.name)?.protect,
          }),
        ),
      );
      expect(found).toEqual([]);
      expect(recorder.registered.length).toBeGreaterThan(5);
    });
  },
);
