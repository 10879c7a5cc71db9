/**
 * unbound, split in two files because they change at different speeds:
 * - settings (listen addresses, access control, DNSSEC, upstreams, logging): rare; a change needs
 *   `unbound-control reload`, which also empties the cache;
 * - zones (`<peer>.pal` names, blocklist zones): change with every peer or list; applied live with
 *   `unbound-control local_zones / local_datas` (and their _remove forms) from a diff, so the cache survives
 *   and a peer's name resolves as soon as apply returns. The file is still written, so a restart of unbound
 *   loads the same zones.
 *
 * Values reach these files only after validation (hostname labels, domains, IP addresses) and are still
 * quoted, so a value cannot open a new directive or clause.
 */
import { hubAddresses } from "../../model/addressing";
import { canonicalIpv6 } from "../../model/ip-text";
import type { DnsFilter } from "./blocklist";
import { LAYOUT, MANAGED_HEADER } from "../../model/layout";
import type { HubState } from "../../model/state";

/** Seconds; short, because a peer's address only changes when the user re-pins it. */
const PEER_TTL = 300;

export interface UnboundOptions {
  /** The CA certificates unbound checks the upstreams' TLS certificates against (AgentPaths.caBundle). */
  readonly caBundle: string;
}

function q(value: string): string {
  if (/["\n\r\\]/.test(value))
    throw new Error(`refusing to write ${JSON.stringify(value)} into unbound's config`);
  return `"${value}"`;
}

const v6 = canonicalIpv6;

export function renderUnboundSettings(state: HubState, options: UnboundOptions): string {
  const hub = hubAddresses(state.hub);
  const dns = state.dns;
  const lines = [
    MANAGED_HEADER,
    "server:",
    // Only the tunnel: the resolver is never reachable from the internet, whatever the firewall does.
    `    interface: ${hub.ipv4}`,
    `    interface: ${v6(hub.ipv6)}`,
    // wg0 may come up after unbound at boot; freebind lets unbound bind the tunnel addresses anyway.
    "    ip-freebind: yes",
    `    access-control: ${state.hub.ipv4Subnet} allow`,
    `    access-control: ${state.hub.ipv6Prefix} allow`,
    "    hide-identity: yes",
    "    hide-version: yes",
    "    qname-minimisation: yes",
    "    harden-glue: yes",
    "    harden-dnssec-stripped: yes",
    "    prefetch: yes",
    // DNS rebinding: public names may not answer with the private network's addresses, peer names may.
    `    private-address: ${state.hub.ipv4Subnet}`,
    `    private-address: ${state.hub.ipv6Prefix}`,
    `    private-domain: ${q(LAYOUT.dnsZone)}`,
    `    module-config: ${dns.dnssec ? q("validator iterator") : q("iterator")}`,
    `    tls-cert-bundle: ${q(options.caBundle)}`,
    `    log-queries: ${dns.queryLog ? "yes" : "no"}`,
    `    log-replies: ${dns.queryLog ? "yes" : "no"}`,
    `    log-local-actions: ${dns.queryLog ? "yes" : "no"}`,
    "",
    "forward-zone:",
    `    name: "."`,
  ];
  // Always over TLS: tests run their own DNS-over-TLS upstream and CA (test/e2e/netns/hub.ts).
  lines.push("    forward-tls-upstream: yes");
  for (const u of dns.upstreams) lines.push(`    forward-addr: ${u.address}@${u.port}#${u.tlsName}`);
  return lines.join("\n") + "\n";
}

/** The live-updatable part, as data: zone name → type, and owner name → records. */
export interface UnboundZones {
  readonly zones: ReadonlyMap<string, string>;
  readonly datas: ReadonlyMap<string, readonly string[]>;
}

/** `<peer>.pal` and `hub.pal`, A and AAAA. */
export function peerZones(state: HubState): UnboundZones {
  const zone = `${LAYOUT.dnsZone}.`;
  const datas = new Map<string, string[]>();
  const hub = hubAddresses(state.hub);
  const named = [{ name: "hub", ipv4: hub.ipv4, ipv6: hub.ipv6 }, ...state.peers];
  for (const p of named) {
    const owner = `${p.name}.${zone}`;
    datas.set(owner, [`${owner} ${PEER_TTL} IN A ${p.ipv4}`, `${owner} ${PEER_TTL} IN AAAA ${v6(p.ipv6)}`]);
  }
  return { zones: new Map([[zone, "static"]]), datas };
}

/** Blocked names are refused (`always_refuse`: the answer says REFUSED); exempt ones resolve normally. */
export function blocklistZones(filter: DnsFilter): UnboundZones {
  const zones = new Map<string, string>();
  for (const d of filter.blocked) zones.set(`${d}.`, "always_refuse");
  for (const d of filter.exempt) zones.set(`${d}.`, "always_transparent");
  return { zones, datas: new Map() };
}

/** Everything live-updatable, in one model (peer names and blocklist zones). */
export function desiredZones(state: HubState, filter: DnsFilter): UnboundZones {
  const a = peerZones(state);
  const b = blocklistZones(filter);
  return { zones: new Map([...a.zones, ...b.zones]), datas: a.datas };
}

/** `inputs` is recorded as a comment so the next apply can tell the file is current without rebuilding it. */
export function renderUnboundZones(z: UnboundZones, inputs?: string): string {
  const lines = [MANAGED_HEADER, ...(inputs ? [`# inputs: ${inputs}`] : []), "server:"];
  for (const [name, type] of [...z.zones].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
    lines.push(`    local-zone: ${q(name)} ${type}`);
  for (const owner of [...z.datas.keys()].sort())
    for (const rr of z.datas.get(owner) ?? []) lines.push(`    local-data: ${q(rr)}`);
  return lines.join("\n") + "\n";
}

/** Reads back a file renderUnboundZones wrote (what unbound loaded at its last start or reload). */
export function parseUnboundZones(text: string): UnboundZones {
  const zones = new Map<string, string>();
  const datas = new Map<string, string[]>();
  for (const line of text.split("\n")) {
    let m = /^ {4}local-zone: "([^"]+)" (\S+)$/.exec(line);
    if (m) {
      zones.set(m[1], m[2]);
      continue;
    }
    m = /^ {4}local-data: "(([^" ]+) [^"]+)"$/.exec(line);
    if (m) datas.set(m[2], [...(datas.get(m[2]) ?? []), m[1]]);
  }
  return { zones, datas };
}

export interface ZoneChanges {
  /** Lines for `unbound-control local_zones_remove` (names). */
  readonly zonesRemove: string[];
  /** Lines for `unbound-control local_zones` ("name type"). */
  readonly zonesAdd: string[];
  /** Lines for `unbound-control local_datas_remove` (owner names). */
  readonly datasRemove: string[];
  /** Lines for `unbound-control local_datas` (records). */
  readonly datasAdd: string[];
}

export function diffZones(current: UnboundZones, desired: UnboundZones): ZoneChanges {
  const zonesRemove: string[] = [];
  const zonesAdd: string[] = [];
  for (const [name, type] of current.zones) if (desired.zones.get(name) !== type) zonesRemove.push(name);
  for (const [name, type] of desired.zones)
    if (current.zones.get(name) !== type) zonesAdd.push(`${name} ${type}`);
  const datasRemove: string[] = [];
  const datasAdd: string[] = [];
  const same = (a: readonly string[] | undefined, b: readonly string[] | undefined) =>
    a !== undefined &&
    b !== undefined &&
    a.length === b.length &&
    [...a].sort().join("\n") === [...b].sort().join("\n");
  for (const [owner, rrs] of current.datas) if (!same(rrs, desired.datas.get(owner))) datasRemove.push(owner);
  for (const [owner, rrs] of desired.datas) if (!same(rrs, current.datas.get(owner))) datasAdd.push(...rrs);
  return { zonesRemove, zonesAdd, datasRemove, datasAdd };
}

export function isEmptyChange(c: ZoneChanges): boolean {
  return c.zonesRemove.length + c.zonesAdd.length + c.datasRemove.length + c.datasAdd.length === 0;
}

/** The `# inputs:` value renderUnboundZones recorded, if any. */
export function zonesInputs(text: string): string | undefined {
  return /^# inputs: (\S+)$/m.exec(text.slice(0, 1000))?.[1];
}

/**
 * The blocklist file, written straight from the filter: with a million names, building the zone Map first
 * (as renderUnboundZones(blocklistZones(...)) does, with the same output) more than doubled the agent's memory.
 */
export function renderBlocklistZones(filter: DnsFilter, inputs: string): string {
  const entries: string[] = [];
  for (const d of filter.blocked) entries.push(`${d}.\u0000always_refuse`);
  for (const d of filter.exempt) entries.push(`${d}.\u0000always_transparent`);
  entries.sort();
  let text = `${MANAGED_HEADER}\n# inputs: ${inputs}\nserver:\n`;
  for (const e of entries) {
    const [name, type] = e.split("\u0000");
    text += `    local-zone: ${q(name)} ${type}\n`;
  }
  return text;
}

/** How many zone lines a rendered file holds, without parsing it. */
export function countZoneLines(text: string): number {
  let n = 0;
  for (let i = text.indexOf("\n    local-zone: "); i !== -1; i = text.indexOf("\n    local-zone: ", i + 1))
    n++;
  return n;
}
