/**
 * The DNS filter's table: every deny, allow and blocklist entry as a keyed 64-bit hash, in three sorted arrays
 * in one file the filter (dns-filter-server.ts) reads whole. 1,000,000 names take 8 MB, against ~430 MiB as
 * unbound local-zones (README "DNS filter").
 *
 * A name is judged by hashing each of its suffixes with two or more labels (and at most as many labels as the
 * longest entry): a deny hit refuses it, else an allow hit lets it through, else a blocklist hit refuses it.
 * So an entry covers itself and everything below it, an allow entry exempts a name under a blocked parent, and a
 * deny entry wins over both, as the local-zone rules did (blocklist.ts buildDnsFilter). Names in the device
 * zone are never refused (they were never entries: model/domain-rules.ts), checked before any hash.
 *
 * The hash is the first 8 bytes of SHA-256(key ‖ name) with a random 16-byte key per table, kept in the file:
 * a list cannot be crafted to collide with a chosen name without knowing the key, and the chance that an
 * unlisted name collides by accident is about n / 2^64 per suffix (5e-14 for a million entries).
 *
 * Built streaming: the stored lists are read in 1 MiB chunks and only the hashes are kept, never the names: 8
 * bytes a name in one array sized up front from the files' line counts (reserveBlocked), sorted and deduplicated
 * in place and written out from that same memory (finishParts), so a 1,000,000-name table costs its builder
 * 8 MB, not the 8 + 4 of a growing array plus two copies for the file (measured in bench/dns-filter.ts).
 *
 * File layout (little-endian): "CPDNSF01", 16-byte key, uint32 deny count, allow count, block count, the
 * longest entry's label count, then the three sorted uint64 arrays.
 */
import { createHash, randomBytes } from "crypto";
import { closeSync, fstatSync, openSync, readSync } from "fs";
import { LAYOUT } from "../../model/layout";
import { isFilterEntry } from "../../model/domain-rules";
import { normalizeDomain } from "./blocklist";
import { readHeadBytesIfExists } from "../../lib/atomic-file";

const MAGIC = Buffer.from("CPDNSF01", "latin1");
const KEY_BYTES = 16;
export const HEADER_BYTES = MAGIC.length + KEY_BYTES + 16;

export type Verdict = "refuse" | "pass";

/** What the filter process reads between two turns of its event loop while it builds a table (~1,500 names). */
const ASYNC_CHUNK_BYTES = 1 << 16;

function hashName(key: Buffer, name: string): bigint {
  return createHash("sha256").update(key).update(name, "latin1").digest().readBigUInt64LE(0);
}

function labelCount(name: string): number {
  let n = 1;
  for (let i = name.indexOf("."); i !== -1; i = name.indexOf(".", i + 1)) n++;
  return n;
}

/** A growable array of hashes. */
class HashArray {
  private data = new BigUint64Array(64);
  length = 0;
  /** Room for `more` hashes beyond those held, in one allocation (the old ones copied once). */
  reserve(more: number): void {
    if (this.length + more <= this.data.length) return;
    const bigger = new BigUint64Array(this.length + more);
    bigger.set(this.data.subarray(0, this.length));
    this.data = bigger;
  }
  push(h: bigint): void {
    if (this.length === this.data.length) this.reserve(Math.max(64, this.length >>> 1));
    this.data[this.length++] = h;
  }
  /** Sorted, without duplicates: a view of the array's own memory, which the builder no longer uses. */
  finish(): BigUint64Array {
    const view = this.data.subarray(0, this.length).sort();
    let n = 0;
    for (let i = 0; i < view.length; i++) if (n === 0 || view[i] !== view[n - 1]) view[n++] = view[i];
    this.data = new BigUint64Array(0);
    this.length = 0;
    return view.subarray(0, n);
  }
}

/** How many lines a file holds (an upper bound on its names), counted in 1 MiB reads; 0 when it is missing. */
export function countLines(file: string): number {
  const count = lineCounter();
  forEachChunk(file, count.feed);
  return count.lines();
}

/** countLines in the slices of addBlockedFileAsync, for a process that answers queries meanwhile. */
export async function countLinesAsync(file: string): Promise<number> {
  const count = lineCounter();
  await forEachChunkAsync(file, ASYNC_CHUNK_BYTES, count.feed);
  return count.lines();
}

/** Counts the lines of the chunks fed to it; a last line without '\n' counts too. */
function lineCounter(): { feed: (chunk: Buffer) => void; lines: () => number } {
  let lines = 0;
  let last = 0x0a;
  return {
    feed: (chunk) => {
      for (let at = chunk.indexOf(0x0a); at !== -1; at = chunk.indexOf(0x0a, at + 1)) lines++;
      last = chunk[chunk.length - 1];
    },
    lines: () => (last === 0x0a ? lines : lines + 1),
  };
}

export interface TableCounts {
  readonly deny: number;
  readonly allow: number;
  readonly block: number;
}

export class FilterTableBuilder {
  private readonly key: Buffer;
  private readonly deny = new HashArray();
  private readonly allow = new HashArray();
  private readonly block = new HashArray();
  private maxLabels = 2;
  /** Blocklist names left out because the table already held `maxBlocked`. */
  dropped = 0;

  constructor(
    private readonly maxBlocked = Infinity,
    key: Buffer = randomBytes(KEY_BYTES),
  ) {
    if (key.length !== KEY_BYTES) throw new Error(`a filter table key is ${KEY_BYTES} bytes`);
    this.key = key;
  }

  private add(to: HashArray, name: string): void {
    this.maxLabels = Math.max(this.maxLabels, labelCount(name));
    to.push(hashName(this.key, name));
  }

  addDeny(name: string): void {
    this.add(this.deny, name);
  }
  addAllow(name: string): void {
    this.add(this.allow, name);
  }
  addBlocked(name: string): void {
    if (this.block.length >= this.maxBlocked) this.dropped++;
    else this.add(this.block, name);
  }

  /** Room for `n` more blocklist names (at most the cap), so the array is allocated once. */
  reserveBlocked(n: number): void {
    this.block.reserve(Math.max(0, Math.min(n, this.maxBlocked - this.block.length)));
  }

  /**
   * Every valid entry of a stored list file (one name per line), read in chunks; returns the names added. Call
   * reserveBlocked first with the files' line counts (countLines), or the array grows by halves.
   */
  addBlockedFile(file: string): number {
    const add = this.lineAdder();
    forEachLine(file, add.line);
    return add.added();
  }

  /**
   * addBlockedFile for a process that answers queries meanwhile (the DNS filter's per-group tables): 64 KiB
   * read at a time (about 1,500 names), giving the event loop a turn between reads, so queries wait for one
   * slice of the build, never for all of it.
   */
  async addBlockedFileAsync(file: string): Promise<number> {
    const add = this.lineAdder();
    const lines = new LineSplitter(add.line);
    await forEachChunkAsync(file, ASYNC_CHUNK_BYTES, (chunk) => lines.feed(chunk));
    lines.end();
    return add.added();
  }

  private lineAdder(): { line: (line: string) => void; added: () => number } {
    let added = 0;
    return {
      line: (line) => {
        // Re-checked on read, as readStoredList does: nothing unvalidated reaches the filter.
        if (line.length > 0 && normalizeDomain(line) === line && isFilterEntry(line)) {
          this.addBlocked(line);
          added++;
        }
      },
      added: () => added,
    };
  }

  /**
   * The table file as its pieces, in order: the header, then the deny, allow and block hashes as views of the
   * builder's own arrays (no copy: write them with writeFileAtomic's list form). The builder is spent.
   */
  finishParts(): Buffer[] {
    const sections = this.sections();
    const header = Buffer.alloc(HEADER_BYTES);
    MAGIC.copy(header, 0);
    this.key.copy(header, MAGIC.length);
    let at = MAGIC.length + KEY_BYTES;
    for (const s of sections) at = header.writeUInt32LE(s.length, at);
    header.writeUInt32LE(this.maxLabels, at);
    return [header, ...sections.map((s) => Buffer.from(s.buffer, s.byteOffset, s.byteLength))];
  }

  /** The table file in one buffer (a copy: for small tables and tests). */
  finish(): Buffer {
    return Buffer.concat(this.finishParts());
  }

  /**
   * The table itself, without a file between (the filter's per-group tables: site-policy.ts), kept for as long
   * as the filter runs: a section whose duplicates or growth left over a tenth of its array unused is copied
   * to its size, so the slack is not held with it.
   */
  finishTable(): FilterTable {
    const fit = (a: BigUint64Array) => (a.length < (a.buffer.byteLength / 8) * 0.9 ? a.slice() : a);
    const [deny, allow, block] = this.sections();
    return FilterTable.fromSorted(this.key, [fit(deny), fit(allow), fit(block)], this.maxLabels);
  }

  private sections(): [BigUint64Array, BigUint64Array, BigUint64Array] {
    return [this.deny.finish(), this.allow.finish(), this.block.finish()];
  }
}

/** The file opened for reading, or undefined when it does not exist. */
function openIfExists(file: string): number | undefined {
  try {
    return openSync(file, "r");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
}

/** Calls `fn` with each chunk of a file, reading 1 MiB at a time (nothing when it is missing). */
function forEachChunk(file: string, fn: (chunk: Buffer) => void): void {
  const fd = openIfExists(file);
  if (fd === undefined) return;
  try {
    const chunk = Buffer.alloc(1 << 20);
    for (let n; (n = readSync(fd, chunk, 0, chunk.length, null)) > 0;) fn(chunk.subarray(0, n));
  } finally {
    closeSync(fd);
  }
}

/** forEachChunk, `bytes` at a time, with a turn of the event loop (setImmediate) after each chunk. */
async function forEachChunkAsync(file: string, bytes: number, fn: (chunk: Buffer) => void): Promise<void> {
  const fd = openIfExists(file);
  if (fd === undefined) return;
  try {
    const chunk = Buffer.alloc(bytes);
    for (let n; (n = readSync(fd, chunk, 0, chunk.length, null)) > 0;) {
      fn(chunk.subarray(0, n));
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  } finally {
    closeSync(fd);
  }
}

/** Splits chunks of latin1 text into lines, without '\n' or '\r', a line cut between two chunks joined. */
class LineSplitter {
  private rest = "";
  constructor(private readonly fn: (line: string) => void) {}
  feed(chunk: Buffer): void {
    const text = this.rest + chunk.toString("latin1");
    let start = 0;
    for (let end = text.indexOf("\n"); end !== -1; end = text.indexOf("\n", start)) {
      this.fn(trimCr(text.slice(start, end)));
      start = end + 1;
    }
    this.rest = text.slice(start);
  }
  end(): void {
    if (this.rest.length > 0) this.fn(trimCr(this.rest));
    this.rest = "";
  }
}

/** Calls `fn` with each line of a file (without '\n' or '\r'), reading 1 MiB at a time. */
export function forEachLine(file: string, fn: (line: string) => void): void {
  const lines = new LineSplitter(fn);
  forEachChunk(file, (chunk) => lines.feed(chunk));
  lines.end();
}

/** The counts in a table file's header (without reading the hashes), or undefined when there is no file. */
export function readTableCounts(file: string): TableCounts | undefined {
  const head = readHeadBytesIfExists(file, HEADER_BYTES);
  if (head === undefined) return undefined;
  const [deny, allow, block] = parseHeader(head).counts;
  return { deny, allow, block };
}

function trimCr(line: string): string {
  return line.endsWith("\r") ? line.slice(0, -1) : line;
}

function contains(sorted: BigUint64Array, h: bigint): boolean {
  let lo = 0;
  let hi = sorted.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const v = sorted[mid];
    if (v === h) return true;
    if (v < h) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}

/** A table file's header, checked against the file's size when it is given. */
function parseHeader(
  head: Buffer,
  size?: number,
): { key: Buffer; counts: number[]; maxLabels: number; total: number } {
  if (head.length < HEADER_BYTES || !head.subarray(0, MAGIC.length).equals(MAGIC))
    throw new Error("not a CloudPal DNS filter table");
  const key = Buffer.from(head.subarray(MAGIC.length, MAGIC.length + KEY_BYTES));
  const at = MAGIC.length + KEY_BYTES;
  const counts = [head.readUInt32LE(at), head.readUInt32LE(at + 4), head.readUInt32LE(at + 8)];
  const maxLabels = head.readUInt32LE(at + 12);
  const total = counts[0] + counts[1] + counts[2];
  if (size !== undefined && size !== HEADER_BYTES + total * 8)
    throw new Error(`a filter table of ${size} bytes does not hold the ${total} hashes its header names`);
  return { key, counts, maxLabels, total };
}

const DEVICE_ZONE = LAYOUT.dnsZone;

export class FilterTable {
  private constructor(
    private readonly key: Buffer,
    private readonly deny: BigUint64Array,
    private readonly allow: BigUint64Array,
    private readonly block: BigUint64Array,
    private readonly maxLabels: number,
  ) {}

  /** The empty table: refuses nothing (the filter before its first table, or with no lists). */
  static empty(): FilterTable {
    return new FilterTable(
      Buffer.alloc(KEY_BYTES),
      new BigUint64Array(0),
      new BigUint64Array(0),
      new BigUint64Array(0),
      2,
    );
  }

  /** A table from its file's bytes (checked: magic, and a length that matches the header's counts). */
  static parse(bytes: Buffer): FilterTable {
    return FilterTable.fromParts([bytes]);
  }

  /** A table from the pieces of its file, in order (copied once into one aligned array). */
  static fromParts(parts: readonly Buffer[]): FilterTable {
    const size = parts.reduce((n, p) => n + p.length, 0);
    const head = parts.length > 0 && parts[0].length >= HEADER_BYTES ? parts[0] : Buffer.concat([...parts]);
    const { key, counts, maxLabels, total } = parseHeader(head, size);
    const all = new BigUint64Array(total);
    const into = Buffer.from(all.buffer);
    let at = 0;
    let skip = HEADER_BYTES;
    for (const p of parts) {
      const from = Math.min(skip, p.length);
      skip -= from;
      into.set(p.subarray(from), at);
      at += p.length - from;
    }
    return FilterTable.of(key, counts, maxLabels, all);
  }

  /**
   * A table read from its file straight into one aligned array (no second copy of the hashes: the filter holds
   * the old table while it reads the new one, and nothing more). Throws on a missing, short or foreign file.
   */
  static readFile(file: string): FilterTable {
    const fd = openSync(file, "r");
    try {
      const size = fstatSync(fd).size;
      const head = Buffer.alloc(HEADER_BYTES);
      const got = readSync(fd, head, 0, HEADER_BYTES, 0);
      const { key, counts, maxLabels, total } = parseHeader(head.subarray(0, got), size);
      const all = new BigUint64Array(total);
      const into = Buffer.from(all.buffer);
      for (let at = 0; at < into.length;) {
        const n = readSync(fd, into, at, into.length - at, HEADER_BYTES + at);
        if (n === 0) throw new Error(`a filter table of ${size} bytes ended early`);
        at += n;
      }
      return FilterTable.of(key, counts, maxLabels, all);
    } finally {
      closeSync(fd);
    }
  }

  /** The builder's sorted arrays as a table, used where they are (dns-filter-table.ts only). */
  static fromSorted(
    key: Buffer,
    sections: readonly [BigUint64Array, BigUint64Array, BigUint64Array],
    maxLabels: number,
  ): FilterTable {
    return new FilterTable(Buffer.from(key), sections[0], sections[1], sections[2], maxLabels);
  }

  private static of(key: Buffer, counts: number[], maxLabels: number, all: BigUint64Array): FilterTable {
    const [deny, allow] = counts;
    return new FilterTable(
      key,
      all.subarray(0, deny),
      all.subarray(deny, deny + allow),
      all.subarray(deny + allow),
      maxLabels,
    );
  }

  get counts(): TableCounts {
    return { deny: this.deny.length, allow: this.allow.length, block: this.block.length };
  }

  /** The verdict on a query name (any case, with or without the final dot). */
  verdict(qname: string): Verdict {
    let name = qname.toLowerCase();
    if (name.endsWith(".")) name = name.slice(0, -1);
    if (name === DEVICE_ZONE || name.endsWith(`.${DEVICE_ZONE}`)) return "pass";
    const hashes: bigint[] = [];
    // Suffixes from two labels up to maxLabels, nearest the root first.
    let at = name.lastIndexOf(".");
    if (at <= 0) return "pass";
    for (let labels = 2; labels <= this.maxLabels; labels++) {
      const dot = name.lastIndexOf(".", at - 1);
      hashes.push(hashName(this.key, name.slice(dot + 1)));
      if (dot === -1) break;
      at = dot;
    }
    if (this.deny.length > 0 && hashes.some((h) => contains(this.deny, h))) return "refuse";
    if (this.allow.length > 0 && hashes.some((h) => contains(this.allow, h))) return "pass";
    if (this.block.length > 0 && hashes.some((h) => contains(this.block, h))) return "refuse";
    return "pass";
  }
}
