/**
 * Downloads blocklists on the hub, bounded in time and size, and keeps the last good copy of each source.
 * A failed or rejected download leaves the previous copy in place, so the filter never switches itself off
 * and DNS never breaks because a list host is down.
 *
 * Shrink guard: a new copy with fewer than SHRINK_GUARD of the last good copy's names is far more likely a
 * broken or hijacked source (a tiny page naming one domain) than a list that really lost most of its names,
 * and loading it would quietly switch most of the filter off. It is kept aside (`<hash>.held`, with a
 * `<hash>.held.json` note that `status` reports), never loaded; the user accepts it by deleting the last good
 * copy (`<hash>.list`) and refreshing again.
 */
import { createHash } from "crypto";
import {
  closeSync,
  constants,
  fstatSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readSync,
  renameSync,
  rmSync,
  writeSync,
} from "fs";
import * as path from "path";
import { fileURLToPath } from "url";
import { writeFileAtomic, readIfExists } from "../../lib/atomic-file";
import { isFilterEntry } from "../../model/domain-rules";
import { BlocklistParser, maxBlocklistEntries, normalizeDomain, rejectReason } from "./blocklist";
import { forEachLine } from "./dns-filter-table";

export interface FetchBounds {
  readonly maxBytes: number;
  readonly timeoutMs: number;
  /** The most names one list may have; by default what this hub's memory holds (maxBlocklistEntries). */
  readonly maxEntries?: number;
}

/** A new copy below this share of the last good one's names is held back, not loaded. */
export const SHRINK_GUARD = 0.5;
/** Lists smaller than this may shrink freely: the guard is about losing a real list, not a dozen names. */
const SHRINK_GUARD_FLOOR = 100;

/**
 * A file:// source, read only if it is a regular file and only up to the bound. Opened non-blocking (a FIFO
 * would otherwise block the open until a writer comes) and judged by fstat on the open descriptor, so a
 * symlink swapped in between cannot lead the read to /dev/zero, a FIFO or a socket.
 */
function readLocalFile(file: string, maxBytes: number, sink: (chunk: Buffer) => void): void {
  const fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new Error(`${file} is not a regular file`);
    if (stat.size > maxBytes)
      throw new Error(`it is ${stat.size} bytes, more than the ${maxBytes}-byte bound`);
    // Counted while reading, whatever the size said: the file can grow while it is read.
    let total = 0;
    const chunk = Buffer.alloc(1 << 20);
    for (;;) {
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      total += n;
      if (total > maxBytes) throw new Error(`it exceeded the ${maxBytes}-byte bound`);
      sink(chunk.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
}

export interface RefreshResult {
  readonly url: string;
  readonly ok: boolean;
  /** Domains in the copy now in use (new, or last good). */
  readonly domains: number;
  readonly message: string;
}

/** Where the last good copy of a source lives: one file per URL, named by its hash. */
export function storedListPath(dir: string, url: string): string {
  return path.join(dir, `${createHash("sha256").update(url).digest("hex").slice(0, 24)}.list`);
}

/** The source's bytes, handed to `sink` chunk by chunk as they arrive (never held whole). */
export async function downloadTo(
  url: string,
  bounds: FetchBounds,
  sink: (chunk: Buffer) => void,
): Promise<void> {
  const parsed = new URL(url);
  if (parsed.protocol === "file:") {
    readLocalFile(fileURLToPath(parsed), bounds.maxBytes, sink);
    return;
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:")
    throw new Error(`scheme ${parsed.protocol} is not http(s) or file`);
  const response = await fetch(url, { signal: AbortSignal.timeout(bounds.timeoutMs), redirect: "follow" });
  if (!response.ok || !response.body) throw new Error(`the server answered HTTP ${response.status}`);
  const declared = Number(response.headers.get("content-length") ?? "0");
  if (declared > bounds.maxBytes)
    throw new Error(`it is ${declared} bytes, more than the ${bounds.maxBytes}-byte bound`);
  let total = 0;
  const reader = response.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > bounds.maxBytes) {
      await reader.cancel();
      throw new Error(`it exceeded the ${bounds.maxBytes}-byte bound`);
    }
    sink(Buffer.from(value.buffer, value.byteOffset, value.byteLength));
  }
}

/** The whole source as text (for small sources and tests; a refresh streams with downloadTo). */
export async function download(url: string, bounds: FetchBounds): Promise<string> {
  const chunks: Buffer[] = [];
  await downloadTo(url, bounds, (c) => chunks.push(Buffer.from(c)));
  return Buffer.concat(chunks).toString("utf8");
}

/** Fetch one source; on success replace its stored copy (one normalized domain per line). */
export async function refreshOne(dir: string, url: string, bounds: FetchBounds): Promise<RefreshResult> {
  const stored = storedListPath(dir, url);
  const keep = (why: string): RefreshResult => {
    const last = countStoredNames(dir, url);
    return {
      url,
      ok: false,
      domains: last,
      message: `kept the last good copy (${last} domains) of ${url}: ${why}`,
    };
  };
  const maxEntries = bounds.maxEntries ?? maxBlocklistEntries();
  // Streamed: bytes → UTF-8 text → lines → names, each name appended to a file beside the last good copy, so
  // the refresh holds one chunk at a time whatever the list's size (a 1,000,000-name list took the agent to
  // 390 MiB when it was held whole, parsed, deduplicated and joined). Duplicates stay: the filter's table drops
  // them. The file replaces the last good copy only once the whole source is in and judged.
  const part = `${stored}.part`;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const fd = openSync(part, "w", 0o644);
  let closed = false;
  let pending = "";
  const flush = () => {
    if (pending.length > 0) writeSync(fd, pending);
    pending = "";
  };
  const parser = new BlocklistParser((d) => {
    pending += `${d}\n`;
    if (pending.length > 1 << 16) flush();
  }, maxEntries);
  const decoder = new TextDecoder("utf-8");
  const finishPart = () => {
    if (closed) return;
    closed = true;
    closeSync(fd);
  };
  try {
    await downloadTo(url, bounds, (chunk) => parser.feed(decoder.decode(chunk, { stream: true })));
    parser.feed(decoder.decode());
    parser.end();
    flush();
    fsyncSync(fd);
    finishPart();
  } catch (e) {
    finishPart();
    rmSync(part, { force: true });
    return keep(`download failed: ${(e as Error).message}`);
  }
  const parsed = parser.summary();
  const reason = rejectReason(parsed, maxEntries);
  if (reason) {
    rmSync(part, { force: true });
    return keep(`rejected: ${reason}`);
  }
  const count = parsed.count;
  const lastCount = countStoredNames(dir, url);
  if (lastCount >= SHRINK_GUARD_FLOOR && count < lastCount * SHRINK_GUARD) {
    renameSync(part, heldPath(dir, url));
    const note: HeldCopy = { url, domains: count, lastGood: lastCount, at: new Date().toISOString() };
    writeFileAtomic(heldNotePath(dir, url), JSON.stringify(note) + "\n", 0o644, 0o700);
    return keep(
      `held back: the new copy names ${count} domains, less than half of the last good copy's ${lastCount}; it is kept aside, not loaded (delete ${stored} and refresh again to accept it)`,
    );
  }
  renameSync(part, stored);
  fsyncDir(dir);
  rmSync(heldPath(dir, url), { force: true });
  rmSync(heldNotePath(dir, url), { force: true });
  const skipped = parsed.reserved > 0 ? `, ${parsed.reserved} reserved names left out` : "";
  return {
    url,
    ok: true,
    domains: count,
    message: `${url}: ${count} domains (${parsed.invalidLines} lines skipped${skipped})`,
  };
}

/** What `status` says about a copy the shrink guard held back. */
export interface HeldCopy {
  readonly url: string;
  readonly domains: number;
  readonly lastGood: number;
  /** ISO time of the refresh that held it back. */
  readonly at: string;
}

function heldPath(dir: string, url: string): string {
  return storedListPath(dir, url).replace(/\.list$/, ".held");
}

function heldNotePath(dir: string, url: string): string {
  return `${heldPath(dir, url)}.json`;
}

/** Names in the stored copy: one per line, as refreshOne writes it. */
function countStoredNames(dir: string, url: string): number {
  let lines = 0;
  forEachLine(storedListPath(dir, url), (line) => {
    if (line.length > 0) lines++;
  });
  return lines;
}

function fsyncDir(dir: string): void {
  const dfd = openSync(dir, "r");
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}

/** Every copy the shrink guard holds back in `dir`, for `status`. */
export function heldCopies(dir: string): HeldCopy[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: HeldCopy[] = [];
  for (const name of names.filter((n) => n.endsWith(".held.json")).sort()) {
    try {
      const note = JSON.parse(readIfExists(path.join(dir, name)) ?? "") as HeldCopy;
      if (typeof note.url === "string" && typeof note.domains === "number") out.push(note);
    } catch {
      // A torn or foreign file is not a held copy.
    }
  }
  return out;
}

/** The last good copy of a source, or [] when it was never fetched. */
export function readStoredList(dir: string, url: string): string[] {
  const text = readIfExists(storedListPath(dir, url));
  // Re-checked on read: the file is ours, but nothing unvalidated may reach unbound's config, and a copy stored
  // before the reserved-zone rule existed may still name e.g. hub.pal.
  const out: string[] = [];
  if (text === undefined) return out;
  for (let start = 0; start < text.length;) {
    let end = text.indexOf("\n", start);
    if (end === -1) end = text.length;
    const line = text.slice(start, end);
    start = end + 1;
    if (line.length > 0 && normalizeDomain(line) === line && isFilterEntry(line)) out.push(line);
  }
  return out;
}
