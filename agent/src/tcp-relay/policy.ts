/**
 * What a device on the TCP path may reach: the same rules the firewall gives it on the tunnel
 * (agent/src/nftables-ruleset.ts), decided per connection inside the relay. The agent derives a RelayConfig
 * from the hub state and pushes it to the relay (control.ts); the relay never reads the state itself.
 *
 * - Devices of the groups its group `reaches`, by their tunnel addresses (which `NAME.pal` resolves to).
 * - The hub only for DNS (port 53 on its tunnel addresses); plain DNS to any other resolver goes to the hub's
 *   resolver instead, as the tunnel's DNAT does.
 * - The internet only in `vpn` mode for a group with `internet` (and not in "allow-list" site mode), never the private, link-local, metadata or
 *   multicast ranges, never an address of the hub itself; for a group whose encrypted DNS is blocked, no port
 *   853 and no HTTPS to the well-known DoH resolvers.
 */
import * as ipaddr from "ipaddr.js";
import { TCP_PATH_METHOD } from "../../../model/access-key";
import { hubAddresses } from "../../../model/addressing";
import { DEFAULT_ENCRYPTED_DNS, type HubState } from "../../../model/state";
import { DOH_RESOLVERS_V4, DOH_RESOLVERS_V6, NON_INTERNET_V4, NON_INTERNET_V6 } from "../nftables-ruleset";
import type { Method } from "./aead";

export const RELAY_METHOD: Method = TCP_PATH_METHOD;

export interface RelayDevice {
  readonly name: string;
  /** Secret. */
  readonly password: string;
  readonly method: Method;
  /** Tunnel addresses (both families) of the devices this one may open connections to. */
  readonly reach: readonly string[];
  readonly internet: boolean;
  readonly blockEncryptedDns: boolean;
}

export interface RelayConfig {
  readonly version: 1;
  /** null: the path is off and the relay listens on nothing. */
  readonly port: number | null;
  readonly hubIpv4: string;
  readonly hubIpv6: string;
  readonly ipv4Subnet: string;
  readonly ipv6Prefix: string;
  readonly devices: readonly RelayDevice[];
}

export function relayConfig(state: HubState): RelayConfig {
  const hub = hubAddresses(state.hub);
  const groups = new Map(state.groups.map((g) => [g.name, g]));
  const enabled = state.hub.tcpPort !== undefined;
  const devices: RelayDevice[] = [];
  if (enabled)
    for (const p of state.peers) {
      if (p.tcpKey === undefined) continue;
      const g = groups.get(p.group);
      if (g === undefined) continue;
      const reaches = new Set(g.reaches);
      const reach = state.peers
        .filter((q) => reaches.has(q.group) && q.name !== p.name)
        .flatMap((q) => [q.ipv4, ipaddr.parse(q.ipv6).toString()]);
      devices.push({
        name: p.name,
        password: p.tcpKey,
        method: RELAY_METHOD,
        reach,
        // A group with a site mode or its own deny entries or blocklists gets no internet on the TCP path: the
        // relay resolves as the hub, so the DNS filter judges its lookups by the hub's lists only, and its
        // connections never pass the sites table the filter fills from the group's answers (site-policy.ts).
        // It fails closed rather than open (README "Per-group site policies").
        internet: state.mode === "vpn" && g.internet && !restrictsSites(g),
        blockEncryptedDns: (g.encryptedDns ?? DEFAULT_ENCRYPTED_DNS) === "block",
      });
    }
  return {
    version: 1,
    port: enabled ? (state.hub.tcpPort ?? null) : null,
    hubIpv4: hub.ipv4,
    hubIpv6: ipaddr.parse(hub.ipv6).toString(),
    ipv4Subnet: state.hub.ipv4Subnet,
    ipv6Prefix: state.hub.ipv6Prefix,
    devices,
  };
}

/** A group whose own policy is stricter than the hub's lists: a site mode, its own deny entries or blocklists. */
function restrictsSites(g: HubState["groups"][number]): boolean {
  return g.sites !== undefined || (g.deny?.length ?? 0) > 0 || (g.blocklists?.length ?? 0) > 0;
}

export type Verdict =
  { readonly ok: true; readonly host: string; readonly port: number } | { readonly ok: false };

type Cidr = [ipaddr.IPv4 | ipaddr.IPv6, number];
const parseAll = (list: readonly string[]): Cidr[] => list.map((c) => ipaddr.parseCIDR(c));
const NON_INTERNET = parseAll([...NON_INTERNET_V4, ...NON_INTERNET_V6]);
const DOH = new Set([...DOH_RESOLVERS_V4, ...DOH_RESOLVERS_V6].map((a) => ipaddr.parse(a).toString()));

function inAny(addr: ipaddr.IPv4 | ipaddr.IPv6, cidrs: readonly Cidr[]): boolean {
  return cidrs.some(([net, bits]) => net.kind() === addr.kind() && addr.match(net, bits));
}

/**
 * The address the relay may connect to for `device` asking for `host`:`port` (host an IP address), or a
 * refusal. `local`: the hub's own addresses (every interface), which no device reaches through the relay.
 */
export function decide(
  config: RelayConfig,
  device: RelayDevice,
  host: string,
  port: number,
  local: ReadonlySet<string>,
): Verdict {
  if (!ipaddr.isValid(host) || port < 1 || port > 65535) return { ok: false };
  let addr = ipaddr.parse(host);
  if (addr.kind() === "ipv6" && (addr as ipaddr.IPv6).isIPv4MappedAddress())
    addr = (addr as ipaddr.IPv6).toIPv4Address();
  const text = addr.toString();
  if (text === config.hubIpv4 || text === config.hubIpv6)
    return port === 53 ? { ok: true, host: text, port } : { ok: false };
  const tunnel = parseAll([config.ipv4Subnet, config.ipv6Prefix]);
  if (inAny(addr, tunnel))
    return device.reach.includes(text) ? { ok: true, host: text, port } : { ok: false };
  // Plain DNS to any resolver: answered by the hub's filter, as on the tunnel.
  if (port === 53) return { ok: true, host: config.hubIpv4, port: 53 };
  if (local.has(text) || inAny(addr, NON_INTERNET) || !device.internet) return { ok: false };
  if (device.blockEncryptedDns && (port === 853 || (port === 443 && DOH.has(text)))) return { ok: false };
  return { ok: true, host: text, port };
}
