/**
 * The firewall half of the per-group site policies (model/state.ts SiteMode; README "Per-group site policies"):
 * a table of its own, `<agent table>_sites`, with one timeout set per group and family, which the DNS filter
 * fills (agent/src/site-policy.ts), and one forward chain that drops, for the group's devices going to the
 * internet:
 * - "allow-list": every address not in the group's allow set (`ip daddr != @allow4_<group> drop`);
 * - "deny": every address in the group's deny set.
 *
 * Why a table of its own: the agent replaces its main table whole on every apply (nftables-ruleset.ts), which
 * would empty the sets the filter filled. This table is loaded with add semantics instead: `table … { set … }`
 * leaves an existing set and its elements as they are (a set is only created when missing), and only the chain
 * is flushed and refilled, in the same `nft -f` transaction as the main table. A table with no policy left is
 * deleted, so a removed policy never keeps dropping.
 *
 * The chain hooks forward before the main table's (priority filter - 5): a drop in any base chain is final,
 * an accept only ends that chain, so the main table still decides everything this chain lets through.
 * Connections already established are left alone: an element that expires stops new connections, not a
 * download in progress.
 */
import { peerGlobalIpv6 } from "../../model/public-ipv6";
import { canonicalIpv6 } from "../../model/ip-text";
import type { GroupState, HubState } from "../../model/state";

export const SITES_TABLE_SUFFIX = "_sites";

export function sitesTable(agentTable: string): string {
  return `${agentTable}${SITES_TABLE_SUFFIX}`;
}

/** The set a group's learned (allow-list) or resolved (deny) addresses go in. Group names are [a-z0-9-]. */
export function siteSetName(group: string, kind: "allow" | "deny", family: 4 | 6): string {
  return `${kind}${family}_${group.replace(/-/g, "_")}`;
}

/** The groups whose site mode the firewall enforces: only where the hub forwards to the internet. */
export function enforcedSiteGroups(state: HubState): GroupState[] {
  if (state.mode !== "vpn") return [];
  return state.groups.filter((g) => g.internet && (g.sites === "deny" || g.sites === "allow-list"));
}

/** The `nft -f` text for the sites table; appended to the main ruleset (one transaction, one boot file). */
export function renderSitesTable(state: HubState, agentTable: string, ifname: string): string {
  const table = sitesTable(agentTable);
  const groups = enforcedSiteGroups(state);
  if (groups.length === 0) return [`table inet ${table} {}`, `delete table inet ${table}`, ""].join("\n");
  const wg = JSON.stringify(ifname);
  const sets: string[] = [];
  const rules: string[] = [];
  for (const g of groups) {
    const kind = g.sites === "allow-list" ? "allow" : "deny";
    for (const family of [4, 6] as const)
      sets.push(
        `  set ${siteSetName(g.name, kind, family)} {`,
        `    type ipv${family}_addr; flags timeout; comment ${JSON.stringify(`${g.name}: ${kind === "allow" ? "addresses of allowed sites" : "addresses of denied sites"}, filled by the DNS filter`)};`,
        "  }",
      );
    const members = state.peers.filter((p) => p.group === g.name);
    if (members.length === 0) continue;
    const v4 = members.map((p) => p.ipv4);
    const v6 = members.flatMap((p) => {
      const global = peerGlobalIpv6(state.hub, p);
      return global === undefined ? [canonicalIpv6(p.ipv6)] : [canonicalIpv6(p.ipv6), global];
    });
    const why = JSON.stringify(
      kind === "allow" ? `${g.name}: only allowed sites` : `${g.name}: denied sites`,
    );
    const cmp = kind === "allow" ? "!= " : "";
    rules.push(
      `    iifname ${wg} oifname != ${wg} ip saddr { ${v4.join(", ")} } ip daddr ${cmp}@${siteSetName(g.name, kind, 4)} drop comment ${why}`,
      `    iifname ${wg} oifname != ${wg} ip6 saddr { ${v6.join(", ")} } ip6 daddr ${cmp}@${siteSetName(g.name, kind, 6)} drop comment ${why}`,
    );
  }
  return [
    `table inet ${table} {`,
    ...sets,
    "  chain forward {",
    "    type filter hook forward priority filter - 5; policy accept;",
    "  }",
    "}",
    `flush chain inet ${table} forward`,
    `table inet ${table} {`,
    "  chain forward {",
    "    ct state established,related accept",
    ...rules,
    "  }",
    "}",
    "",
  ].join("\n");
}
