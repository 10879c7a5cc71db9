/**
 * The desired state the hub's agent receives on stdin (model/state.ts), built from the validated config
 * and the keys Pulumi holds. Pure: the Hub calls it inside an apply, tests call it directly.
 */
import type { HubState, PublicIpv6State } from "../model/state";
import type { HubConfig } from "./config";

/** WireGuard material per peer, by peer name. */
export interface PeerKeys {
  readonly publicKey: string;
  readonly presharedKey: string;
  /** The device's TCP-path password (agent/src/tcp-relay/); given to the hub only when the path is on. */
  readonly tcpKey?: string;
}

/** `endpoint`: "host:port" devices dial (Hub.endpoint); the client configs on both sides read it from here. */
export function buildHubState(
  config: HubConfig,
  hubPrivateKey: string,
  peerKeys: ReadonlyMap<string, PeerKeys>,
  endpoint?: string,
  publicIpv6?: PublicIpv6State,
): HubState {
  return {
    version: 1,
    hub: {
      privateKey: hubPrivateKey,
      listenPort: config.wireguardPort,
      wireguardExtraPorts: [...config.wireguardExtraPorts],
      ...(endpoint !== undefined ? { endpoint } : {}),
      persistentKeepalive: config.persistentKeepalive,
      ...(config.tcpPort !== undefined ? { tcpPort: config.tcpPort } : {}),
      sshPort: config.sshPort,
      sshAllowedCidrs: [...config.sshAllowedCidrs],
      ipv4Subnet: config.ipv4Subnet,
      ipv6Prefix: config.ipv6Prefix,
      // What the provider gave the hub (components/hosts/*: Host.publicIpv6), and the session rule.
      ...(publicIpv6 !== undefined
        ? {
            publicIpv6: {
              ...publicIpv6,
              sessionIdle: config.ipv6SessionIdle,
              ...(config.ipv6DeviceAddresses ? { deviceAddresses: true } : {}),
            },
          }
        : {}),
    },
    mode: config.firewallMode,
    groups: config.groups.map((g) => ({
      name: g.name,
      reaches: [...g.reaches],
      internet: g.internet,
      encryptedDns: g.encryptedDns,
      // Only what differs from the defaults, so a state without site policies reads as before.
      ...(g.blocklists.length > 0 ? { blocklists: [...g.blocklists] } : {}),
      ...(g.allow.length > 0 ? { allow: [...g.allow] } : {}),
      ...(g.deny.length > 0 ? { deny: [...g.deny] } : {}),
      ...(g.sites !== "open" ? { sites: g.sites } : {}),
    })),
    peers: config.peers.map((p) => {
      const keys = peerKeys.get(p.name);
      if (!keys) throw new Error(`buildHubState: no keys for peer ${JSON.stringify(p.name)}`);
      return {
        name: p.name,
        publicKey: keys.publicKey,
        presharedKey: keys.presharedKey,
        ...(config.tcpPort !== undefined && keys.tcpKey !== undefined ? { tcpKey: keys.tcpKey } : {}),
        ipv4: p.ipv4,
        ipv6: p.ipv6,
        group: p.group,
        ...(p.publicIpv6 !== "off" ? { publicIpv6: p.publicIpv6 } : {}),
        ...(p.nat64 ? { nat64: true } : {}),
      };
    }),
    dns: {
      blocklists: [...config.dns.blocklists],
      allow: [...config.dns.allow],
      deny: [...config.dns.deny],
      upstreams: config.dns.upstreams.map((u) => ({ ...u })),
      dnssec: config.dns.dnssec,
      queryLog: config.dns.queryLog,
    },
  };
}
