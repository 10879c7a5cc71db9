/**
 * What unbound really serves, from `unbound-control list_local_zones` and `list_local_data`, in the model the
 * renderer uses (unbound-config.ts UnboundZones), so a drift between the loaded zones and the saved state is a
 * plain diffZones. This is how the agent finishes an apply that died between writing unbound's files and
 * telling unbound: the files already say the new thing, only the live listing shows what is missing.
 *
 * Output formats (unbound daemon/remote.c): list_local_zones prints "name type" per zone; list_local_data
 * prints each record as text, fields separated by tabs ("laptop.pal.\t300\tIN\tA\t10.77.0.2"). Both also list
 * unbound's built-in zones (localhost., the RFC 6303 reverse zones, home.arpa., ...), which are not ours:
 * ours are the device zone with the records under it, and the blocklist zones, whose types
 * (always_refuse, always_transparent) unbound's defaults never use.
 */
import { LAYOUT } from "../../model/layout";
import { diffZones, type UnboundZones, type ZoneChanges } from "./unbound-config";
import { LIVE_EDIT_MAX_LINES, type LiveEdits } from "./unbound-plan";

const DEVICE_ZONE = `${LAYOUT.dnsZone}.`;
const BLOCKLIST_TYPES = new Set(["always_refuse", "always_transparent"]);

function underDeviceZone(name: string): boolean {
  return name === DEVICE_ZONE || name.endsWith(`.${DEVICE_ZONE}`);
}

/** One record in the renderer's spelling: single spaces, lower-case owner. */
export function normalizeRecord(rr: string): string {
  const fields = rr.trim().split(/\s+/);
  if (fields.length > 0) fields[0] = fields[0].toLowerCase();
  return fields.join(" ");
}

/** The zones and records CloudPal owns in unbound's live listings. */
export function liveOwnZones(listLocalZones: string, listLocalData: string): UnboundZones {
  const zones = new Map<string, string>();
  for (const line of listLocalZones.split("\n")) {
    const [rawName, type] = line.trim().split(/\s+/);
    if (!rawName || !type) continue;
    const name = rawName.toLowerCase();
    if (underDeviceZone(name) || BLOCKLIST_TYPES.has(type)) zones.set(name, type);
  }
  const datas = new Map<string, string[]>();
  for (const line of listLocalData.split("\n")) {
    if (line.trim() === "") continue;
    const rr = normalizeRecord(line);
    const owner = rr.split(" ")[0];
    if (!underDeviceZone(owner)) continue;
    datas.set(owner, [...(datas.get(owner) ?? []), rr]);
  }
  return { zones, datas };
}

/** The records as the renderer wrote them, normalised like the live ones. */
export function normalizeZones(z: UnboundZones): UnboundZones {
  const datas = new Map<string, string[]>();
  for (const [owner, rrs] of z.datas) datas.set(owner.toLowerCase(), rrs.map(normalizeRecord));
  return { zones: z.zones, datas };
}

export type LiveRepair =
  | { readonly action: "none" }
  | { readonly action: "live"; readonly edits: LiveEdits }
  /** Too much differs for one-by-one edits: reload, which makes unbound load the (rewritten) files. */
  | { readonly action: "reload" };

/** How to bring unbound's live zones to `desired`. */
export function planLiveRepair(live: UnboundZones, desired: UnboundZones): LiveRepair {
  const c: ZoneChanges = diffZones(live, normalizeZones(desired));
  const size = c.zonesAdd.length + c.zonesRemove.length + c.datasAdd.length + c.datasRemove.length;
  if (size === 0) return { action: "none" };
  if (size > LIVE_EDIT_MAX_LINES) return { action: "reload" };
  return {
    action: "live",
    edits: {
      local_datas_remove: c.datasRemove,
      local_zones_remove: c.zonesRemove,
      local_zones: c.zonesAdd,
      local_datas: c.datasAdd,
    },
  };
}
