/**
 * What `npm run plan` (and `pulumi stack output groupPolicies`) shows of each group's site policy: the group's
 * own blocklists, allow and deny entries and its site mode (README "Per-group site policies"). Groups without
 * any are left out. Nothing here is secret: the same lists are in the stack file.
 */
import type { HubConfig } from "./config";
import type { SiteMode } from "../model/state";

export interface GroupPolicySummary {
  readonly sites: SiteMode;
  readonly allow: readonly string[];
  readonly deny: readonly string[];
  readonly blocklists: readonly string[];
}

export function groupPolicies(config: Pick<HubConfig, "groups">): Record<string, GroupPolicySummary> {
  const out: Record<string, GroupPolicySummary> = {};
  for (const g of config.groups) {
    if (g.sites === "open" && g.allow.length + g.deny.length + g.blocklists.length === 0) continue;
    out[g.name] = { sites: g.sites, allow: [...g.allow], deny: [...g.deny], blocklists: [...g.blocklists] };
  }
  return out;
}
