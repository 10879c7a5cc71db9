/**
 * Per-group site policies in the DNS filter (model/state.ts SiteMode; README "Per-group site policies"):
 * what a group's device may resolve, and the nft sets (site-policy-nft.ts) the filter keeps filled so the
 * firewall holds the same line.
 *
 * The verdict for a device of group G (groupVerdict), in order:
 * 1. names in the device zone (`pal`) always pass;
 * 2. G in "allow-list" mode: a name under one of G's `allow` entries passes, every other name is REFUSED;
 * 3. under one of G's `deny` entries: refused; under one of G's `allow` entries: passes (G's allow wins over
 *    the hub's lists and the hub's deny, for G only);
 * 4. the hub-wide verdict (the hub's deny, allow, blocklists);
 * 5. G's own blocklists: refused.
 * REFUSED, not NXDOMAIN, as the hub's filter answers: a client sees at once that policy, not the name, is the
 * reason, and no negative answer is cached for a name that exists.
 *
 * The sets:
 * - allow-list groups: every A and AAAA record in the answer to an allowed name goes into the group's allow
 *   set with `timeout` = the record's TTL (at least MIN_TIMEOUT_S), BEFORE the answer is sent to the device,
 *   so its first SYN meets the address already there.
 * - deny groups: the filter resolves each `deny` entry itself, through unbound, and keeps its addresses in the
 *   group's deny set, each for its TTL (at least MIN_TIMEOUT_S) plus a margin, asking again before they expire;
 *   a denied name a device asks for (a subdomain of an entry, say) is resolved and added the same way.
 * Updates are batched: the set changes waiting at one moment become one transaction of one persistent `nft -i`
 * (NftSession), and an address already in the set for longer than the new answer would keep it costs nothing.
 * Groups without a site mode never reach this code beyond one Map lookup.
 */
import * as dgram from "dgram";
import * as net from "net";
import { LAYOUT } from "../../model/layout";
import { canonicalIpv6 } from "../../model/ip-text";
import type { HubState } from "../../model/state";
import { realRunner, spawnSession, type Runner } from "../../lib/runner";
import { statSync } from "fs";
import { storedListPath } from "./blocklist-fetch";
import { countLinesAsync, FilterTable, FilterTableBuilder, type Verdict } from "./dns-filter-table";
import { siteSetName, sitesTable, enforcedSiteGroups } from "./site-policy-nft";
import { clientKey, type Clients } from "./filter-clients";

/** The shortest time an address stays in a set: a device may connect a moment after a short TTL ended. */
export const MIN_TIMEOUT_S = 30;
/** Deny addresses stay this much longer than their TTL; the name is asked again when the TTL ends. */
const DENY_MARGIN_S = 10;

const DEVICE_ZONE = LAYOUT.dnsZone;

/** A group's lists in the filter: names as entries (a few, from the state), and its blocklists' table. */
export interface GroupSitePolicy {
  readonly name: string;
  readonly sites: "open" | "deny" | "allow-list";
  readonly allow: ReadonlySet<string>;
  readonly deny: ReadonlySet<string>;
  /** The group's own blocklists as a hash table (dns-filter-table.ts), or undefined when it has none. */
  readonly blocked?: FilterTable;
  /** Whether the firewall enforces the mode (vpn mode, internet on): then the sets are kept filled. */
  readonly enforced: boolean;
}

/** Whether `name` is an entry of `entries` or under one. */
export function underAny(entries: ReadonlySet<string>, name: string): boolean {
  if (entries.size === 0) return false;
  for (let n = name; ;) {
    if (entries.has(n)) return true;
    const dot = n.indexOf(".");
    if (dot === -1) return false;
    n = n.slice(dot + 1);
  }
}

function normal(qname: string): string {
  const n = qname.toLowerCase();
  return n.endsWith(".") ? n.slice(0, -1) : n;
}

/** The group's verdict on `qname` (see the file comment); `hub` is the hub-wide table's verdict. */
export function groupVerdict(g: GroupSitePolicy, qname: string, hub: () => Verdict): Verdict {
  const name = normal(qname);
  if (name === DEVICE_ZONE || name.endsWith(`.${DEVICE_ZONE}`)) return "pass";
  if (g.sites === "allow-list") return underAny(g.allow, name) ? "pass" : "refuse";
  if (underAny(g.deny, name)) return "refuse";
  if (underAny(g.allow, name)) return "pass";
  if (hub() === "refuse") return "refuse";
  if (g.blocked !== undefined && g.blocked.verdict(name) === "refuse") return "refuse";
  return "pass";
}

/** The policies of the groups that have any (own lists or a site mode), by group name. */
export function groupSitePolicies(
  state: HubState,
  blockedTable: (urls: readonly string[], group: string) => FilterTable | undefined = () => undefined,
): Map<string, GroupSitePolicy> {
  const enforced = new Set(enforcedSiteGroups(state).map((g) => g.name));
  const out = new Map<string, GroupSitePolicy>();
  for (const g of state.groups) {
    const lists = (g.allow?.length ?? 0) + (g.deny?.length ?? 0) + (g.blocklists?.length ?? 0);
    if (lists === 0 && g.sites === undefined) continue;
    const blocked = (g.blocklists?.length ?? 0) > 0 ? blockedTable(g.blocklists ?? [], g.name) : undefined;
    out.set(g.name, {
      name: g.name,
      sites: g.sites ?? "open",
      allow: new Set(g.allow ?? []),
      deny: new Set(g.deny ?? []),
      ...(blocked !== undefined ? { blocked } : {}),
      enforced: enforced.has(g.name),
    });
  }
  return out;
}

/** The hub's blocklist URLs and every group's, once each: what the refresh downloads. */
export function allBlocklistUrls(state: HubState): string[] {
  return [...new Set([...state.dns.blocklists, ...state.groups.flatMap((g) => g.blocklists ?? [])])];
}

/** One address record of an answer. */
export interface AddressRecord {
  readonly family: 4 | 6;
  readonly address: string;
  readonly ttl: number;
}

/** Skips a (possibly compressed) name at `at`; returns the offset after it, or -1. */
function skipName(msg: Buffer, at: number): number {
  for (let hops = 0; hops < 128; hops++) {
    if (at >= msg.length) return -1;
    const len = msg[at];
    if (len === 0) return at + 1;
    if ((len & 0xc0) === 0xc0) return at + 2 <= msg.length ? at + 2 : -1;
    if ((len & 0xc0) !== 0) return -1;
    at += 1 + len;
  }
  return -1;
}

/** Every A and AAAA record in the answer section of a DNS response (CNAME chains included, as unbound sends). */
export function answerAddresses(msg: Buffer): AddressRecord[] {
  if (msg.length < 12 || (msg[2] & 0x80) === 0 || (msg[3] & 0x0f) !== 0) return [];
  const qd = msg.readUInt16BE(4);
  const an = msg.readUInt16BE(6);
  let at = 12;
  for (let i = 0; i < qd; i++) {
    at = skipName(msg, at);
    if (at < 0 || at + 4 > msg.length) return [];
    at += 4;
  }
  const out: AddressRecord[] = [];
  for (let i = 0; i < an; i++) {
    at = skipName(msg, at);
    if (at < 0 || at + 10 > msg.length) return out;
    const type = msg.readUInt16BE(at);
    const cls = msg.readUInt16BE(at + 2);
    const ttl = msg.readUInt32BE(at + 4);
    const len = msg.readUInt16BE(at + 8);
    at += 10;
    if (at + len > msg.length) return out;
    if (cls === 1 && type === 1 && len === 4)
      out.push({ family: 4, address: [...msg.subarray(at, at + 4)].join("."), ttl });
    if (cls === 1 && type === 28 && len === 16) {
      const groups: string[] = [];
      for (let j = 0; j < 16; j += 2) groups.push(msg.readUInt16BE(at + j).toString(16));
      out.push({ family: 6, address: canonicalIpv6(groups.join(":")), ttl });
    }
    at += len;
  }
  return out;
}

/** A recursion-desired query for `name` and `qtype`, with `id`. */
export function queryMessage(name: string, qtype: number, id: number): Buffer {
  const labels = name.split(".").filter((l) => l.length > 0);
  const parts = [Buffer.from([id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0])];
  for (const l of labels) parts.push(Buffer.from([l.length]), Buffer.from(l, "latin1"));
  parts.push(Buffer.from([0, qtype >> 8, qtype & 0xff, 0, 1]));
  return Buffer.concat(parts);
}

/** Runs one `nft -f -` script; rejects when nft fails. */
export type NftScriptRunner = (script: string) => Promise<void>;

/** `nft -f -` through the one process runner; quiet (a line per batch would flood the journal). */
export function nftScriptRunner(runner: Runner = realRunner(() => undefined)): NftScriptRunner {
  return async (script) => {
    await runner.run("nft", ["-f", "-"], { input: script, timeoutMs: 5000 });
  };
}

/**
 * Not a command: nft answers it with a syntax error on stderr that echoes the line, after any error of the
 * batch before it. Errors and the marker then come in order on one stream.
 */
const MARKER = "cloudpal-batch-end";

/**
 * One persistent `nft -i` for all set updates. A batch is written as ONE line of commands separated by ';', which
 * nft sends as one transaction (a failing command fails the whole line), followed by MARKER. The batch is done
 * when nft echoes MARKER in its error for it; an `Error:` line before that one is the batch's. An `nft -f -` per
 * batch costs a process start (20-30 ms here, bench/site-sets.ts); this costs nft's own work (under 1 ms). The
 * session is started again after it dies; a batch without an answer in 5 s kills it.
 */
export class NftSession {
  private child?: ReturnType<typeof spawnSession>;
  private waiting: { resolve: () => void; reject: (e: Error) => void; timer: NodeJS.Timeout }[] = [];
  private err = "";
  private errors: string[] = [];

  constructor(
    private readonly command: readonly string[] = ["nft", "-i"],
    private readonly log: (line: string) => void = () => undefined,
  ) {}

  readonly run: NftScriptRunner = (script) =>
    new Promise<void>((resolve, reject) => {
      const child = this.ensure();
      const line = script
        .split("\n")
        .map((l) => l.trim())
        .filter((l) => l.length > 0)
        .join("; ");
      const timer = setTimeout(() => {
        this.log("[!] nft -i gave no answer in 5 s: starting it again");
        child.kill("SIGKILL");
      }, 5000);
      this.waiting.push({ resolve, reject, timer });
      child.stdin.write(`${line}\n${MARKER}\n`);
    });

  close(): void {
    this.child?.stdin.end();
    this.child = undefined;
  }

  private ensure(): ReturnType<typeof spawnSession> {
    if (this.child !== undefined) return this.child;
    const [cmd, ...args] = this.command;
    const child = spawnSession(cmd, args, this.log);
    this.child = child;
    child.stdout.resume();
    child.stderr.on("data", (d: Buffer) => {
      this.err += d.toString();
      for (let i = this.err.indexOf("\n"); i !== -1; i = this.err.indexOf("\n")) {
        const line = this.err.slice(0, i);
        this.err = this.err.slice(i + 1);
        if (line.startsWith("Error:")) this.errors.push(line);
        if (line !== MARKER) continue;
        // The last error is the marker's own; any before it is the batch's.
        const batch = this.errors.slice(0, -1);
        this.errors = [];
        const w = this.waiting.shift();
        if (w === undefined) continue;
        clearTimeout(w.timer);
        if (batch.length > 0) w.reject(new Error(batch[0]));
        else w.resolve();
      }
    });
    const gone = (why: string) => {
      if (this.child !== child) return;
      this.child = undefined;
      this.err = "";
      this.errors = [];
      for (const w of this.waiting.splice(0)) {
        clearTimeout(w.timer);
        w.reject(new Error(`nft -i ${why}`));
      }
    };
    child.on("exit", (code, signal) => gone(`exited (${signal ?? code})`));
    child.on("error", (e) => gone(e.message));
    return child;
  }
}

/**
 * The sets the filter fills, with batching: `add()` calls made while no `nft` runs go into the next one
 * transaction; each call's promise settles when its transaction did. An element is re-added (its timeout
 * renewed) only when the new timeout would outlast what the set already holds.
 */
export class SiteSets {
  private readonly known = new Map<string, number>();
  private queue: { line: string; done: (e?: Error) => void }[] = [];
  private running = false;
  readonly stats = { batches: 0, elements: 0, skipped: 0, failures: 0 };

  constructor(
    private readonly agentTable: string,
    private readonly run: NftScriptRunner = nftScriptRunner(),
    private readonly now: () => number = Date.now,
    private readonly log: (line: string) => void = () => undefined,
  ) {}

  /** Forgets what it added (a changed state may have deleted and made the table again). */
  forget(): void {
    this.known.clear();
  }

  /** Puts `records` in the group's `kind` set, each for max(TTL, MIN_TIMEOUT_S) + `extra` seconds. */
  add(group: string, kind: "allow" | "deny", records: readonly AddressRecord[], extra = 0): Promise<void> {
    const table = sitesTable(this.agentTable);
    const lines: string[] = [];
    const now = this.now();
    for (const r of records) {
      const timeout = Math.max(r.ttl, MIN_TIMEOUT_S) + extra;
      const set = siteSetName(group, kind, r.family);
      const key = `${set} ${r.address}`;
      const until = now + timeout * 1000;
      // Already there for at least as long (less a second of slack for the nft round trip): nothing to do.
      if ((this.known.get(key) ?? 0) >= until - 1000) {
        this.stats.skipped++;
        continue;
      }
      this.known.set(key, until);
      const el = `inet ${table} ${set} { ${r.address}`;
      // add, delete, add: one transaction that creates the element or renews its timeout either way. Before
      // Linux 6.12 an add alone succeeds on an existing element but keeps its old timeout (Debian 12 runs 6.1;
      // crowdsecurity/cs-firewall-bouncer#509). The packet path sees only the transaction's end state.
      lines.push(
        `add element ${el} timeout ${timeout}s }`,
        `delete element ${el} }`,
        `add element ${el} timeout ${timeout}s }`,
      );
      this.stats.elements++;
    }
    if (lines.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.queue.push({
        line: lines.join("\n"),
        done: (e) => {
          if (e !== undefined) {
            this.stats.failures++;
            // All, not only this batch's: an error reported late may have belonged to the batch before.
            this.known.clear();
            this.log(`[!] site policy: could not update ${group}'s ${kind} set: ${e.message}`);
          }
          // Settles either way: a failed update must not withhold the answer (for allow-list groups the
          // firewall then drops the connection, which is the safe side).
          resolve();
        },
      });
      if (!this.running) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.running = true;
    while (this.queue.length > 0) {
      // At most 64 answers a transaction: one nft -i line stays a few kilobytes.
      const batch = this.queue.splice(0, 64);
      this.stats.batches++;
      let error: Error | undefined;
      try {
        await this.run(batch.map((b) => b.line).join("\n") + "\n");
      } catch (e) {
        error = e as Error;
      }
      for (const b of batch) b.done(error);
    }
    this.running = false;
  }
}

/** Asks unbound for the A and AAAA records of `name` (from loopback, as the filter forwards). */
export function resolveAddresses(
  name: string,
  upstream: { address: string; port: number },
  timeoutMs = 3000,
): Promise<AddressRecord[]> {
  return new Promise((resolve) => {
    const v6 = net.isIPv6(upstream.address);
    const socket = dgram.createSocket(v6 ? "udp6" : "udp4");
    const out: AddressRecord[] = [];
    let answered = 0;
    const ids = [Math.floor(Math.random() * 0xffff), Math.floor(Math.random() * 0xffff)];
    const done = () => {
      clearTimeout(timer);
      socket.close();
      resolve(out);
    };
    const timer = setTimeout(done, timeoutMs);
    socket.on("error", done);
    socket.on("message", (m) => {
      if (m.length < 12 || !ids.includes(m.readUInt16BE(0))) return;
      out.push(...answerAddresses(m));
      if (++answered === 2) done();
    });
    socket.bind(0, v6 ? "::1" : "127.0.0.1", () => {
      socket.send(queryMessage(name, 1, ids[0]), upstream.port, upstream.address);
      socket.send(queryMessage(name, 28, ids[1]), upstream.port, upstream.address);
    });
  });
}

/**
 * Keeps the deny sets filled: each deny entry of each enforced deny group is resolved now and again when its
 * shortest TTL (at least MIN_TIMEOUT_S) ends; `refused()` resolves a denied name a device asked for.
 */
export class DenyResolver {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private generation = 0;
  private readonly recent = new Map<string, number>();

  constructor(
    private readonly sets: SiteSets,
    private readonly upstream: { address: string; port: number },
    private readonly resolve: typeof resolveAddresses = resolveAddresses,
  ) {}

  start(policies: ReadonlyMap<string, GroupSitePolicy>): void {
    this.stop();
    for (const g of policies.values()) {
      if (!g.enforced || g.sites !== "deny") continue;
      for (const name of g.deny) void this.keep(g.name, name);
    }
  }

  stop(): void {
    this.generation++;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }

  /** A device of `group` asked for a denied `name`: its addresses go in the deny set too (once a TTL). */
  refused(group: string, name: string): void {
    const key = `${group} ${name}`;
    if ((this.recent.get(key) ?? 0) > Date.now()) return;
    this.recent.set(key, Date.now() + MIN_TIMEOUT_S * 1000);
    if (this.recent.size > 10_000) this.recent.clear();
    void this.resolve(name, this.upstream).then((r) => this.sets.add(group, "deny", r, DENY_MARGIN_S));
  }

  private async keep(group: string, name: string): Promise<void> {
    const generation = this.generation;
    const records = await this.resolve(name, this.upstream);
    if (generation !== this.generation) return;
    await this.sets.add(group, "deny", records, DENY_MARGIN_S);
    const ttl = records.length > 0 ? Math.min(...records.map((r) => r.ttl)) : 0;
    const t = setTimeout(() => void this.keep(group, name), Math.max(ttl, MIN_TIMEOUT_S) * 1000);
    t.unref();
    this.timers.set(`${group} ${name}`, t);
  }
}

/**
 * The groups' own blocklists as hash tables, one per group, from the copies the refresh stored
 * (blocklist-fetch.ts); a list not downloaded yet adds nothing until the refresh after the apply that named it.
 *
 * Built in the filter process, which answers DNS meanwhile: so a group's table is rebuilt only when its URLs
 * change or its stored copies are other files than it was built from (a refresh renames new ones in), never for
 * a device added or moved, and in slices (addBlockedFileAsync). Until the new table is ready the group's last
 * one serves, as the hub's table does during a swap: at the filter's start a group has none for those seconds
 * (the hub-wide table applies; before the start, with the redirect off, nothing was filtered at all). `onBuilt`
 * runs when a table is ready, for the caller to apply the policies again. A build that fails is logged once and
 * tried again only when the URLs or the stored copies change.
 */
export class GroupTables {
  /** By group: its table in use and what it was built from (URLs and stored copies, `what`). */
  private readonly tables = new Map<string, { readonly what: string; readonly table?: FilterTable }>();
  /** By group: what the latest build started for it is for; an older build that ends later is dropped. */
  private readonly building = new Map<string, string>();
  /** By group: what its last failed build was for. */
  private readonly failed = new Map<string, string>();
  /** Tables built so far (for tests and the log). */
  builds = 0;

  constructor(
    private readonly blocklistDir: string,
    private readonly maxEntries: number,
    private readonly onBuilt: () => void,
    private readonly log: (line: string) => void = () => {},
  ) {}

  /** The group's table now (maybe of older lists or copies, or none yet); starts a build when they changed. */
  get(group: string, urls: readonly string[]): FilterTable | undefined {
    const what = `${urls.join("\n")}\0${this.identity(urls)}`;
    const have = this.tables.get(group);
    if (have?.what !== what && this.building.get(group) !== what && this.failed.get(group) !== what)
      void this.build(group, urls, what);
    return have?.table;
  }

  /** Forgets the tables of groups that have no blocklists any more (or are gone). */
  keepOnly(groups: readonly string[]): void {
    const used = new Set(groups);
    for (const g of [...this.tables.keys(), ...this.failed.keys()])
      if (!used.has(g)) {
        this.tables.delete(g);
        this.failed.delete(g);
      }
  }

  /** Which files the stored copies are now: inode, size and mtime of each ("-" for one not stored yet). */
  private identity(urls: readonly string[]): string {
    return urls
      .map((url) => {
        try {
          const st = statSync(storedListPath(this.blocklistDir, url));
          return `${st.ino}:${st.size}:${st.mtimeMs}`;
        } catch {
          return "-";
        }
      })
      .join(",");
  }

  private async build(group: string, urls: readonly string[], what: string): Promise<void> {
    this.building.set(group, what);
    let table: FilterTable | undefined;
    try {
      // Its first turn comes after get() returned: a build that fails at once cannot call back into get().
      await new Promise<void>((resolve) => setImmediate(resolve));
      const b = new FilterTableBuilder(this.maxEntries);
      const paths = urls.map((url) => storedListPath(this.blocklistDir, url));
      let lines = 0;
      for (const file of paths) lines += await countLinesAsync(file);
      b.reserveBlocked(lines);
      let names = 0;
      for (const file of paths) names += await b.addBlockedFileAsync(file);
      table = names > 0 ? b.finishTable() : undefined;
    } catch (e) {
      if (this.building.get(group) === what) {
        this.building.delete(group);
        this.failed.set(group, what);
        this.log(
          `[!] group ${group}: its blocklist table was not rebuilt, the last one serves: ${(e as Error).message}`,
        );
      }
      return;
    }
    if (this.building.get(group) !== what) return; // a newer build for the group runs
    this.building.delete(group);
    this.failed.delete(group);
    this.tables.set(group, table === undefined ? { what } : { what, table });
    this.builds++;
    this.onBuilt();
  }
}

/**
 * What the filter server asks on its hot path. For a device whose group has no site policy each call is one
 * Map lookup that finds nothing.
 */
export class SitePolicyRuntime {
  private groups: ReadonlyMap<string, GroupSitePolicy> = new Map();

  constructor(
    private readonly sets: SiteSets,
    private readonly deny: DenyResolver,
    private readonly groupOf: (client: string) => string | undefined,
  ) {}

  /** New policies (a new state, or new stored lists): the deny sets are resolved again. */
  update(groups: ReadonlyMap<string, GroupSitePolicy>): void {
    this.groups = groups;
    this.sets.forget();
    this.deny.start(groups);
  }

  policyOf(client: string): GroupSitePolicy | undefined {
    if (this.groups.size === 0) return undefined;
    const group = this.groupOf(client);
    return group === undefined ? undefined : this.groups.get(group);
  }

  /**
   * For a device of an enforced allow-list group: what to run on unbound's answer before it is sent on (its
   * addresses into the group's allow set). Undefined for everyone else: the answer goes on at once.
   */
  learnerFor(client: string): ((answer: Buffer) => Promise<void>) | undefined {
    const g = this.policyOf(client);
    if (g === undefined || !g.enforced || g.sites !== "allow-list") return undefined;
    return (answer) => this.sets.add(g.name, "allow", answerAddresses(answer));
  }

  /** A query was refused: a denied name asked by a device of an enforced deny group is resolved into its set. */
  refused(client: string, qname: string): void {
    const g = this.policyOf(client);
    if (g === undefined || !g.enforced || g.sites !== "deny") return;
    const name = normal(qname);
    if (underAny(g.deny, name)) this.deny.refused(g.name, name);
  }

  stop(): void {
    this.deny.stop();
  }
}

/**
 * The filter process's site policies: the runtime the server calls, and `load(state)`, which (re)builds the
 * groups' policies from a state and the stored lists and returns them for the server's verdicts.
 */
export function filterSitePolicies(o: {
  readonly agentTable: string;
  readonly blocklistDir: string;
  readonly maxEntries: number;
  readonly upstream: { readonly address: string; readonly port: number };
  readonly log: (line: string) => void;
  readonly run?: NftScriptRunner;
  /** The groups' policies again, once a group's blocklist table has been (re)built in the background. */
  readonly rebuilt: (groups: Map<string, GroupSitePolicy>) => void;
}): {
  runtime: SitePolicyRuntime;
  /** The groups' policies for a state; `clients` is clientsOf(state), which the caller has built already. */
  load(state: HubState, clients: Clients): Map<string, GroupSitePolicy>;
} {
  let latest: { state: HubState; clients: Clients } | undefined;
  const sets = new SiteSets(o.agentTable, o.run ?? new NftSession(["nft", "-i"], o.log).run, Date.now, o.log);
  const runtime = new SitePolicyRuntime(
    sets,
    new DenyResolver(sets, o.upstream),
    (c) => latest?.clients.get(clientKey(c))?.group,
  );
  const load = (state: HubState, clients: Clients): Map<string, GroupSitePolicy> => {
    latest = { state, clients };
    tables.keepOnly(state.groups.filter((g) => (g.blocklists?.length ?? 0) > 0).map((g) => g.name));
    const groups = groupSitePolicies(state, (urls, group) => tables.get(group, urls));
    runtime.update(groups);
    return groups;
  };
  const tables = new GroupTables(
    o.blocklistDir,
    o.maxEntries,
    () => {
      if (latest !== undefined) o.rebuilt(load(latest.state, latest.clients));
    },
    o.log,
  );
  return { runtime, load };
}
