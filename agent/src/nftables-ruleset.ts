/**
 * The complete nftables ruleset of the hub, in the one table CloudPal owns. Loaded with one `nft -f`, which
 * is one kernel transaction: `table … {}` creates the table if missing so that `delete table` cannot fail,
 * then the new definition replaces it. Other tables (Docker's, the provider agent's) are never touched: no
 * `flush ruleset`.
 *
 * Why the base chains say `policy accept` and end in an explicit `drop`: replacing the table in one transaction
 * hooks the NEW base chains while the transaction is prepared, before their rules are live, and leaves the OLD
 * ones hooked, rules already retired, until the commit finishes. A chain with `policy drop` drops every packet
 * that meets it in either window (the namespace test saw one ping in ~2,000 lost per 40 applies). With
 * `policy accept` the chain caught mid-swap lets the packet on to the other one, whose rules still decide; in
 * steady state the final `drop` denies exactly what the policy would have.
 *
 * Policy:
 * - input: default drop; SSH only from hub.sshAllowedCidrs (so the operator keeps access), WireGuard UDP from
 *   anywhere, DNS and ping only from the tunnel; ICMPv6 neighbour discovery so IPv6 keeps working.
 * - forward: default drop; peer→peer only where the source group "reaches" the destination group, using one
 *   set of addresses per group; peer→internet only in `vpn` mode for groups with `internet`, and never to
 *   private, link-local or metadata ranges (the provider's network is not "the internet").
 * - anti-spoofing, two layers: WireGuard accepts from a peer only the sources in its AllowedIPs (its own /32 and
 *   /128), and here anything entering from wg0 must come from a known peer address, while nothing entering
 *   from another interface may claim a tunnel address.
 * - NAT: masquerade traffic from the tunnel subnets leaving by any interface other than wg0 and lo (the hub's own
 *   processes that ask its resolver on a tunnel address, such as the TCP path's relay, go out by lo: masqueraded
 *   there they would reach unbound from 127.0.0.1, which its access-control refuses). Matching
 *   `oifname != wg0` instead of a detected egress name keeps working when the provider names the NIC ens3,
 *   eth0 or enp1s0, or adds a second one; the forward chain already decides what may leave.
 * - DNS through the filter: plain DNS (port 53, UDP and TCP, both families) from the tunnel to any resolver
 *   outside it is redirected (DNAT) to the hub's unbound, so a device set to ask 8.8.8.8 gets the hub's
 *   filtered answer (conntrack rewrites the reply's source back, so the device sees 8.8.8.8 answer). Resolvers
 *   inside the tunnel (a peer's own DNS server) are left alone: the forward chain decides whether they are
 *   reachable. For groups whose `encryptedDns` is "block", DNS-over-TLS and DNS-over-QUIC (853, RFC 7858 and
 *   9250) anywhere, and HTTPS (TCP and UDP 443) to the well-known DoH resolvers (DOH_RESOLVERS_V4/V6), are
 *   rejected rather than dropped, so the device falls back to plain DNS at once instead of after a timeout.
 *   DoH to any other address cannot be told from web traffic and passes (README "What can still bypass").
 * - NAT64 (model/nat64.ts), only while some peer has `nat64`: those peers' DNS, to any resolver, goes to the
 *   DNS64 resolver (chain dns64, before every other DNS redirect); only they may send to 64:ff9b::/96, and only
 *   as internet traffic of their group (the rules above decide wg -> translator); what the translator sends on
 *   may go only to the internet (not private, link-local or metadata) and leaves masqueraded; nothing from it
 *   reaches the hub itself; the IPv4 DoH resolvers are refused at their 64:ff9b:: addresses too.
 */
import * as ipaddr from "ipaddr.js";
import { hubAddresses } from "../../model/addressing";
import { canonicalIpv6 } from "../../model/ip-text";
import { DISCOVERY_PORT, PROBE_MAGIC, PROBE_PORT_BASE, probeVantagePorts } from "../../model/direct";
import { DNS_FILTER_PORT, MANAGED_HEADER } from "../../model/layout";
import { relayOutputChain } from "./tcp-relay/nft";
import { renderSitesTable } from "./site-policy-nft";
import { NAT64 } from "../../model/nat64";
import { DEFAULT_ENCRYPTED_DNS, type HubState } from "../../model/state";
import { hubPublicPorts, type PublicPort } from "../../model/public-ports";
import {
  peerGlobalIpv6,
  perSiteAddresses,
  PER_SITE_SLOTS,
  tunnelGlobalPrefix,
} from "../../model/public-ipv6";

export interface NftOptions {
  readonly table: string;
  readonly interface: string;
  /** The TCP path relay's user, held by an output chain (agent/src/tcp-relay/nft.ts). */
  readonly relayUser?: string;
  /** The current session address of each "session" peer, by name (agent/src/public-ipv6.ts). */
  readonly sessions?: Readonly<Record<string, string>>;
}

/** Destinations a peer may never reach through the hub, even with internet access. */
export const NON_INTERNET_V4 = [
  "0.0.0.0/8",
  "10.0.0.0/8",
  "100.64.0.0/10",
  "127.0.0.0/8",
  "169.254.0.0/16",
  "172.16.0.0/12",
  "192.168.0.0/16",
  "224.0.0.0/4",
  "240.0.0.0/4",
];
/** fd00:ec2::254 is a cloud metadata address; it is inside fc00::/7 like every ULA. */
export const NON_INTERNET_V6 = ["::1/128", "fc00::/7", "fe80::/10", "ff00::/8"];

/**
 * The anycast addresses of the public resolvers that browsers and operating systems offer for DNS-over-HTTPS,
 * as each operator documents them: Google (developers.google.com/speed/public-dns/docs/using), Cloudflare
 * incl. its malware and family variants (developers.cloudflare.com/1.1.1.1/ip-addresses), Quad9
 * (quad9.net/service/service-addresses-and-features), OpenDNS (support.opendns.com, "OpenDNS IP addresses"),
 * AdGuard DNS (adguard-dns.io/kb/general/dns-providers), CleanBrowsing (cleanbrowsing.org/filters) and
 * Mullvad DNS (mullvad.net/help/dns-over-https-and-dns-over-tls). These addresses serve only DNS, so refusing
 * HTTPS to them takes nothing else away.
 */
export const DOH_RESOLVERS_V4 = [
  "8.8.8.8",
  "8.8.4.4",
  "1.1.1.1",
  "1.0.0.1",
  "1.1.1.2",
  "1.0.0.2",
  "1.1.1.3",
  "1.0.0.3",
  "9.9.9.9",
  "149.112.112.112",
  "9.9.9.10",
  "149.112.112.10",
  "9.9.9.11",
  "149.112.112.11",
  "208.67.222.222",
  "208.67.220.220",
  "208.67.222.123",
  "208.67.220.123",
  "94.140.14.14",
  "94.140.15.15",
  "94.140.14.15",
  "94.140.15.16",
  "185.228.168.9",
  "185.228.169.9",
  "185.228.168.168",
  "185.228.169.168",
  "194.242.2.2",
];
export const DOH_RESOLVERS_V6 = [
  "2001:4860:4860::8888",
  "2001:4860:4860::8844",
  "2606:4700:4700::1111",
  "2606:4700:4700::1001",
  "2606:4700:4700::1112",
  "2606:4700:4700::1002",
  "2606:4700:4700::1113",
  "2606:4700:4700::1003",
  "2620:fe::fe",
  "2620:fe::9",
  "2620:fe::10",
  "2620:fe::fe:10",
  "2620:fe::11",
  "2620:fe::fe:11",
  "2620:119:35::35",
  "2620:119:53::53",
  "2a10:50c0::ad1:ff",
  "2a10:50c0::ad2:ff",
  "2a0d:2a00:1::2",
  "2a0d:2a00:2::2",
  "2a07:e340::2",
];

function elements(items: readonly string[]): string {
  return items.length > 0 ? ` elements = { ${items.join(", ")} }` : "";
}

const v6 = canonicalIpv6;
const PROBE_MAGIC_HEX = `0x${PROBE_MAGIC.toString(16)}`;

export function renderNftRuleset(state: HubState, options: NftOptions): string {
  const { table } = options;
  const wg = JSON.stringify(options.interface);
  const hub = hubAddresses(state.hub);
  const out: string[] = [
    MANAGED_HEADER,
    `table inet ${table} {}`,
    `delete table inet ${table}`,
    `table inet ${table} {`,
  ];
  const set = (name: string, type: string, items: readonly string[], comment: string) =>
    out.push(
      `  set ${name} {`,
      `    type ${type}; flags interval; comment ${JSON.stringify(comment)};${elements(items)}`,
      `  }`,
    );

  const groupIndex = new Map(state.groups.map((g, i) => [g.name, i]));
  // A peer's IPv6 addresses: its ULA, and its global address where the hub has a public prefix. Group rules,
  // anti-spoofing and NAT66 hold for both, because every rule names the sets built from this.
  const tunnelPrefix = tunnelGlobalPrefix(state.hub.publicIpv6);
  const v6Of = (p: HubState["peers"][number]): string[] => {
    const global = peerGlobalIpv6(state.hub, p);
    return global === undefined ? [v6(p.ipv6)] : [v6(p.ipv6), global];
  };
  state.groups.forEach((g, i) => {
    const members = state.peers.filter((p) => p.group === g.name);
    set(
      `group${i}_v4`,
      "ipv4_addr",
      members.map((p) => p.ipv4),
      `group ${g.name}`,
    );
    set(`group${i}_v6`, "ipv6_addr", members.flatMap(v6Of), `group ${g.name}`);
  });
  set(
    "peers_v4",
    "ipv4_addr",
    state.peers.map((p) => p.ipv4),
    "every peer",
  );
  set("peers_v6", "ipv6_addr", state.peers.flatMap(v6Of), "every peer");
  set(
    "ssh_v4",
    "ipv4_addr",
    state.hub.sshAllowedCidrs.filter((c) => ipaddr.parseCIDR(c)[0].kind() === "ipv4"),
    "SSH allowed from",
  );
  set(
    "ssh_v6",
    "ipv6_addr",
    state.hub.sshAllowedCidrs.filter((c) => ipaddr.parseCIDR(c)[0].kind() === "ipv6"),
    "SSH allowed from",
  );
  set("non_internet_v4", "ipv4_addr", NON_INTERNET_V4, "never reached through the hub");
  set("non_internet_v6", "ipv6_addr", NON_INTERNET_V6, "never reached through the hub");
  set("doh_v4", "ipv4_addr", DOH_RESOLVERS_V4, "well-known DNS-over-HTTPS resolvers");
  // NAT64 devices reach the IPv4 DoH resolvers at their 64:ff9b:: addresses: the same refusal must hold there.
  const nat64Peers = state.peers.filter((p) => p.nat64 === true);
  set(
    "doh_v6",
    "ipv6_addr",
    nat64Peers.length > 0 ? [...DOH_RESOLVERS_V6, ...DOH_RESOLVERS_V4.map(nat64Address)] : DOH_RESOLVERS_V6,
    "well-known DNS-over-HTTPS resolvers",
  );
  if (nat64Peers.length > 0) {
    set(
      "nat64_v4",
      "ipv4_addr",
      nat64Peers.map((p) => p.ipv4),
      "devices with NAT64 and DNS64",
    );
    set("nat64_v6", "ipv6_addr", nat64Peers.flatMap(v6Of), "devices with NAT64 and DNS64");
  }
  const tun = JSON.stringify(NAT64.tunDevice);
  const sessionPeers =
    tunnelPrefix === undefined ? [] : state.peers.filter((p) => p.publicIpv6 === "session");
  if (sessionPeers.length > 0) {
    const items = sessionPeers
      .filter((p) => options.sessions?.[p.name] !== undefined)
      .flatMap((p) => v6Of(p).map((a) => `${a} : ${options.sessions?.[p.name]}`));
    out.push(
      `  map session6 {`,
      `    type ipv6_addr : ipv6_addr; comment "each session device's current public address";${elements(items)}`,
      `  }`,
    );
  }

  out.push(
    "",
    "  chain input {",
    "    type filter hook input priority filter; policy accept;",
    "    ct state invalid drop",
    "    ct state established,related accept",
    '    iifname "lo" accept',
    // Translated packets to the hub's own IPv4 (64:ff9b::<hub's public IPv4>) are not for the hub.
    ...(nat64Peers.length > 0 ? [`    iifname ${tun} drop comment "NAT64: nothing to the hub itself"`] : []),
    `    iifname != ${wg} ip saddr ${state.hub.ipv4Subnet} drop`,
    `    iifname != ${wg} ip6 saddr ${state.hub.ipv6Prefix} drop`,
    ...(tunnelPrefix !== undefined ? [`    iifname != ${wg} ip6 saddr ${tunnelPrefix} drop`] : []),
    `    iifname ${wg} ip saddr != @peers_v4 drop`,
    `    iifname ${wg} ip6 saddr != @peers_v6 drop`,
    "    icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert, nd-router-solicit } ip6 hoplimit 255 accept",
    "    icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem } accept",
    "    icmp type { destination-unreachable, time-exceeded, parameter-problem } accept",
    "    icmp type echo-request limit rate 20/second accept",
    "    icmpv6 type echo-request limit rate 20/second accept",
    ...publicInputRules(state),
    // 53: unbound; DNS_FILTER_PORT: the DNS filter, where its redirect sends the tunnel's DNS (dns-filter.ts).
    `    iifname ${wg} ip daddr ${hub.ipv4} meta l4proto { udp, tcp } th dport { 53, ${DNS_FILTER_PORT} } accept`,
    `    iifname ${wg} ip6 daddr ${v6(hub.ipv6)} meta l4proto { udp, tcp } th dport { 53, ${DNS_FILTER_PORT} } accept`,
    ...(nat64Peers.length > 0
      ? [
          `    iifname ${wg} ip saddr @nat64_v4 ip daddr ${hub.ipv4} meta l4proto { udp, tcp } th dport ${NAT64.dns64Port} accept comment "DNS64"`,
          `    iifname ${wg} ip6 saddr @nat64_v6 ip6 daddr ${v6(hub.ipv6)} meta l4proto { udp, tcp } th dport ${NAT64.dns64Port} accept comment "DNS64"`,
        ]
      : []),
    `    iifname ${wg} ip daddr ${hub.ipv4} tcp dport ${DISCOVERY_PORT} accept comment "direct connections: endpoint discovery"`,
    `    iifname != ${wg} udp dport { ${PROBE_PORT_BASE}, ${PROBE_PORT_BASE + 1} } ct status dnat limit rate 50/second accept comment "direct connections: NAT probes redirected from WireGuard ports"`,
    '    drop comment "default deny"',
    "  }",
    "",
    "  chain forward {",
    "    type filter hook forward priority filter; policy accept;",
    "    ct state invalid drop",
    `    iifname != ${wg} ip saddr ${state.hub.ipv4Subnet} drop`,
    `    iifname != ${wg} ip6 saddr ${state.hub.ipv6Prefix} drop`,
    ...(tunnelPrefix !== undefined ? [`    iifname != ${wg} ip6 saddr ${tunnelPrefix} drop`] : []),
    `    iifname ${wg} ip saddr != @peers_v4 drop`,
    `    iifname ${wg} ip6 saddr != @peers_v6 drop`,
    `    iifname ${wg} ip daddr 169.254.0.0/16 drop`,
    `    iifname ${wg} ip6 daddr fe80::/10 drop`,
    // Only nat64 devices use the translator; for the others 64:ff9b::/96 leads nowhere.
    ...(nat64Peers.length > 0
      ? [
          `    iifname ${wg} ip6 daddr ${NAT64.prefix} ip6 saddr != @nat64_v6 drop comment "NAT64 only for nat64 devices"`,
        ]
      : []),
    "    ct state established,related accept",
  );
  for (const g of state.groups) {
    const from = groupIndex.get(g.name);
    for (const r of [...new Set(g.reaches)]) {
      const to = groupIndex.get(r);
      out.push(
        `    iifname ${wg} oifname ${wg} ip saddr @group${from}_v4 ip daddr @group${to}_v4 accept comment ${JSON.stringify(`${g.name} reaches ${r}`)}`,
        `    iifname ${wg} oifname ${wg} ip6 saddr @group${from}_v6 ip6 daddr @group${to}_v6 accept comment ${JSON.stringify(`${g.name} reaches ${r}`)}`,
      );
    }
  }
  const egress = state.mode === "vpn" ? state.groups.filter((g) => g.internet) : [];
  for (const g of egress) {
    // An allow-list group's devices must ask the hub, which learns the allowed sites' addresses from its answers
    // (site-policy.ts): encrypted DNS stays blocked whatever the state says (the config refuses the pair).
    if ((g.encryptedDns ?? DEFAULT_ENCRYPTED_DNS) !== "block" && g.sites !== "allow-list") continue;
    const i = groupIndex.get(g.name);
    const why = JSON.stringify(`${g.name}: encrypted DNS blocked`);
    out.push(
      `    iifname ${wg} oifname != ${wg} ip saddr @group${i}_v4 meta l4proto { tcp, udp } th dport 853 reject comment ${why}`,
      `    iifname ${wg} oifname != ${wg} ip6 saddr @group${i}_v6 meta l4proto { tcp, udp } th dport 853 reject comment ${why}`,
      `    iifname ${wg} oifname != ${wg} ip saddr @group${i}_v4 ip daddr @doh_v4 meta l4proto { tcp, udp } th dport 443 reject comment ${why}`,
      `    iifname ${wg} oifname != ${wg} ip6 saddr @group${i}_v6 ip6 daddr @doh_v6 meta l4proto { tcp, udp } th dport 443 reject comment ${why}`,
    );
  }
  for (const g of egress) {
    const i = groupIndex.get(g.name);
    out.push(
      `    iifname ${wg} oifname != ${wg} ip saddr @group${i}_v4 ip daddr != @non_internet_v4 accept comment ${JSON.stringify(`${g.name} uses the internet`)}`,
      `    iifname ${wg} oifname != ${wg} ip6 saddr @group${i}_v6 ip6 daddr != @non_internet_v6 accept comment ${JSON.stringify(`${g.name} uses the internet`)}`,
    );
  }
  // The translator's IPv4 side: the group rules were decided on the device's IPv6 packet (wg -> tun, above);
  // what tayga sends on may only go to the internet, never to private, link-local or metadata addresses.
  if (nat64Peers.length > 0 && egress.length > 0)
    out.push(
      `    iifname ${tun} oifname != { ${wg}, ${tun} } ip saddr ${NAT64.pool} ip daddr != @non_internet_v4 accept comment "NAT64 to the internet"`,
    );
  out.push('    drop comment "default deny"', "  }");
  out.push(
    "",
    "  chain prerouting {",
    "    type nat hook prerouting priority dstnat; policy accept;",
    // Before the extra ports' redirect to the listen port: a redirect ends the chain for its packet.
    ...probeVantagePorts(state.hub.listenPort, state.hub.wireguardExtraPorts ?? []).map(
      (port, i) =>
        `    iifname != { ${wg}, "lo" } udp dport ${port} @th,64,32 ${PROBE_MAGIC_HEX} redirect to :${PROBE_PORT_BASE + i} comment "direct connections: NAT probes"`,
    ),
    `    iifname ${wg} ip daddr != ${state.hub.ipv4Subnet} meta l4proto { udp, tcp } th dport 53 dnat ip to ${hub.ipv4} comment "DNS goes through the hub's filter"`,
    `    iifname ${wg} ip6 daddr != ${state.hub.ipv6Prefix} meta l4proto { udp, tcp } th dport 53 dnat ip6 to ${v6(hub.ipv6)} comment "DNS goes through the hub's filter"`,
    ...publicRedirects(state, wg),
    "  }",
  );
  if (nat64Peers.length > 0) {
    // Before every other DNS redirect (priority dstnat - 20; the first NAT decision on a connection wins): a
    // nat64 device's DNS, to the hub or to any resolver, is answered by the DNS64 resolver (model/nat64.ts).
    const to = `comment "DNS64 for nat64 devices"`;
    out.push(
      "",
      "  chain dns64 {",
      "    type nat hook prerouting priority dstnat - 20; policy accept;",
      `    iifname ${wg} ip saddr @nat64_v4 meta l4proto { udp, tcp } th dport 53 dnat ip to ${hub.ipv4}:${NAT64.dns64Port} ${to}`,
      `    iifname ${wg} ip6 saddr @nat64_v6 meta l4proto { udp, tcp } th dport 53 dnat ip6 to [${v6(hub.ipv6)}]:${NAT64.dns64Port} ${to}`,
      "  }",
    );
  }
  if (egress.length > 0) {
    out.push(
      "",
      "  chain postrouting {",
      "    type nat hook postrouting priority srcnat; policy accept;",
      // Into the translator untouched (tayga maps the device's own address); out of it, the pool is masqueraded.
      ...(nat64Peers.length > 0
        ? [
            `    oifname ${tun} accept`,
            `    oifname != ${wg} oifname != "lo" ip saddr ${NAT64.pool} masquerade comment "NAT64 pool"`,
          ]
        : []),
      `    oifname != ${wg} oifname != "lo" ip saddr ${state.hub.ipv4Subnet} masquerade`,
      ...publicIpv6Nat(state, wg),
      "  }",
    );
  }
  out.push(...relayOutputChain(state, options.relayUser));
  out.push("}");
  // The per-group site sets live in a table of their own, loaded in the same transaction (site-policy-nft.ts).
  return out.join("\n") + "\n" + renderSitesTable(state, table, options.interface);
}

/**
 * NAT66: which public address a device's IPv6 internet traffic leaves from (model/state.ts PublicIpv6Mode).
 * - "session": `snat … map @session6`, the device's addresses → its current session address, which the session
 *   watcher changes (agent/src/public-ipv6.ts). NAT is decided on a connection's first packet, so connections
 *   opened before a new session keep their address until they end (conntrack keeps the mapping).
 * - "per-site": jhash of the destination, with a seed per device, picks one of the device's PER_SITE_SLOTS
 *   addresses: the same site always sees the same address, different sites (almost always) different ones.
 * - "off", and a session peer before its first session: the hub's own address (the first of
 *   `publicIpv6.addresses` where the hub configures one, else the interface's, by masquerade).
 */
function publicIpv6Nat(state: HubState, wg: string): string[] {
  const out: string[] = [];
  const prefix = tunnelGlobalPrefix(state.hub.publicIpv6);
  if (prefix !== undefined) {
    const addressesOf = (p: HubState["peers"][number]) => {
      const global = peerGlobalIpv6(state.hub, p);
      return global === undefined ? [v6(p.ipv6)] : [v6(p.ipv6), global];
    };
    const sessions = state.peers.filter((p) => p.publicIpv6 === "session");
    for (const p of state.peers.filter((x) => x.publicIpv6 === "per-site")) {
      const { seed, addresses } = perSiteAddresses(state.hub.privateKey, p.name, prefix);
      const map = addresses.map((a, i) => `${i} : ${a}`).join(", ");
      out.push(
        `    oifname != ${wg} oifname != "lo" ip6 saddr { ${addressesOf(p).join(", ")} } snat ip6 to jhash ip6 daddr mod ${PER_SITE_SLOTS} seed 0x${seed.toString(16)} map { ${map} } comment ${JSON.stringify(`${p.name}: an address per site`)}`,
      );
    }
    if (sessions.length > 0)
      out.push(
        `    oifname != ${wg} oifname != "lo" snat ip6 to ip6 saddr map @session6 comment "an address per session"`,
      );
  }
  const own = state.hub.publicIpv6?.addresses?.[0];
  out.push(
    own !== undefined
      ? `    oifname != ${wg} oifname != "lo" ip6 saddr @peers_v6 snat ip6 to ${own}`
      : `    oifname != ${wg} oifname != "lo" ip6 saddr @peers_v6 masquerade`,
  );
  return out;
}

/** The hub's public ports (model/public-ports.ts), from the state. */
export function statePublicPorts(state: HubState): PublicPort[] {
  return hubPublicPorts({
    sshPort: state.hub.sshPort,
    wireguardPort: state.hub.listenPort,
    wireguardExtraPorts: state.hub.wireguardExtraPorts ?? [],
    tcpPort: state.hub.tcpPort,
  });
}

/**
 * The input chain's accepts for the public ports: SSH only from the allowed CIDRs, the others from anywhere.
 * A redirected port needs none: the redirect (publicRedirects) has already rewritten it to its target port
 * when the packet reaches the input hook.
 */
function publicInputRules(state: HubState): string[] {
  return statePublicPorts(state).flatMap((p) => {
    if (p.redirectTo !== undefined) return [];
    if (p.from === "ssh")
      return [
        `    ${p.protocol} dport ${p.port} ip saddr @ssh_v4 accept`,
        `    ${p.protocol} dport ${p.port} ip6 saddr @ssh_v6 accept`,
      ];
    return [`    ${p.protocol} dport ${p.port} accept`];
  });
}

/**
 * Extra WireGuard ports: redirected to the listen port for packets from the internet side, i.e. any interface
 * but the tunnel and loopback (the same "not wg0" the NAT rules use, so the NIC's name never matters). The
 * redirect is decided on a flow's first packet; conntrack rewrites every reply's source port back, so replies
 * leave from the port the device dialled. Nothing else listens on these ports publicly: unbound binds the
 * tunnel addresses only, so public port 53 is WireGuard's and never an open resolver.
 */
function publicRedirects(state: HubState, wg: string): string[] {
  const byTarget = new Map<string, number[]>();
  for (const p of statePublicPorts(state)) {
    if (p.redirectTo === undefined) continue;
    const key = `${p.protocol} ${p.redirectTo}`;
    byTarget.set(key, [...(byTarget.get(key) ?? []), p.port]);
  }
  return [...byTarget].map(([key, ports]) => {
    const [protocol, target] = key.split(" ");
    return `    iifname != { ${wg}, "lo" } ${protocol} dport { ${ports.join(", ")} } redirect to :${target} comment "WireGuard on extra ports"`;
  });
}

/** An IPv4 address at its place in the NAT64 prefix (RFC 6052, /96): 8.8.8.8 -> 64:ff9b::808:808. */
export function nat64Address(ipv4: string): string {
  const b = ipaddr.IPv4.parse(ipv4).toByteArray();
  const base = ipaddr.IPv6.parse(NAT64.prefix.split("/")[0]).toByteArray();
  return new ipaddr.IPv6([...base.slice(0, 12), ...b]).toString();
}
