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
 * Built streaming: the stored lists are read in 1 MiB chunks and only the hashes are kept (8 bytes a name,
 * doubled while an array grows), never the names.
 *
 * File layout (little-endian): "CPDNSF01", 16-byte key, uint32 deny count, allow count, block count, the
 * longest entry's label count, then the three sorted uint64 arrays.
 */
import { createHash, randomBytes } from "crypto";
import { closeSync, openSync, readSync } from "fs";
import { LAYOUT } from "../../model/layout";
import { isFilterEntry } from "../../model/domain-rules";
import { normalizeDomain } from "./blocklist";
import { readHeadBytesIfExists } from "../../lib/atomic-file";

const MAGIC = Buffer.from("CPDNSF01", "latin1");
const KEY_BYTES = 16;
export const HEADER_BYTES = MAGIC.length + KEY_BYTES + 16;

export type Verdict = "refuse" | "pass";

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
  private data = new BigUint64Array(1024);
  length = 0;
  push(h: bigint): void {
    if (this.length === this.data.length) {
      const bigger = new BigUint64Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.length++] = h;
  }
  /** Sorted, without duplicates. */
  finish(): BigUint64Array {
    const view = this.data.subarray(0, this.length).sort();
    let n = 0;
    for (let i = 0; i < view.length; i++) if (n === 0 || view[i] !== view[n - 1]) view[n++] = view[i];
    const out = view.slice(0, n);
    this.data = new BigUint64Array(0);
    return out;
  }
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

  /** Every valid entry of a stored list file (one name per line), read in chunks; returns the names added. */
  addBlockedFile(file: string): number {
    let added = 0;
    forEachLine(file, (line) => {
      // Re-checked on read, as readStoredList does: nothing unvalidated reaches the filter.
      if (line.length > 0 && normalizeDomain(line) === line && isFilterEntry(line)) {
        this.addBlocked(line);
        added++;
      }
    });
    return added;
  }

  finish(): Buffer {
    const sections = [this.deny.finish(), this.allow.finish(), this.block.finish()];
    const header = Buffer.alloc(HEADER_BYTES);
    MAGIC.copy(header, 0);
    this.key.copy(header, MAGIC.length);
    let at = MAGIC.length + KEY_BYTES;
    for (const s of sections) at = header.writeUInt32LE(s.length, at);
    header.writeUInt32LE(this.maxLabels, at);
    return Buffer.concat([header, ...sections.map((s) => Buffer.from(s.buffer, s.byteOffset, s.byteLength))]);
  }
}

/** Calls `fn` with each line of a file (without '\n' or '\r'), reading 1 MiB at a time. */
export function forEachLine(file: string, fn: (line: string) => void): void {
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
    throw e;
  }
  try {
    const chunk = Buffer.alloc(1 << 20);
    let rest = "";
    for (;;) {
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      const text = rest + chunk.toString("latin1", 0, n);
      let start = 0;
      for (let end = text.indexOf("\n"); end !== -1; end = text.indexOf("\n", start)) {
        fn(trimCr(text.slice(start, end)));
        start = end + 1;
      }
      rest = text.slice(start);
    }
    if (rest.length > 0) fn(trimCr(rest));
  } finally {
    closeSync(fd);
  }
}

/** The counts in a table file's header (without reading the hashes), or undefined when there is no file. */
export function readTableCounts(file: string): TableCounts | undefined {
  const head = readHeadBytesIfExists(file, HEADER_BYTES);
  if (head === undefined) return undefined;
  if (head.length < HEADER_BYTES || !head.subarray(0, MAGIC.length).equals(MAGIC))
    throw new Error("not a CloudPal DNS filter table");
  const at = MAGIC.length + KEY_BYTES;
  return {
    deny: head.readUInt32LE(at),
    allow: head.readUInt32LE(at + 4),
    block: head.readUInt32LE(at + 8),
  };
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

  static parse(bytes: Buffer): FilterTable {
    if (bytes.length < HEADER_BYTES || !bytes.subarray(0, MAGIC.length).equals(MAGIC))
      throw new Error("not a CloudPal DNS filter table");
    const key = Buffer.from(bytes.subarray(MAGIC.length, MAGIC.length + KEY_BYTES));
    let at = MAGIC.length + KEY_BYTES;
    const counts = [0, 0, 0].map(() => {
      const n = bytes.readUInt32LE(at);
      at += 4;
      return n;
    });
    const maxLabels = bytes.readUInt32LE(at);
    const total = counts.reduce((a, b) => a + b, 0);
    if (bytes.length !== HEADER_BYTES + total * 8)
      throw new Error(
        `a filter table of ${bytes.length} bytes does not hold the ${total} hashes its header names`,
      );
    // One aligned copy of the hash area (a Buffer from readFileSync may start at any offset of its pool).
    const all = new BigUint64Array(total);
    Buffer.from(all.buffer).set(bytes.subarray(HEADER_BYTES));
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
