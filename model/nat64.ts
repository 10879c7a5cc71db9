/**
 * NAT64 + DNS64 for devices that use only IPv6 (peers[].nat64): the hub translates IPv6 packets to
 * 64:ff9b::/96 into IPv4 with tayga (a userspace translator on a TUN device, Debian's `tayga` 0.9.2), and a
 * second, small unbound answers those devices' DNS with AAAA records synthesized from A records.
 *
 * Why a second unbound: unbound's dns64 module is set by `module-config`, a server-wide option, and a
 * `view:` holds only local-zone, local-data, local-data-ptr, response-ip and view-first (unbound.conf(5) of
 * unbound 1.17.1, "View Options" and "DNS64 Module Options"): there is no way to synthesize for some clients
 * only. Dual-stack devices must never get synthesized AAAA (their IPv4 traffic would go through the
 * translator), so DNS64 lives in its own instance, and the firewall sends only nat64 devices' DNS to it
 * (agent/src/nftables-ruleset.ts). It forwards every query to the hub's DNS filter on its tunnel address
 * (agent/src/dns-filter.ts, which relays what it does not refuse to unbound), so blocked names stay blocked
 * and `.pal` names resolve exactly as for any device. It forwards to port 53, not to the filter's port: the
 * filter's output redirect sends the hub's own queries to the filter while it runs, and while the filter is
 * down (crashing, restarting) unbound answers them, unfiltered, as it does for every other device: never no
 * DNS. (A blocked name reaches a nat64 device as SERVFAIL, not REFUSED: unbound, as the DNS64 resolver, takes
 * a forwarder's REFUSED for a failed server.)
 *
 * tayga (tayga.conf(5)):
 * - `prefix 64:ff9b::/96`: the Well-Known Prefix of RFC 6052. tayga itself refuses to translate the
 *   Well-Known Prefix with a non-global IPv4 address (10/8, 169.254/16, ...), so 64:ff9b::a9fe:a9fe
 *   (the metadata service) is refused before the firewall's own rule ever sees it.
 * - `dynamic-pool`: each device's IPv6 source address gets an IPv4 address of the pool (kept two hours after
 *   its last packet); the pool then leaves by the hub's masquerade, so IPv4 sites see the hub's one IPv4.
 *   The pool is in 198.18.0.0/15 (RFC 2544, benchmarking): never routed on the internet, and unlike 10/8,
 *   172.16/12 or 192.168/16 not used for any provider's private network (Linode's is 192.168.128.0/17).
 */
import { hubAddresses } from "./addressing";
import { canonicalIpv6 } from "./ip-text";
import { MANAGED_HEADER } from "./layout";
import type { HubState } from "./state";

export const NAT64 = {
  /** The Well-Known Prefix (RFC 6052 section 2.1). */
  prefix: "64:ff9b::/96",
  /** tayga's TUN device (at most 15 characters). */
  tunDevice: "cloudpal64",
  /** The IPv4 pool translated device addresses are mapped to; its first address is reserved by tayga. */
  pool: "198.18.64.0/24",
  /** tayga's own IPv4 (ICMPv4 errors, echo); inside the pool, so tayga removes it from the pool. */
  taygaIpv4: "198.18.64.1",
  /**
   * tayga's own IPv6 (the source of its ICMPv6 errors). tayga 0.9.2 requires one when the prefix is the
   * Well-Known Prefix and its IPv4 is not global ("ipv6-addr directive must be specified if prefix is
   * 64:ff9b::/96 and ipv4-addr is a non-global (RFC 1918) address"); a ULA of its own, outside any tunnel.
   */
  taygaIpv6: "fd64:ff9b:cafe::1",
  /** The hub's address on the TUN device, outside the pool (tayga may hand out any pool address). */
  hubIpv4: "198.18.65.1",
  /** The DNS64 resolver's port on the hub's tunnel addresses; nat64 devices' DNS is redirected to it. */
  dns64Port: 5364,
  /** systemd units (cloud-init/units.ts); the agent starts them while some device has nat64. */
  units: { translator: "cloudpal-nat64.service", dns64: "cloudpal-dns64.service" },
  /** Files the agent writes, read by the units (no secrets in them). */
  files: { tayga: "/etc/cloudpal/tayga.conf", dns64: "/etc/cloudpal/dns64.conf" },
  /** tayga's data-dir: its dynamic.map, so a restart keeps each device's pool address. */
  dataDir: "/var/lib/cloudpal-nat64",
} as const;

/** Whether the hub runs NAT64 and DNS64: some device asked for it. */
export function nat64Wanted(state: Pick<HubState, "peers">): boolean {
  return state.peers.some((p) => p.nat64 === true);
}

/** tayga.conf for the hub (tayga.conf(5)). */
export function renderTaygaConfig(dataDir: string = NAT64.dataDir): string {
  return [
    MANAGED_HEADER,
    `tun-device ${NAT64.tunDevice}`,
    `ipv4-addr ${NAT64.taygaIpv4}`,
    `ipv6-addr ${NAT64.taygaIpv6}`,
    `prefix ${NAT64.prefix}`,
    `dynamic-pool ${NAT64.pool}`,
    `data-dir ${dataDir}`,
    "",
  ].join("\n");
}

/**
 * The host side of tayga's TUN device, which tayga leaves to the administrator (tayga.conf(5), tun-device):
 * the device up, the pool and the prefix routed into it. `ip` argument lists, run by the unit after
 * `tayga --mktun` and by the namespace test the same way.
 */
export function nat64TunCommands(): string[][] {
  const dev = NAT64.tunDevice;
  return [
    ["link", "set", dev, "up"],
    ["addr", "replace", `${NAT64.hubIpv4}/32`, "dev", dev],
    ["route", "replace", NAT64.pool, "dev", dev],
    ["-6", "route", "replace", NAT64.prefix, "dev", dev],
  ];
}

/**
 * The DNS64 resolver's unbound.conf: listens on the hub's tunnel addresses at NAT64.dns64Port, answers only the
 * tunnel, synthesizes AAAA in 64:ff9b::/96 and forwards everything to `upstreamPort` on the hub's tunnel IPv4
 * (the agent gives 53: the DNS filter's output redirect sends the hub's own queries to the filter, which filters,
 * names devices and relays to the validating unbound; while the filter is down unbound answers them itself).
 */
export function renderDns64Config(
  hub: Pick<HubState["hub"], "ipv4Subnet" | "ipv6Prefix">,
  upstreamPort: number,
): string {
  const a = hubAddresses(hub);
  const v6 = canonicalIpv6(a.ipv6);
  return [
    MANAGED_HEADER,
    "server:",
    `    interface: ${a.ipv4}@${NAT64.dns64Port}`,
    `    interface: ${v6}@${NAT64.dns64Port}`,
    // wg0 may come up after this unit at boot.
    "    ip-freebind: yes",
    "    access-control: 0.0.0.0/0 refuse",
    "    access-control: ::/0 refuse",
    `    access-control: ${hub.ipv4Subnet} allow`,
    `    access-control: ${hub.ipv6Prefix} allow`,
    '    module-config: "dns64 iterator"',
    `    dns64-prefix: ${NAT64.prefix}`,
    "    hide-identity: yes",
    "    hide-version: yes",
    // Small: the hub's resolver holds the real cache.
    "    msg-cache-size: 4m",
    "    rrset-cache-size: 4m",
    "    num-threads: 1",
    "",
    "remote-control:",
    "    control-enable: no",
    "",
    "forward-zone:",
    '    name: "."',
    `    forward-addr: ${a.ipv4}@${upstreamPort}`,
    "",
  ].join("\n");
}
