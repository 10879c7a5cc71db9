/**
 * Which device, of which group, asks from a tunnel address: the DNS filter's verdicts (dns-filter-policy.ts)
 * and its site policies (site-policy.ts) both look the asker up here, by the address the query came from.
 */
import { canonicalIpv6 } from "../../model/ip-text";
import { peerTunnelAddresses } from "../../model/public-ipv6";
import type { HubState } from "../../model/state";

/** The device behind each tunnel address and its group, by canonical address text (clientKey). */
export type Clients = ReadonlyMap<string, { readonly device: string; readonly group: string }>;

/** Every tunnel address of every device (IPv4, ULA, global IPv6 when given: peerTunnelAddresses). */
export function clientsOf(state: HubState): Clients {
  const out = new Map<string, { device: string; group: string }>();
  for (const p of state.peers) {
    const who = { device: p.name, group: p.group };
    for (const address of peerTunnelAddresses(state.hub, p)) out.set(address, who);
  }
  return out;
}

/** The canonical text of an asking address (IPv4-mapped IPv6 as IPv4, IPv6 compressed and lower-case). */
export function clientKey(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1];
  return address.includes(":") ? canonicalIpv6(address) : address;
}
