/**
 * What the DNS filter decides for one query, and for whom: `decide(name, qtype, client)`. The filter server
 * (dns-filter-server.ts) calls it with the asking address as it arrived: the tunnel's redirect is a DNAT in
 * prerouting, which rewrites the destination only, so a device's query keeps its tunnel source address. The
 * device's group is looked up by that address from the state (`clientsOf`, filter-clients.ts); the hub's own
 * queries (the TCP path's relay asks from the hub's tunnel address) and unknown addresses have no group.
 *
 * Today every group gets the hub-wide table. Per-group tables (issue 14, per-group policies) are consulted here,
 * before the hub-wide one, keyed by `group`.
 */
import type { FilterTable, Verdict } from "./dns-filter-table";
import { clientKey, type Clients } from "./filter-clients";
import { groupVerdict, type GroupSitePolicy } from "./site-policy";

export interface FilterPolicy {
  /** The hub-wide table: the hub's lists, allow and deny. */
  readonly table: FilterTable;
  readonly clients: Clients;
  /** Groups with their own lists or a site mode (site-policy.ts); the others get the hub-wide table alone. */
  readonly groups?: ReadonlyMap<string, GroupSitePolicy>;
}

/** The group of the device asking from `client`, or undefined (the hub itself, an address no device has). */
export function groupOf(policy: FilterPolicy, client: string): string | undefined {
  return policy.clients.get(clientKey(client))?.group;
}

/**
 * The verdict on one query. `qtype` is the question's type (1 A, 28 AAAA, ...): a per-group allow list may
 * answer some types and not others; the hub-wide table refuses every type of a listed name.
 */
export function decide(policy: FilterPolicy, name: string, qtype: number, client: string): Verdict {
  return verdictFor(policy, groupOf(policy, client), name, qtype);
}

/** The verdict for a group's device (undefined: the hub itself or an unknown address). */
function verdictFor(policy: FilterPolicy, group: string | undefined, name: string, _qtype: number): Verdict {
  const g = group === undefined ? undefined : policy.groups?.get(group);
  if (g !== undefined) return groupVerdict(g, name, () => policy.table.verdict(name));
  return policy.table.verdict(name);
}
