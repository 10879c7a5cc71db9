/**
 * Synthetic hub states for the agent benchmarks and smoke runs: N peers with real keys and addresses from the
 * one allocator, split over a few groups.
 */
import { randomBytes } from "crypto";
import { allocateAddresses } from "../model/addressing";
import { privateKeyFromBytes, publicKeyFromPrivate } from "../model/keys";
import type { HubState, PeerState } from "../model/state";

export const SUBNETS = { ipv4Subnet: "10.77.0.0/16", ipv6Prefix: "fd7a:c10d:9a1::/64" } as const;

export function newKeyPair(): { privateKey: string; publicKey: string } {
  const privateKey = privateKeyFromBytes(randomBytes(32));
  return { privateKey, publicKey: publicKeyFromPrivate(privateKey) };
}

/** N peers named dev0..devN-1, pinned in order so large N never hits a hash collision. */
export function syntheticPeers(n: number, prefix = "dev"): PeerState[] {
  const requests = Array.from({ length: n }, (_, i) => ({
    name: `${prefix}${i}`,
    address: `10.77.${Math.floor((i + 2) / 256)}.${(i + 2) % 256}`,
  }));
  const addresses = allocateAddresses(SUBNETS, requests);
  const groups = ["family", "work", "guest"];
  return requests.map((r, i) => {
    const a = addresses.get(r.name)!;
    return {
      name: r.name,
      publicKey: newKeyPair().publicKey,
      ipv4: a.ipv4,
      ipv6: a.ipv6,
      group: groups[i % groups.length],
    };
  });
}

export function syntheticState(peers: PeerState[], overrides: Partial<HubState> = {}): HubState {
  return {
    version: 1,
    hub: {
      privateKey: newKeyPair().privateKey,
      listenPort: 51820,
      sshPort: 22,
      sshAllowedCidrs: ["0.0.0.0/0", "::/0"],
      ...SUBNETS,
    },
    mode: "vpn",
    groups: [
      { name: "family", reaches: ["family", "work"], internet: true },
      { name: "work", reaches: ["work"], internet: true },
      { name: "guest", reaches: [], internet: true },
    ],
    peers,
    dns: {
      blocklists: [],
      allow: [],
      deny: ["ads.example.com"],
      upstreams: [{ address: "1.1.1.1", tlsName: "cloudflare-dns.com", port: 853 }],
      dnssec: true,
      queryLog: false,
    },
    ...overrides,
  };
}

if (require.main === module) {
  const n = Number(process.argv[2] ?? "3");
  process.stdout.write(JSON.stringify(syntheticState(syntheticPeers(n))) + "\n");
}
