/**
 * Blocklists: strict parsing of the two common formats (hosts files, plain domain lists) and the rule that
 * combines them with the allow and deny lists. Pure; fetching lives in blocklist-fetch.ts.
 *
 * Strict means every kept entry is a valid lowercase domain (so nothing can reach unbound's config but dotted
 * labels) and a source with many lines that are neither format is rejected as a whole: that is what an HTML
 * error page or a captive portal looks like, and loading it would silently switch the filter off.
 */
import { DOMAIN_PATTERN } from "../../model/rules";

const DOMAIN = new RegExp(DOMAIN_PATTERN);
const SINK_ADDRESSES = new Set(["0.0.0.0", "127.0.0.1", "::", "::1", "0", "0:0:0:0:0:0:0:0"]);
/** Names hosts files map for the local machine, not to block anything. */
const HOSTS_BOILERPLATE = new Set([
  "localhost",
  "localhost.localdomain",
  "local",
  "broadcasthost",
  "ip6-localhost",
  "ip6-loopback",
  "0.0.0.0",
]);

export interface ParsedBlocklist {
  readonly domains: string[];
  /** Lines that were neither a comment, a hosts entry nor a domain. */
  readonly invalidLines: number;
  readonly firstInvalid?: string;
}

export function normalizeDomain(raw: string): string | undefined {
  const d = raw.toLowerCase().replace(/\.$/, "");
  return d.includes(".") && DOMAIN.test(d) ? d : undefined;
}

export function parseBlocklist(text: string): ParsedBlocklist {
  const domains: string[] = [];
  let invalidLines = 0;
  let firstInvalid: string | undefined;
  const bad = (line: string) => {
    invalidLines++;
    firstInvalid ??= line.slice(0, 120);
  };
  // Line by line with indexOf rather than split(): a million-line list would otherwise exist twice in memory.
  for (let start = 0; start < text.length;) {
    let end = text.indexOf("\n", start);
    if (end === -1) end = text.length;
    const rawLine = text.slice(start, end);
    start = end + 1;
    const line = rawLine.replace(/#.*$/, "").trim();
    if (line === "") continue;
    const tokens = line.split(/[ \t]+/);
    if (tokens.length === 1) {
      const d = normalizeDomain(tokens[0]);
      if (d) domains.push(d);
      else bad(line);
      continue;
    }
    if (!SINK_ADDRESSES.has(tokens[0])) {
      bad(line);
      continue;
    }
    for (const token of tokens.slice(1)) {
      if (HOSTS_BOILERPLATE.has(token.toLowerCase())) continue;
      const d = normalizeDomain(token);
      if (d) domains.push(d);
      else bad(line);
    }
  }
  return { domains, invalidLines, firstInvalid };
}

/** Why a parsed source must not replace the last good copy, or undefined when it is fine. */
export function rejectReason(parsed: ParsedBlocklist): string | undefined {
  const total = parsed.domains.length + parsed.invalidLines;
  if (parsed.domains.length === 0) return "it holds no domains";
  if (parsed.invalidLines > 10 && parsed.invalidLines > total * 0.05) {
    return `${parsed.invalidLines} of ${total} entries are neither hosts-file nor domain-list lines (first: ${JSON.stringify(parsed.firstInvalid)})`;
  }
  return undefined;
}

function isUnder(domain: string, parent: string): boolean {
  return domain === parent || domain.endsWith(`.${parent}`);
}

/** The parent domains of d, nearest first: a.b.c → b.c, c */
function parents(d: string): string[] {
  const labels = d.split(".");
  return labels.slice(1).map((_, i) => labels.slice(i + 1).join("."));
}

/** Whether any parent of d is in the set, without building arrays (this runs a million times per refresh). */
function hasParentIn(d: string, set: ReadonlySet<string>): boolean {
  if (set.size === 0) return false;
  for (let dot = d.indexOf("."); dot !== -1; dot = d.indexOf(".", dot + 1)) {
    if (set.has(d.slice(dot + 1))) return true;
  }
  return false;
}

export interface DnsFilter {
  /** Refused, with everything below them. */
  readonly blocked: string[];
  /** Allowed names that sit under a blocked one: answered normally. */
  readonly exempt: string[];
}

/**
 * Blocklists ∪ deny, minus allow. An allowed domain exempts itself and its subdomains from the blocklists;
 * deny always applies (a user's own deny beats a list's inclusion and their own allow is checked for conflicts
 * at the edge). Entries under an already blocked parent are dropped: unbound's local-zone covers subdomains,
 * and fewer zones means less memory.
 */
export function buildDnsFilter(
  lists: readonly (readonly string[])[],
  allow: readonly string[],
  deny: readonly string[],
): DnsFilter {
  const allowSet = new Set(allow);
  const allowedByParent = (d: string) => allowSet.has(d) || hasParentIn(d, allowSet);
  const candidates = new Set<string>();
  for (const list of lists) for (const d of list) if (!allowedByParent(d)) candidates.add(d);
  for (const d of deny) candidates.add(d);
  const blocked = [...candidates].filter((d) => !hasParentIn(d, candidates)).sort();
  const blockedSet = new Set(blocked);
  const exempt = allow
    .filter((a) => parents(a).some((p) => blockedSet.has(p)) && !deny.some((d) => isUnder(a, d)))
    .sort();
  return { blocked, exempt };
}
