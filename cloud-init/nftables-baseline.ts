import { LAYOUT, MANAGED_HEADER } from "../model/layout";

/**
 * The default-deny firewall the hub starts with, written to LAYOUT.nftablesConfig so Debian's
 * nftables.service loads it at every boot, before the network is up.
 *
 * It only ever touches the `inet cloudpal` table: declaring the table, deleting it and defining it again in
 * one file is one atomic transaction that works whether or not the table exists yet (nft 1.0.6 on Debian 12
 * has no `destroy`). No `flush ruleset`: tables that other software or the owner of an existing server keep
 * (docker, fail2ban, ...) survive. The agent later replaces this table the same way, with the peer rules.
 */
export function renderNftablesBaseline(ports: {
  readonly sshPort: number;
  readonly wireguardPort: number;
}): string {
  const t = LAYOUT.nftTable;
  const wg = LAYOUT.interface;
  return `#!/usr/sbin/nft -f
${MANAGED_HEADER}
# Baseline from the bootstrap: only SSH and WireGuard from the internet, DNS only through the tunnel.

table inet ${t}
delete table inet ${t}

table inet ${t} {
	chain input {
		type filter hook input priority filter; policy drop;

		iif "lo" accept
		ct state established,related accept
		ct state invalid drop

		# Errors that path MTU discovery and traceroute need; kept cheap for the host to answer.
		icmp type { destination-unreachable, time-exceeded, parameter-problem } limit rate 100/second burst 200 packets accept
		icmp type echo-request limit rate 5/second burst 10 packets accept
		icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem } limit rate 100/second burst 200 packets accept
		icmpv6 type echo-request limit rate 5/second burst 10 packets accept
		# Neighbour discovery and router adverts only from the link itself (hop limit 255, RFC 4861).
		icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert } ip6 hoplimit 255 limit rate 100/second burst 200 packets accept
		# DHCPv6 replies come from a link-local server to a multicast-initiated request, so conntrack never sees them as replies.
		ip6 saddr fe80::/10 udp sport 547 udp dport 546 accept

		udp dport ${ports.wireguardPort} accept comment "WireGuard"
		tcp dport ${ports.sshPort} accept comment "SSH"
		# iifname, not iif: ${wg} does not exist until the agent creates it.
		iifname "${wg}" meta l4proto { udp, tcp } th dport 53 accept comment "DNS for peers only"
	}

	chain forward {
		type filter hook forward priority filter; policy drop;
	}
}
`;
}
