/**
 * Defense in depth for the TCP path: an output chain that holds the relay's own user (meta skuid) to what some
 * device may reach, whatever the relay process decides. The relay checks each device's rules itself
 * (policy.ts); this chain cannot tell devices apart (every session is the one user), so it allows the union:
 * the hub's resolver, the devices' tunnel addresses, and the internet when any group may use it. Never the
 * hub's own other addresses (`fib daddr type local`), the private, link-local, metadata or multicast ranges.
 *
 * A SYN-ACK to a client is sent before its socket is a full socket, so `meta skuid` does not match it; the
 * replies after it are `established`.
 */
import { hubAddresses } from "../../../model/addressing";
import { canonicalIpv6 } from "../../../model/ip-text";
import { DNS_FILTER_PORT } from "../../../model/layout";
import type { HubState } from "../../../model/state";

/** nft's form of the user: a number as it is, a name quoted (nft resolves it when the ruleset loads). */
function skuid(user: string): string {
  return /^[0-9]+$/.test(user) ? user : JSON.stringify(user);
}

export function relayOutputChain(state: HubState, user: string | undefined): string[] {
  if (state.hub.tcpPort === undefined || user === undefined) return [];
  const hub = hubAddresses(state.hub);
  const me = `meta skuid ${skuid(user)}`;
  const internet = state.mode === "vpn" && state.groups.some((g) => g.internet);
  return [
    "",
    "  chain output {",
    "    type filter hook output priority filter; policy accept;",
    `    ${me} ct state established,related accept`,
    // 53, and the DNS filter's port: the filter's redirect (agent/src/dns-filter.ts) turns the relay's DNS to
    // the hub into DNS to the filter before this chain sees it (NAT output runs at dstnat, before filter).
    `    ${me} ip daddr ${hub.ipv4} meta l4proto { udp, tcp } th dport { 53, ${DNS_FILTER_PORT} } accept comment "TCP path: the hub's resolver"`,
    `    ${me} ip6 daddr ${canonicalIpv6(hub.ipv6)} meta l4proto { udp, tcp } th dport { 53, ${DNS_FILTER_PORT} } accept comment "TCP path: the hub's resolver"`,
    `    ${me} ip daddr @peers_v4 accept comment "TCP path: devices"`,
    `    ${me} ip6 daddr @peers_v6 accept comment "TCP path: devices"`,
    `    ${me} fib daddr type local drop comment "TCP path: not the hub itself"`,
    `    ${me} ip daddr @non_internet_v4 drop comment "TCP path: never private ranges"`,
    `    ${me} ip6 daddr @non_internet_v6 drop comment "TCP path: never private ranges"`,
    ...(internet ? [] : [`    ${me} drop comment "TCP path: no group uses the internet"`]),
    "  }",
  ];
}
