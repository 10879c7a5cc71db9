/** A small, fixed hub state for unit tests: three groups, four peers, keys from fixed bytes. */
import { createHash } from "crypto";
import { allocateAddresses } from "../../model/addressing";
import { privateKeyFromBytes, publicKeyFromPrivate } from "../../model/keys";
import type { HubState, PeerState } from "../../model/state";

export function fixedKeyPair(seed: string): { privateKey: string; publicKey: string } {
  const privateKey = privateKeyFromBytes(createHash("sha256").update(seed).digest());
  return { privateKey, publicKey: publicKeyFromPrivate(privateKey) };
}

export const TEST_SUBNETS = { ipv4Subnet: "10.77.0.0/16", ipv6Prefix: "fd7a:c10d:9a1::/64" };

export function testPeer(name: string, group: string, presharedKey?: string): PeerState {
  const a = allocateAddresses(TEST_SUBNETS, [{ name }]).get(name)!;
  return {
    name,
    publicKey: fixedKeyPair(name).publicKey,
    ipv4: a.ipv4,
    ipv6: a.ipv6,
    group,
    ...(presharedKey ? { presharedKey } : {}),
  };
}

export function testState(overrides: Partial<HubState> = {}): HubState {
  return {
    version: 1,
    hub: {
      privateKey: fixedKeyPair("hub").privateKey,
      listenPort: 51820,
      sshPort: 22,
      sshAllowedCidrs: ["203.0.113.0/24", "2001:db8::/32"],
      ...TEST_SUBNETS,
    },
    mode: "vpn",
    groups: [
      { name: "family", reaches: ["family"], internet: true },
      { name: "guest", reaches: [], internet: true },
      { name: "iot", reaches: [], internet: false },
    ],
    peers: [
      testPeer("laptop", "family", fixedKeyPair("psk").privateKey),
      testPeer("phone", "family"),
      testPeer("visitor", "guest"),
      testPeer("camera", "iot"),
    ],
    dns: {
      blocklists: [],
      allow: ["good.example.com"],
      deny: ["ads.example.com"],
      upstreams: [{ address: "9.9.9.9", tlsName: "dns.quad9.net", port: 853 }],
      dnssec: true,
      queryLog: false,
    },
    ...overrides,
  };
}
