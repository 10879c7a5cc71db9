/**
 * Which names may be an allow, deny or blocklist entry: a rule for the stack config, the hub state and the
 * blocklist parser alike, so a name the config accepts is never refused on the hub and a list can never do what
 * the config refuses.
 *
 * Every entry becomes an unbound local-zone that covers the name and everything below it, so an entry that is
 * too high in the tree does damage far beyond the user's intent:
 * - `pal` and anything under it: the zone of the device names; `hub.pal` as a refuse-zone would replace the
 *   hub's own record and `pal` would remove the zone every `<device>.pal` lives in;
 * - `arpa` and below (RFC 3172): reverse lookups and infrastructure, incl. `home.arpa` (RFC 8375);
 * - special-use names that never reach public DNS: `localhost` and `invalid` (RFC 6761 sections 6.3, 6.4:
 *   resolvers answer them themselves), `local` (RFC 6762 section 3: multicast DNS only) and `onion` (RFC 7686);
 *   `test` and `example` (RFC 6761 sections 6.2, 6.5) are resolved like any name, so names under them are kept;
 * - a single label (a whole top-level domain) and a public suffix alone (`co.uk`, `com.au`): blocking one
 *   blocks every registrant under it. The suffixes are the ICANN section of the Public Suffix List, bundled in
 *   `tldts-icann` (no fetch at run time); the private section (`github.io`) names ordinary registrations that a
 *   user may well mean to block.
 */
import { getPublicSuffix } from "tldts-icann";
import { LAYOUT } from "./layout";

/** Zones no entry may be, or be under. */
export const RESERVED_ZONES: readonly string[] = [
  LAYOUT.dnsZone,
  "arpa",
  "localhost",
  "local",
  "invalid",
  "onion",
];

function under(name: string, zone: string): boolean {
  return name === zone || name.endsWith(`.${zone}`);
}

/**
 * Why a domain (already a valid lowercase name, model/rules.ts DOMAIN_PATTERN) cannot be a filter entry, as the
 * tail of a sentence "'field' (value) …", or undefined when it can.
 */
export function filterEntryProblem(name: string): string | undefined {
  const zone = RESERVED_ZONES.find((z) => under(name, z));
  if (zone === LAYOUT.dnsZone)
    return `is in '${zone}', the zone of the device names, which the filter must never touch: remove it`;
  if (zone !== undefined)
    return `is in '${zone}', a reserved zone (RFC 3172, 6761, 6762, 7686) that public DNS never answers: remove it`;
  if (!name.includes(".")) return "is a whole top-level domain: name the domain itself, e.g. ads.example.com";
  // Only names it knows: for an unknown top-level domain tldts answers with the last label, i.e. never the name.
  if (getPublicSuffix(name, { extractHostname: false, validateHostname: false }) === name)
    return "is a public suffix (Public Suffix List, ICANN section) shared by every domain under it: name the domain itself, e.g. ads.example.co.uk";
  return undefined;
}

/** The same rule as a filter, for the blocklist parser: runs once per entry of lists with millions of them. */
export function isFilterEntry(name: string): boolean {
  return filterEntryProblem(name) === undefined;
}
