/** The pure pieces of the Hub: the desired state it builds, the endpoint it advertises, the bootstrap spec. */
import { parseHubState } from "../model/state-schema";
import { loadConfig } from "../components/config";
import { bootstrapSpec, endpointOf } from "../components/hub";
import { buildHubState } from "../components/state";
import { minimalConfig, wireguardPublicKey } from "./helpers/fixtures";

const HUB_KEY = "YNqHwpcAmVCJT0oVmzXHQyQxPLGx/JIzqK1XdHIvVFo=";

describe("buildHubState", () => {
  const config = loadConfig(
    minimalConfig("linode", {
      peers: [{ name: "laptop" }, { name: "nas", address: "10.77.0.10", group: "servers" }],
      groups: { family: { reaches: ["family", "servers"], internet: true }, servers: {} },
      sshPort: 2222,
      wireguardPort: 443,
    }),
  );
  const keys = new Map([
    [
      "laptop",
      {
        publicKey: wireguardPublicKey("laptop"),
        presharedKey: wireguardPublicKey("psk1"),
        tcpKey: Buffer.alloc(32, 7).toString("base64url"),
      },
    ],
    ["nas", { publicKey: wireguardPublicKey("nas"), presharedKey: wireguardPublicKey("psk2") }],
  ]);

  it("carries the config, the allocated addresses and the keys, and passes the agent's schema", () => {
    const state = parseHubState(JSON.stringify(buildHubState(config, HUB_KEY, keys)));
    expect(state.hub).toEqual({
      privateKey: HUB_KEY,
      listenPort: 443,
      // the default extra ports without 443, which is this stack's listen port
      wireguardExtraPorts: [53],
      // the TCP path (on by default) is TCP: WireGuard's UDP 443 does not take its port
      tcpPort: 443,
      sshPort: 2222,
      sshAllowedCidrs: ["203.0.113.7/32"],
      ipv4Subnet: "10.77.0.0/16",
      ipv6Prefix: "fd7a:c10d:9a1::/64",
      persistentKeepalive: 25,
    });
    expect(state.peers.find((p) => p.name === "nas")).toEqual({
      name: "nas",
      publicKey: wireguardPublicKey("nas"),
      presharedKey: wireguardPublicKey("psk2"),
      ipv4: "10.77.0.10",
      ipv6: "fd7a:c10d:9a1::a",
      group: "servers",
    });
    expect(state.peers.find((p) => p.name === "laptop")?.tcpKey).toBe(
      Buffer.alloc(32, 7).toString("base64url"),
    );
    expect(state.groups).toEqual([
      { name: "family", reaches: ["family", "servers"], internet: true, encryptedDns: "block" },
      { name: "servers", reaches: [], internet: false, encryptedDns: "block" },
    ]);
  });

  it("carries the endpoint devices dial, for the client configs the hub prints", () => {
    const state = parseHubState(JSON.stringify(buildHubState(config, HUB_KEY, keys, "vpn.example.com:443")));
    expect([state.hub.endpoint, state.hub.persistentKeepalive]).toEqual(["vpn.example.com:443", 25]);
  });

  it("refuses to build a state with a peer that has no keys", () => {
    expect(() => buildHubState(config, HUB_KEY, new Map([...keys].slice(0, 1)))).toThrow(
      'buildHubState: no keys for peer "nas"',
    );
  });
});

describe("endpointOf", () => {
  it.each([
    ["vpn.example.com", 51820, "vpn.example.com:51820"],
    ["203.0.113.10", 443, "203.0.113.10:443"],
    ["2001:db8::1", 51820, "[2001:db8::1]:51820"],
  ])("%s port %d → %s", (host, port, expected) => {
    expect(endpointOf(host, port)).toBe(expected);
  });
});

describe("bootstrapSpec", () => {
  it("holds only what is fixed for the VM's life", () => {
    const cfg = loadConfig(
      minimalConfig("vultr", {
        image: "ubuntu-24.04",
        sshPort: 2222,
        autoReboot: { time: "03:30" },
        peers: [{ name: "laptop" }],
      }),
    );
    expect(bootstrapSpec(cfg)).toEqual({
      hostname: "cloudpal-hub",
      image: "ubuntu-24.04",
      operator: { user: "cloudpal-admin", sshPublicKeys: cfg.sshPublicKeys },
      sshPort: 2222,
      wireguardPort: 51820,
      unattendedUpgrades: { autoReboot: true, rebootTime: "03:30" },
      // Vultr: the hub's keys go on the block storage (components/hub.ts stateOnVolume).
      stateOnVolume: true,
    });
  });

  it("uses the existing server's login user as the operator", () => {
    const cfg = loadConfig(minimalConfig("existing"));
    expect(bootstrapSpec(cfg).operator.user).toBe("admin");
  });
});
