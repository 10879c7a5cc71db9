/**
 * Blocklists: strict parsing of the two common formats (hosts files, plain domain lists) and the rule that
 * combines them with the allow and deny lists. Pure; fetching lives in blocklist-fetch.ts.
 *
 * Strict means every kept entry is a valid lowercase domain (so nothing can reach unbound's config but dotted
 * labels) and a source with many lines that are neither format is rejected as a whole: that is what an HTML
 * error page or a captive portal looks like, and loading it would silently switch the filter off.
 *
 * Hostile input: a list comes from a host the user does not control, so parsing is linear in its length (one
 * indexOf per line and per comment; a regex such as /#.*$/ tries every start position and took 52 s on one
 * line of 180,000 '#' and a '\r'), lines past MAX_LINE_CHARS are skipped without being split, and no list may
 * hold more names than the hub's memory carries (maxBlocklistEntries). Entries the filter must never have
 * (the device zone, reserved zones, public suffixes: model/domain-rules.ts) are dropped and counted apart.
 */
import { totalmem } from "os";
import { isFilterEntry } from "../../model/domain-rules";
import { DNS_MEMORY_SHARE } from "../../model/layout";
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

/**
 * The longest line read: a hosts line names a few domains of at most 253 characters. Longer lines count as
 * invalid and are never split or searched.
 */
export const MAX_LINE_CHARS = 4096;

/**
 * Memory one blocklist name costs with the DNS filter (bench/dns-filter.ts, README "DNS filter"): 8 bytes in the
 * filter's table, twice that while it swaps tables, and the refresh's table builder; measured from 100,000 to
 * 1,000,000 names, about 35 bytes a name over all DNS processes, rounded up.
 */
const BYTES_PER_NAME = 40;
/**
 * What the DNS processes take with no list, also measured there: the filter (Node, ~59 MiB), the refresh's agent
 * (Node, ~81 MiB at its peak) and unbound (~17 MiB).
 */
const DNS_FIXED_BYTES = 150 * 2 ** 20;

/**
 * The most names the filter holds on a hub with `totalBytes` of memory: about 1.4 million on 512 MiB (1.1 million
 * on what the kernel reports of a 512 MB plan), 6 million on 1 GB. Read from the machine itself, so it also fits
 * an `existing` server and a resized plan.
 */
export function maxBlocklistEntries(totalBytes: number = totalmem()): number {
  return Math.max(10_000, Math.floor((totalBytes * DNS_MEMORY_SHARE - DNS_FIXED_BYTES) / BYTES_PER_NAME));
}

export interface ParsedBlocklist {
  readonly domains: string[];
  /** Lines that were neither a comment, a hosts entry nor a domain (too long lines included). */
  readonly invalidLines: number;
  readonly firstInvalid?: string;
  /** Valid names the filter must not have (device zone, reserved zones, public suffixes): dropped. */
  readonly reserved: number;
  /** Whether parsing stopped because the list names more than `maxEntries`. */
  readonly overLimit: boolean;
}

export function normalizeDomain(raw: string): string | undefined {
  const lower = raw.toLowerCase();
  const d = lower.endsWith(".") ? lower.slice(0, -1) : lower;
  return d.includes(".") && DOMAIN.test(d) ? d : undefined;
}

/** Space or tab. */
function isBlank(c: number): boolean {
  return c === 0x20 || c === 0x09;
}

/** `line` (no newline, no comment) split on runs of spaces and tabs, in one pass. */
function tokensOf(line: string): string[] {
  const tokens: string[] = [];
  let at = 0;
  while (at < line.length) {
    while (at < line.length && isBlank(line.charCodeAt(at))) at++;
    const from = at;
    while (at < line.length && !isBlank(line.charCodeAt(at))) at++;
    if (at > from) tokens.push(line.slice(from, at));
  }
  return tokens;
}

/**
 * The parser, fed in chunks: each name is handed to `onDomain` as soon as its line is complete, so a refresh
 * holds one chunk and the names not yet written, never the whole list (blocklist-fetch.ts). Stops taking names
 * once it has more than `maxEntries`.
 */
export class BlocklistParser {
  count = 0;
  invalidLines = 0;
  reserved = 0;
  firstInvalid?: string;
  overLimit = false;
  private rest = "";
  /** Inside a line longer than MAX_LINE_CHARS: skipped up to its newline, never searched. */
  private skipping = false;

  constructor(
    private readonly onDomain: (d: string) => void,
    private readonly maxEntries = Infinity,
  ) {}

  feed(chunk: string): void {
    if (this.overLimit) return;
    const text = this.rest + chunk;
    this.rest = "";
    // Line by line with indexOf rather than split(): a million-line list would otherwise exist twice in memory.
    let start = 0;
    for (;;) {
      if (this.overLimit) return;
      const end = text.indexOf("\n", start);
      if (end === -1) break;
      if (this.skipping) this.skipping = false;
      else this.line(text, start, end);
      start = end + 1;
    }
    if (this.skipping) return;
    if (text.length - start > MAX_LINE_CHARS) {
      this.bad(text.slice(start, start + 120));
      this.skipping = true;
    } else this.rest = text.slice(start);
  }

  end(): void {
    if (!this.overLimit && !this.skipping && this.rest.length > 0) this.line(this.rest, 0, this.rest.length);
    this.rest = "";
  }

  summary(): ParseSummary {
    const { count, invalidLines, firstInvalid, reserved, overLimit } = this;
    return { count, invalidLines, firstInvalid, reserved, overLimit };
  }

  private bad(line: string): void {
    this.invalidLines++;
    this.firstInvalid ??= line.slice(0, 120);
  }

  private keep(d: string): void {
    if (!isFilterEntry(d)) {
      this.reserved++;
      return;
    }
    this.count++;
    this.onDomain(d);
    if (this.count > this.maxEntries) this.overLimit = true;
  }

  private line(text: string, lineStart: number, end: number): void {
    if (end - lineStart > MAX_LINE_CHARS) {
      this.bad(text.slice(lineStart, lineStart + 120));
      return;
    }
    const rawLine = text.slice(lineStart, end);
    // indexOf, not /#.*$/: linear, and it also strips a comment before a CRLF line's '\r'.
    const hash = rawLine.indexOf("#");
    const line = (hash === -1 ? rawLine : rawLine.slice(0, hash)).trim();
    if (line === "") return;
    const tokens = tokensOf(line);
    if (tokens.length === 1) {
      const d = normalizeDomain(tokens[0]);
      if (d) this.keep(d);
      else this.bad(line);
      return;
    }
    if (!SINK_ADDRESSES.has(tokens[0])) {
      this.bad(line);
      return;
    }
    for (let i = 1; i < tokens.length && !this.overLimit; i++) {
      if (HOSTS_BOILERPLATE.has(tokens[i].toLowerCase())) continue;
      const d = normalizeDomain(tokens[i]);
      if (d) this.keep(d);
      else this.bad(line);
    }
  }
}

export function parseBlocklist(text: string, maxEntries = Infinity): ParsedBlocklist {
  const domains: string[] = [];
  const parser = new BlocklistParser((d) => domains.push(d), maxEntries);
  parser.feed(text);
  parser.end();
  const { invalidLines, firstInvalid, reserved, overLimit } = parser;
  return { domains, invalidLines, firstInvalid, reserved, overLimit };
}

/** What a parse found, without the names. */
export interface ParseSummary {
  readonly count: number;
  readonly invalidLines: number;
  readonly firstInvalid?: string;
  readonly reserved: number;
  readonly overLimit: boolean;
}

/** Why a parsed source must not replace the last good copy, or undefined when it is fine. */
export function rejectReason(
  parsed: ParsedBlocklist | ParseSummary,
  maxEntries = Infinity,
): string | undefined {
  const count = "count" in parsed ? parsed.count : parsed.domains.length;
  const total = count + parsed.invalidLines;
  if (parsed.overLimit)
    return `it names more than ${maxEntries} domains, the most this hub's memory holds (README "DNS filter"): use a smaller list`;
  if (count === 0) return "it holds no domains";
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
  /** List names left out because all lists together name more than the hub's memory holds. */
  readonly dropped?: number;
}

/**
 * Blocklists ∪ deny, minus allow. An allowed domain exempts itself and its subdomains from the blocklists;
 * deny always applies (a user's own deny beats a list's inclusion and their own allow is checked for conflicts
 * at the edge). Entries under an already blocked parent are dropped: unbound's local-zone covers subdomains,
 * and fewer zones means less memory. Each list was held to `maxEntries` when it was fetched; several lists
 * together are held to it here (the user's own deny entries always count), the later lists' extra names
 * dropped and counted.
 */
export function buildDnsFilter(
  lists: readonly (readonly string[])[],
  allow: readonly string[],
  deny: readonly string[],
  maxEntries: number = maxBlocklistEntries(),
): DnsFilter {
  const allowSet = new Set(allow);
  const allowedByParent = (d: string) => allowSet.has(d) || hasParentIn(d, allowSet);
  const candidates = new Set<string>(deny);
  let dropped = 0;
  for (const list of lists)
    for (const d of list) {
      if (allowedByParent(d) || candidates.has(d)) continue;
      if (candidates.size >= maxEntries) dropped++;
      else candidates.add(d);
    }
  const blocked = [...candidates].filter((d) => !hasParentIn(d, candidates)).sort();
  const blockedSet = new Set(blocked);
  const exempt = allow
    .filter((a) => parents(a).some((p) => blockedSet.has(p)) && !deny.some((d) => isUnder(a, d)))
    .sort();
  return { blocked, exempt, dropped };
}
