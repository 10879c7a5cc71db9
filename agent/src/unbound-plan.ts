/**
 * What an apply must do to unbound, as a pure decision beside the WireGuard and nftables diffs: nothing, a
 * restart, a reload, or live edits through unbound-control. reconcile.ts gathers the inputs (the rendered files,
 * what is on disk) and carries the plan out; it also owns the fallbacks that depend on unbound at run time
 * (not running: write the files for its next start; a live edit refused: reload).
 */
import {
  countZoneLines,
  diffZones,
  isEmptyChange,
  parseUnboundZones,
  type UnboundZones,
  type ZoneChanges,
} from "./unbound-config";

/**
 * Above this many changed lines a reload beats live edits: unbound-control took about 10 s to add 100,000
 * zones one by one, while a reload re-read a 100,000-zone file in well under a second (bench/README-agent.md).
 * Peer changes stay far below it, so they never empty the cache.
 */
export const LIVE_EDIT_MAX_LINES = 5000;

export interface UnboundInputs {
  /** The settings file as rendered now, and as on disk (undefined: not written yet). */
  readonly settings: string;
  readonly settingsOnDisk: string | undefined;
  /** The peer-name zones wanted, their file as rendered now, and that file as on disk. */
  readonly peers: UnboundZones;
  readonly peersText: string;
  readonly peersOnDisk: string | undefined;
  /** Whether the blocklist file exists, and whether it is current (its recorded inputs match). */
  readonly blocklistExists: boolean;
  readonly blocklistCurrent: boolean;
  /** The blocklist file as rebuilt now; undefined when the file on disk is current. */
  readonly blocklistText: string | undefined;
  /** Reads the (possibly large) blocklist file on disk; called only when a live diff needs it. */
  readonly readBlocklistOnDisk: () => string;
}

/** unbound-control's bulk commands, in the order they must run (removals first). */
export interface LiveEdits {
  readonly local_datas_remove: readonly string[];
  readonly local_zones_remove: readonly string[];
  readonly local_zones: readonly string[];
  readonly local_datas: readonly string[];
}

export type UnboundPlan =
  /** The files and unbound already match. */
  | { readonly action: "none" }
  /**
   * Write the files, then restart (listen addresses changed: a reload keeps the old sockets) or reload
   * (settings changed, or too much changed for live edits). `ifRunning`: first check that unbound runs, and
   * only write the files when it does not (it reads them when it starts).
   */
  | { readonly action: "restart" | "reload"; readonly ifRunning: boolean }
  /** Write the files, then apply these edits live (none: the files changed, unbound's data did not). */
  | { readonly action: "live"; readonly edits: LiveEdits };

export function planUnbound(i: UnboundInputs): UnboundPlan {
  if (i.settingsOnDisk === i.settings && i.peersOnDisk === i.peersText && i.blocklistCurrent)
    return { action: "none" };
  if (i.settingsOnDisk !== i.settings || i.peersOnDisk === undefined || !i.blocklistExists) {
    // `unbound-control reload` re-reads the config but keeps the sockets it has: new listen addresses
    // need a restart. They only change on the first apply or when the private subnet changes.
    const listenChanged =
      i.settingsOnDisk === undefined || listenLines(i.settingsOnDisk) !== listenLines(i.settings);
    return { action: listenChanged ? "restart" : "reload", ifRunning: true };
  }
  const changes: ZoneChanges[] = [diffZones(parseUnboundZones(i.peersOnDisk), i.peers)];
  if (i.blocklistText !== undefined) {
    const blockOnDisk = i.readBlocklistOnDisk();
    // Diffing two large lists costs more memory than a 512 MB hub can spare; a reload needs none of it.
    if (countZoneLines(blockOnDisk) + countZoneLines(i.blocklistText) > 4 * LIVE_EDIT_MAX_LINES)
      return { action: "reload", ifRunning: false };
    changes.push(diffZones(parseUnboundZones(blockOnDisk), parseUnboundZones(i.blocklistText)));
  }
  const size = changes.reduce(
    (n, c) => n + c.zonesAdd.length + c.zonesRemove.length + c.datasAdd.length + c.datasRemove.length,
    0,
  );
  if (size > LIVE_EDIT_MAX_LINES) return { action: "reload", ifRunning: false };
  const all = (pick: (c: ZoneChanges) => string[]) =>
    changes.every(isEmptyChange) ? [] : changes.flatMap(pick);
  return {
    action: "live",
    edits: {
      local_datas_remove: all((c) => c.datasRemove),
      local_zones_remove: all((c) => c.zonesRemove),
      local_zones: all((c) => c.zonesAdd),
      local_datas: all((c) => c.datasAdd),
    },
  };
}

export function listenLines(settings: string): string {
  return settings
    .split("\n")
    .filter((l) => /^\s*(interface|port):/.test(l))
    .join("\n");
}
