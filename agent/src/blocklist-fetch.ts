/**
 * Downloads blocklists on the hub, bounded in time and size, and keeps the last good copy of each source.
 * A failed or rejected download leaves the previous copy in place, so the filter never switches itself off
 * and DNS never breaks because a list host is down.
 */
import { createHash } from "crypto";
import { readFileSync, statSync } from "fs";
import * as path from "path";
import { fileURLToPath } from "url";
import { writeFileAtomic, readIfExists } from "../../lib/atomic-file";
import { normalizeDomain, parseBlocklist, rejectReason } from "./blocklist";

export interface FetchBounds {
  readonly maxBytes: number;
  readonly timeoutMs: number;
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

export async function download(url: string, bounds: FetchBounds): Promise<string> {
  const parsed = new URL(url);
  if (parsed.protocol === "file:") {
    const file = fileURLToPath(parsed);
    const size = statSync(file).size;
    if (size > bounds.maxBytes)
      throw new Error(`it is ${size} bytes, more than the ${bounds.maxBytes}-byte bound`);
    return readFileSync(file, "utf8");
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:")
    throw new Error(`scheme ${parsed.protocol} is not http(s) or file`);
  const response = await fetch(url, { signal: AbortSignal.timeout(bounds.timeoutMs), redirect: "follow" });
  if (!response.ok || !response.body) throw new Error(`the server answered HTTP ${response.status}`);
  const declared = Number(response.headers.get("content-length") ?? "0");
  if (declared > bounds.maxBytes)
    throw new Error(`it is ${declared} bytes, more than the ${bounds.maxBytes}-byte bound`);
  const chunks: Buffer[] = [];
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
    chunks.push(Buffer.from(value));
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** Fetch one source; on success replace its stored copy (one normalized domain per line). */
export async function refreshOne(dir: string, url: string, bounds: FetchBounds): Promise<RefreshResult> {
  const stored = storedListPath(dir, url);
  const keep = (why: string): RefreshResult => {
    const last = readStoredList(dir, url);
    return {
      url,
      ok: false,
      domains: last.length,
      message: `kept the last good copy (${last.length} domains) of ${url}: ${why}`,
    };
  };
  let text: string;
  try {
    text = await download(url, bounds);
  } catch (e) {
    return keep(`download failed: ${(e as Error).message}`);
  }
  const parsed = parseBlocklist(text);
  const reason = rejectReason(parsed);
  if (reason) return keep(`rejected: ${reason}`);
  const unique = [...new Set(parsed.domains)].sort();
  writeFileAtomic(stored, unique.join("\n") + "\n", 0o644, 0o700);
  return {
    url,
    ok: true,
    domains: unique.length,
    message: `${url}: ${unique.length} domains (${parsed.invalidLines} lines skipped)`,
  };
}

/** The last good copy of a source, or [] when it was never fetched. */
export function readStoredList(dir: string, url: string): string[] {
  const text = readIfExists(storedListPath(dir, url));
  // Re-checked on read: the file is ours, but nothing unvalidated may reach unbound's config.
  const out: string[] = [];
  if (text === undefined) return out;
  for (let start = 0; start < text.length;) {
    let end = text.indexOf("\n", start);
    if (end === -1) end = text.length;
    const line = text.slice(start, end);
    start = end + 1;
    if (line.length > 0 && normalizeDomain(line) === line) out.push(line);
  }
  return out;
}
