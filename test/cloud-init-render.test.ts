import { generateKeyPairSync, randomBytes } from "crypto";
import { LAYOUT } from "../model/layout";
import { privateKeyFromBytes, publicKeyFromPrivate } from "../model/keys";
import { AGENT_WRAPPER, agentUnits } from "../cloud-init/units";
import { loadConfig, readStackConfig } from "../components/config";
import { buildHubState } from "../components/state";
import { bootstrapSpec } from "../components/hub";
import { HUB_PACKAGES } from "../cloud-init/packages";
import { renderBootstrapScript, renderUserData } from "../cloud-init/render";
import { SSHD_DROP_IN, SSH_SOCKET_DROP_IN } from "../cloud-init/ssh";
import { JOURNALD_DROP_IN, SYSCTL_FILE, UNATTENDED_UPGRADES_FILE } from "../cloud-init/system";
import { FAIL_FAST } from "../cloud-init/types";
import { ed25519HostKey } from "../model/ssh-host-key";
import { COMBINATIONS, ED25519_KEY, fileContent, parseUserData, spec } from "./cloud-init-helpers";

describe("rendered user-data", () => {
  describe.each(COMBINATIONS)("$name", ({ spec: s }) => {
    const userData = renderUserData(s);
    const config = parseUserData(userData);

    it("matches the snapshot", () => {
      expect(userData).toMatchSnapshot();
    });

    it("is a cloud-config document", () => {
      expect(userData.split("\n")[0]).toBe("#cloud-config");
    });

    it("sets up the operator for key-only SSH, and nobody else", () => {
      expect(config.ssh_pwauth).toBe(false);
      expect(config.disable_root).toBe(true);
      expect(config.users.map((u) => u.name)).toEqual([s.operator.user]);
      const [operator] = config.users;
      expect(operator).toMatchObject({
        sudo: "ALL=(ALL) NOPASSWD:ALL",
        lock_passwd: true,
        shell: "/bin/bash",
        ssh_authorized_keys: [ED25519_KEY],
      });
      const sshd = fileContent(config, SSHD_DROP_IN).split("\n");
      expect(sshd).toEqual(
        expect.arrayContaining([
          `Port ${s.sshPort}`,
          "PermitRootLogin no",
          "PasswordAuthentication no",
          "KbdInteractiveAuthentication no",
          "AuthenticationMethods publickey",
        ]),
      );
      // Ubuntu 24.04's ssh.socket decides the port there; the drop-in resets and sets it.
      expect(fileContent(config, SSH_SOCKET_DROP_IN)).toContain(`ListenStream=\nListenStream=${s.sshPort}\n`);
    });

    it("opens exactly the SSH and WireGuard ports in the firewall baseline, and never flushes the ruleset", () => {
      const nft = fileContent(config, LAYOUT.nftablesConfig);
      expect(nft).toContain(`tcp dport ${s.sshPort} accept`);
      expect(nft).toContain(`udp dport ${s.wireguardPort} accept`);
      expect(nft).toMatch(/chain input \{\n\s+type filter hook input priority filter; policy drop;/);
      expect(nft).toMatch(/chain forward \{\n\s+type filter hook forward priority filter; policy drop;/);
      expect(nft).toContain(`iifname "${LAYOUT.interface}" meta l4proto { udp, tcp } th dport 53 accept`);
      expect(nft).not.toMatch(/flush ruleset/);
      // From anywhere on the internet, only these two; the others are pinned to wg0 or to link-local DHCPv6.
      const open = nft
        .split("\n")
        .filter((l) => /dport/.test(l) && !/iifname|saddr fe80::\/10/.test(l))
        .map((l) => l.trim().replace(/ comment .*/, ""));
      expect(open).toEqual([`udp dport ${s.wireguardPort} accept`, `tcp dport ${s.sshPort} accept`]);
    });

    it("configures unattended upgrades from the spec", () => {
      const apt = fileContent(config, UNATTENDED_UPGRADES_FILE);
      expect(apt).toContain(`Unattended-Upgrade::Automatic-Reboot "${s.unattendedUpgrades.autoReboot}";`);
      expect(apt).toContain(
        `Unattended-Upgrade::Automatic-Reboot-Time "${s.unattendedUpgrades.rebootTime}";`,
      );
      expect(apt).toContain(
        s.image === "debian-12" ? "label=Debian-Security" : '"${distro_id}:${distro_codename}-security";',
      );
    });

    it("keeps logs in RAM only and turns on forwarding", () => {
      expect(fileContent(config, JOURNALD_DROP_IN)).toContain("Storage=volatile\n");
      const cmds = config.runcmd.map((c) => (typeof c === "string" ? c : c.join(" ")));
      const restart = cmds.indexOf("systemctl restart systemd-journald.service");
      expect(restart).toBeGreaterThan(0);
      expect(cmds.indexOf("rm -rf --one-file-system /var/log/journal")).toBe(restart + 1);
      const sysctl = fileContent(config, SYSCTL_FILE);
      expect(sysctl).toContain("net.ipv4.ip_forward = 1\n");
      expect(sysctl).toContain("net.ipv6.conf.all.forwarding = 1\n");
    });

    it("installs the agent's wrapper and units verbatim, enables but never starts the agent", () => {
      const wrapper = config.write_files.find((f) => f.path === LAYOUT.agentBin);
      expect(wrapper).toEqual({
        path: LAYOUT.agentBin,
        content: AGENT_WRAPPER,
        permissions: "0755",
        owner: "root:root",
      });
      for (const unit of agentUnits()) expect(fileContent(config, unit.path)).toBe(unit.content);
      const cmds = config.runcmd.map((c) => (typeof c === "string" ? c : c.join(" ")));
      expect(cmds).toContain(`systemctl enable ${LAYOUT.units.agent}`);
      expect(cmds).toContain(`install -d -m 0700 -o root -g root ${LAYOUT.stateDir}`);
      expect(cmds.filter((c) => c.includes(LAYOUT.units.agent))).toEqual([
        `systemctl enable ${LAYOUT.units.agent}`,
      ]);
    });

    it("installs every package and runs its commands after them, firewall first, failing fast", () => {
      expect(config.package_update).toBe(true);
      expect(config.packages).toEqual(HUB_PACKAGES);
      expect(config.runcmd[0]).toBe(FAIL_FAST);
      expect(config.runcmd[1]).toEqual(["nft", "-f", LAYOUT.nftablesConfig]);
      expect(config.runcmd[2]).toEqual(["systemctl", "enable", "--now", "nftables.service"]);
      // Only the fixed fail-fast line is a shell string; every command is an argument vector.
      expect(config.runcmd.slice(1).every((c) => Array.isArray(c))).toBe(true);
      expect(config.locale).toBe("C.UTF-8");
      expect(config.manage_etc_hosts).toBe(true);
      expect(config.hostname).toBe(s.hostname);
      expect(config.fqdn).toBe(s.hostname);
    });
  });
});

/** A valid stack config, as `readStackConfig` sees Pulumi's flat config map. */
function stackConfig(provider: string, extra: Record<string, unknown> = {}): Record<string, string> {
  const values: Record<string, unknown> = {
    provider,
    sshPublicKeys: [ED25519_KEY],
    sshAllowedCidrs: ["203.0.113.7/32"],
    ...extra,
  };
  return Object.fromEntries(
    Object.entries(values).map(([k, v]) => [`cloudpal:${k}`, typeof v === "string" ? v : JSON.stringify(v)]),
  );
}

function userDataFor(all: Record<string, string>): string {
  return renderUserData(bootstrapSpec(loadConfig(readStackConfig(all))));
}

const wgPublicKey = (): string => publicKeyFromPrivate(privateKeyFromBytes(randomBytes(32)));

describe("stability: only BootstrapSpec fields reach the user-data", () => {
  it("renders the same bytes twice", () => {
    expect(renderUserData(spec())).toBe(renderUserData(spec()));
    expect(renderBootstrapScript(spec())).toBe(renderBootstrapScript(spec()));
  });

  it("is the same for every cloud provider given the same spec, but for the state volume's mount", () => {
    const [digitalocean, linode, vultr] = ["digitalocean", "linode", "vultr"].map((p) =>
      userDataFor(stackConfig(p)),
    );
    expect(vultr).toBe(digitalocean);
    expect(digitalocean).toContain(LAYOUT.stateVolume.mountUnit);
    // Linode keeps the keys on its encrypted disk: the same document without the mount unit.
    const spec = bootstrapSpec(loadConfig(readStackConfig(stackConfig("digitalocean"))));
    expect(linode).toBe(renderUserData({ ...spec, stateOnVolume: false }));
  });

  it("does not change when peers, groups, DNS lists, firewall mode, region or size change", () => {
    const before = userDataFor(stackConfig("digitalocean"));
    const after = userDataFor(
      stackConfig("digitalocean", {
        region: "ams3",
        size: "s-1vcpu-2gb",
        backups: true,
        sshAllowedCidrs: ["198.51.100.0/24", "2001:db8::/48"],
        ipv4Subnet: "10.99.0.0/16",
        peers: [
          { name: "laptop", publicKey: wgPublicKey(), group: "kids" },
          { name: "phone", group: "family" },
        ],
        groups: { family: { reaches: ["family", "kids"], internet: true }, kids: { internet: true } },
        dns: {
          blocklists: ["https://example.org/hosts", "https://example.net/list"],
          allow: ["example.com"],
          deny: ["ads.example"],
          queryLog: true,
        },
        firewallMode: "vpn",
        endpointHostname: "hub.example.org",
        persistentKeepalive: 15,
      }),
    );
    expect(after).toBe(before);
  });

  it("does change when a bootstrap field changes (so the comparison above can fail)", () => {
    const before = userDataFor(stackConfig("digitalocean"));
    expect(userDataFor(stackConfig("digitalocean", { sshPort: 2222 }))).not.toBe(before);
    expect(userDataFor(stackConfig("digitalocean", { autoReboot: { enabled: false } }))).not.toBe(before);
  });

  it("ignores anything extra riding along on the spec object", () => {
    const noisy = { ...spec(), peers: [{ name: "x", publicKey: wgPublicKey() }], privateKey: "secret" };
    expect(renderUserData(noisy)).toBe(renderUserData(spec()));
  });
});

describe("no key material in the user-data or the bootstrap script", () => {
  const hubPrivateKey = privateKeyFromBytes(randomBytes(32));
  const presharedKey = randomBytes(32).toString("base64");
  const apiToken = `dop_v1_${randomBytes(32).toString("hex")}`;
  const sshPrivateKey = generateKeyPairSync("ed25519")
    .privateKey.export({ format: "pem", type: "pkcs8" })
    .toString();
  const peerKey = wgPublicKey();
  const all = {
    ...stackConfig("digitalocean", { peers: [{ name: "laptop", publicKey: peerKey }] }),
    // Secrets a real stack holds beside the cloudpal settings (Pulumi keeps them encrypted).
    "cloudpal:sshPrivateKey": sshPrivateKey,
    "digitalocean:token": apiToken,
  };
  const cfg = loadConfig(readStackConfig(all));
  // The hub's private key and the preshared keys live in the state the agent receives, built from the same config.
  const state = buildHubState(
    cfg,
    hubPrivateKey,
    new Map([["laptop", { publicKey: peerKey, presharedKey }]]),
  );
  const outputs = {
    userData: renderUserData(bootstrapSpec(cfg)),
    script: renderBootstrapScript(bootstrapSpec(cfg)),
  };

  it("the surrounding config and state really hold those secrets", () => {
    expect(all["cloudpal:sshPrivateKey"]).toContain("PRIVATE KEY");
    expect(state.hub.privateKey).toBe(hubPrivateKey);
    expect(state.peers[0]?.presharedKey).toBe(presharedKey);
  });

  it.each(Object.keys(outputs) as (keyof typeof outputs)[])("%s holds none of the secrets", (which) => {
    const text = outputs[which];
    for (const secret of [
      hubPrivateKey,
      presharedKey,
      apiToken,
      peerKey,
      publicKeyFromPrivate(hubPrivateKey),
    ]) {
      expect(text).not.toContain(secret);
    }
    for (const line of sshPrivateKey.split("\n").filter((l) => l.length > 20))
      expect(text).not.toContain(line);
  });

  it.each(Object.keys(outputs) as (keyof typeof outputs)[])(
    "%s has no key-shaped strings at all",
    (which) => {
      const text = outputs[which];
      // A WireGuard key (private, public or preshared) is 32 bytes: 43 base64 characters and '='.
      expect(text.match(/[A-Za-z0-9+/]{43}=/g)).toBeNull();
      expect(text).not.toMatch(/-----BEGIN [A-Z ]*-----/);
      expect(text).not.toMatch(/PRIVATE KEY|PresharedKey|PrivateKey\s*=/i);
    },
  );

  it("the key scan does find a WireGuard key when one is present (so it can fail)", () => {
    expect(`x ${hubPrivateKey} y`.match(/[A-Za-z0-9+/]{43}=/g)).toEqual([hubPrivateKey]);
  });
});

describe("size limits", () => {
  // DigitalOcean: "user_data ... limited to 64 KiB" (docs.digitalocean.com/reference/api/digitalocean/#tag/Droplets,
  // POST /v2/droplets). Linode: metadata.user_data at most 65535 bytes before it is base64-encoded
  // (techdocs.akamai.com/linode-api/reference/post-linode-instance); we also keep the encoded form under it.
  const DIGITALOCEAN_LIMIT = 64 * 1024;
  const LINODE_LIMIT = 65535;

  // The biggest spec validation allows in practice: the longest names and ten 4096-bit RSA keys.
  const rsaJwk = generateKeyPairSync("rsa", { modulusLength: 4096 }).publicKey.export({ format: "jwk" });
  const rsaKey = (i: number): string => {
    const jwk = rsaJwk;
    const mpint = (b64url: string): Buffer => {
      const raw = Buffer.from(b64url, "base64url");
      const body = raw[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), raw]) : raw;
      const len = Buffer.alloc(4);
      len.writeUInt32BE(body.length);
      return Buffer.concat([len, body]);
    };
    const name = Buffer.from("ssh-rsa");
    const nameLen = Buffer.alloc(4);
    nameLen.writeUInt32BE(name.length);
    const blob = Buffer.concat([nameLen, name, mpint(jwk.e!), mpint(jwk.n!)]);
    return `ssh-rsa ${blob.toString("base64")} operator-key-${i}@a-rather-long-laptop-name.example.org`;
  };
  const largest = spec({
    hostname: "h".repeat(63),
    operator: { user: "u".repeat(32), sshPublicKeys: Array.from({ length: 10 }, (_, i) => rsaKey(i)) },
    sshPort: 65535,
    wireguardPort: 65535,
    // What a cloud hub's user-data also carries: the state volume's mount unit (DigitalOcean, Vultr).
    stateOnVolume: true,
  });
  // ...and the pinned SSH host key (components/hub.ts passes it to every cloud machine).
  const hostKey = ed25519HostKey(randomBytes(32).toString("base64"), "h".repeat(63));
  const render = (s: ReturnType<typeof spec>): string => renderUserData(s, hostKey);

  it.each([
    ["DigitalOcean (64 KiB)", DIGITALOCEAN_LIMIT],
    ["Linode (65535 bytes before base64)", LINODE_LIMIT],
  ])("stays under %s, even with ten RSA-4096 keys", (_name, limit) => {
    for (const s of [spec(), spec({ image: "ubuntu-24.04" }), largest]) {
      expect(Buffer.byteLength(render(s))).toBeLessThan(limit);
    }
    expect(render(largest)).toContain("ed25519_private");
    expect(Buffer.byteLength(Buffer.from(render(largest)).toString("base64"))).toBeLessThan(LINODE_LIMIT);
  });
});
