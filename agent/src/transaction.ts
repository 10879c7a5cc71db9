/**
 * What lets the agent always finish what it started, under the hub lock (lock.ts):
 *
 * - the journal: before a command changes anything it writes `<stateDir>/transaction.json` (0600, atomically),
 *   and removes it only once the hub matches the saved state. A journal found at start means a command died
 *   mid-way (SIGKILL, OOM, power cut): the files the agent writes may then say more than what is loaded, so the
 *   next command checks what is LIVE (WireGuard's dump, the nftables table, unbound's local zones and data)
 *   instead of trusting its own files, and redoes what is missing;
 * - the load record: `<stateDir>/loaded.json`, what nftables and unbound were last seen to hold, written only
 *   after they loaded it. nftables' text is normalised by the kernel and unbound cannot print its settings, so
 *   "live" for those two is: the table as `nft -s list` prints it now, compared with what it printed right
 *   after this ruleset was loaded; and the settings unbound last (re)loaded;
 * - stale temporary files: an atomic write killed before its rename leaves `.<name>.<hex>.tmp` behind, and the
 *   state's and WireGuard's hold the hub key and preshared keys; `wg0.conf.add` (peers' preshared keys) is
 *   removed after `wg addconf` only if the process lives. Both are removed at the start of every locked command.
 */
import { createHash } from "crypto";
import { readdirSync, rmSync } from "fs";
import * as path from "path";
import { readIfExists, writeFileAtomic } from "../../lib/atomic-file";
import type { AgentPaths } from "./options";

export function journalPath(paths: AgentPaths): string {
  return path.join(paths.stateDir, "transaction.json");
}

export function loadRecordPath(paths: AgentPaths): string {
  return path.join(paths.stateDir, "loaded.json");
}

export type LockedCommand = "apply" | "reconcile" | "blocklists refresh";

export interface Journal {
  readonly command: LockedCommand;
  readonly pid: number;
  /** ISO time the command started changing the hub. */
  readonly started: string;
}

/** The journal's content, or "corrupt" when it cannot be read as one (a crash can leave nothing else). */
export function parseJournal(text: string | undefined): Journal | "corrupt" | undefined {
  if (text === undefined) return undefined;
  try {
    const j = JSON.parse(text) as Partial<Journal>;
    if (typeof j.command === "string" && typeof j.pid === "number" && typeof j.started === "string")
      return j as Journal;
  } catch {
    // fall through
  }
  return "corrupt";
}

export interface Recovery {
  /** Compare with what is live rather than with the agent's files. */
  readonly verifyLive: boolean;
  /** A line for the log, when a previous command is being finished. */
  readonly note?: string;
}

/**
 * What a locked command must do about the journal it found. `reconcile` always checks what is live: it runs
 * at boot and is how an operator repairs drift, so it may not trust the files. Any journal, even one it cannot
 * read, means an interrupted command whose effects are unknown.
 */
export function recoveryFor(found: Journal | "corrupt" | undefined, command: LockedCommand): Recovery {
  if (found === undefined) return { verifyLive: command === "reconcile" };
  const what =
    found === "corrupt"
      ? "an interrupted command (its journal is unreadable)"
      : `'${found.command}' (pid ${found.pid}, started ${found.started}), which did not finish`;
  return {
    verifyLive: true,
    note: `[!] finishing ${what}: comparing WireGuard, nftables and unbound with what is live`,
  };
}

export function readJournal(paths: AgentPaths): Journal | "corrupt" | undefined {
  return parseJournal(readIfExists(journalPath(paths)));
}

export function beginJournal(paths: AgentPaths, command: LockedCommand): void {
  const j: Journal = { command, pid: process.pid, started: new Date().toISOString() };
  writeFileAtomic(journalPath(paths), JSON.stringify(j) + "\n", 0o600, 0o700);
}

/** Only after the hub matches the saved state. */
export function endJournal(paths: AgentPaths): void {
  rmSync(journalPath(paths), { force: true });
}

/** Files owned by the agent whose interrupted atomic writes may be lying around. */
function ownedFiles(paths: AgentPaths): string[] {
  return [
    paths.stateFile,
    paths.wireguardConfig,
    `${paths.wireguardConfig}.add`,
    journalPath(paths),
    loadRecordPath(paths),
    paths.nftablesConfig,
    paths.unboundConfig,
    paths.unboundZones,
    paths.unboundBlocklist,
    paths.dnsFilterTable,
  ];
}

/** Whether `name` is an interrupted writeFileAtomic temp file of `target` (lib/atomic-file.ts names them). */
export function isTempOf(name: string, target: string): boolean {
  const prefix = `.${path.basename(target)}.`;
  return name.startsWith(prefix) && /^[0-9a-f]{12}\.tmp$/.test(name.slice(prefix.length));
}

/**
 * Removes the leftovers of interrupted writes. Only under the hub lock: no other agent is writing these files
 * then. Blocklist downloads run outside the lock and write in their own directory, which is left alone.
 */
export function removeStaleFiles(paths: AgentPaths): string[] {
  const removed: string[] = [];
  const add = `${paths.wireguardConfig}.add`;
  if (readIfExists(add) !== undefined) {
    rmSync(add, { force: true });
    removed.push(add);
  }
  const byDir = new Map<string, string[]>();
  for (const f of ownedFiles(paths)) byDir.set(path.dirname(f), [...(byDir.get(path.dirname(f)) ?? []), f]);
  for (const [dir, targets] of byDir) {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    for (const name of names) {
      if (!targets.some((t) => isTempOf(name, t))) continue;
      try {
        rmSync(path.join(dir, name), { force: true });
        removed.push(path.join(dir, name));
      } catch (e) {
        // The refresh unit's sandbox makes /etc read-only: that leftover waits for the next apply or reconcile.
        if (!isReadOnlyError(e)) throw e;
      }
    }
  }
  return removed;
}

/** What nftables and unbound were last seen to have loaded (digests; nothing secret). */
export interface LoadRecord {
  /** sha256 of the ruleset text last loaded with `nft -f`, and of `nft -s list table` right after. */
  readonly nftRuleset?: string;
  readonly nftLive?: string;
  /** sha256 of the unbound settings file last (re)loaded, and its listen lines (to tell reload from restart). */
  readonly unboundSettings?: string;
  readonly unboundListen?: string;
}

export function digest(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

export function readLoadRecord(paths: AgentPaths): LoadRecord {
  const text = readIfExists(loadRecordPath(paths));
  if (text === undefined) return {};
  try {
    const r = JSON.parse(text) as LoadRecord;
    return typeof r === "object" && r !== null ? r : {};
  } catch {
    return {};
  }
}

export function updateLoadRecord(paths: AgentPaths, change: Partial<LoadRecord>): void {
  const next = { ...readLoadRecord(paths), ...change };
  writeFileAtomic(loadRecordPath(paths), JSON.stringify(next) + "\n", 0o600, 0o700);
}

/**
 * Whether the live nftables table is the one `ruleset` produced. Without a record for this very ruleset the
 * answer is no: the table is then reloaded, which `nft -f` does as one transaction.
 */
export function nftLiveMatches(record: LoadRecord, ruleset: string, liveListing: string): boolean {
  return record.nftRuleset === digest(ruleset) && record.nftLive === digest(liveListing);
}

function isReadOnlyError(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return code === "EROFS" || code === "EPERM" || code === "EACCES";
}
