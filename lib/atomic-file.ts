/**
 * Files the agent owns are replaced atomically: temp file in the same directory, fsync, rename, fsync of the
 * directory (as wg-quick's save_config does). A reader (nftables.service, unbound, `wg syncconf`, a reboot at
 * the wrong moment) sees the old file or the new one, never half of one. Mode is set before any byte is
 * written, so a secret never sits in a world-readable file.
 */
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  unlinkSync,
  writeSync,
} from "fs";
import * as path from "path";
import { randomBytes } from "crypto";

export function writeFileAtomic(
  file: string,
  content: string | Uint8Array | readonly Uint8Array[],
  mode: number,
  dirMode = 0o755,
): void {
  const dir = path.dirname(file);
  mkdirSync(dir, { recursive: true, mode: dirMode });
  const tmp = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString("hex")}.tmp`);
  const fd = openSync(tmp, "wx", mode);
  try {
    if (typeof content === "string") writeSync(fd, content);
    else for (const piece of content instanceof Uint8Array ? [content] : content) writeAll(fd, piece);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    unlinkSync(tmp);
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, file);
  const dfd = openSync(dir, "r");
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}

/** All of `bytes`, however many writes it takes (a list in pieces is written without joining them first). */
function writeAll(fd: number, bytes: Uint8Array): void {
  for (let at = 0; at < bytes.length;) at += writeSync(fd, bytes, at, bytes.length - at);
}

/** The file's text, or undefined when it does not exist. */
export function readIfExists(file: string): string | undefined {
  try {
    return readFileSync(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
}

export function readBytesIfExists(file: string): Buffer | undefined {
  try {
    return readFileSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
}

/** The first `bytes` bytes of a file as text, or undefined when it does not exist. */
export function readHeadIfExists(file: string, bytes: number): string | undefined {
  return readHeadBytesIfExists(file, bytes)?.toString("utf8");
}

/** At most the first `bytes` bytes of a file, or undefined when it does not exist. */
export function readHeadBytesIfExists(file: string, bytes: number): Buffer | undefined {
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
  try {
    const buffer = Buffer.alloc(bytes);
    const n = readSync(fd, buffer, 0, bytes, 0);
    return buffer.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}
