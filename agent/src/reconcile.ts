/**
 * Makes the machine match a validated HubState, without restarting anything, by carrying out the plans the
 * pure diffs make: WireGuard (wireguard-config.ts diffPeers: `wg set ... remove` and `wg addconf` for only the
 * peers that differ, so other tunnels keep flowing; `wg syncconf` only when the interface itself changes),
 * nftables (one `nft -f` transaction when the ruleset differs), unbound (unbound-plan.ts: live zone edits, a
 * reload or a restart).
 *
 * Each part first compares the desired state with the live one and does nothing when they match, so applying
 * the same state twice runs no reload at all. Order matters for revocation: WireGuard first, so a removed
 * device loses its tunnel before anything else happens.
 *
 * WireGuard is always compared live (`wg show dump`). nftables and unbound are compared with the agent's own
 * files after a clean run, which is cheap; with `verifyLive` (after an interrupted command, and in every
 * `reconcile`: transaction.ts) they are compared with what is loaded: the table as the kernel lists it, and
 * unbound's local zones and records (unbound-live.ts), because the files may already say what never reached
 * the daemons.
 */
import { closeSync, mkdtempSync, openSync, readdirSync, readSync, rmSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import * as path from "path";
import { hubAddresses } from "../../model/addressing";
import { addressInPrefix, tunnelGlobalPrefix } from "../../model/public-ipv6";
import { readHeadIfExists, readIfExists, writeFileAtomic } from "../../lib/atomic-file";
import { storedListPath } from "./blocklist-fetch";
import { allBlocklistUrls } from "./site-policy";
import { buildFilterTable } from "./dns-filter";
import { createHash, type Hash } from "crypto";
import { renderNftRuleset } from "./nftables-ruleset";
import { reconcileRelay } from "./tcp-relay/reconcile-relay";
import { reconcileNat64 } from "./nat64";
import { readSessions, reconcilePublicIpv6, sessionAddresses } from "./public-ipv6";
import { assertSecretStorage } from "./secret-storage";
import type { AgentOptions } from "./options";
import type { Logger, Runner } from "../../lib/runner";
import type { HubState } from "../../model/state";
import { digest, nftLiveMatches, readLoadRecord, updateLoadRecord } from "./transaction";
import { liveOwnZones, planLiveRepair } from "./unbound-live";
import {
  parseUnboundZones,
  peerZones,
  renderBlocklistZones,
  renderUnboundSettings,
  renderUnboundZones,
  type UnboundZones,
  zonesInputs,
} from "./unbound-config";
import { type LiveEdits, listenLines, planUnbound } from "./unbound-plan";
import {
  diffPeers,
  parseWgDump,
  renderWireguardConfig,
  renderWireguardPeers,
  wireguardMatches,
} from "./wireguard-config";

export interface AgentContext {
  readonly options: AgentOptions;
  readonly runner: Runner;
  readonly log: Logger;
}

/** What an apply changed; empty when the machine already matched. */
export type Change =
  | "forwarding"
  | "wireguard interface"
  | "wireguard addresses"
  | "wireguard peers"
  | "public ipv6"
  | "nftables"
  | "unbound reload"
  | "unbound restart"
  | "unbound files"
  | "unbound zones"
  | "tcp relay"
  | "nat64";

export interface ReconcileOptions {
  /** Compare nftables and unbound with what is loaded, not with the agent's files (see the header). */
  readonly verifyLive?: boolean;
  /** Renders already made for this state (by the pre-validation of an apply). */
  readonly renders?: Renders;
}

/** Everything the agent writes for nftables and unbound, rendered once per command. */
export interface Renders {
  readonly nftRuleset: string;
  readonly settings: string;
  readonly peers: UnboundZones;
  readonly peersText: string;
  /** Digest of the blocklist zones' inputs, and whether the file on disk was made from them. */
  readonly blocklistInputs: string;
  readonly blocklistExists: boolean;
  readonly blocklistCurrent: boolean;
  /** The rebuilt blocklist file; undefined when the one on disk is current. */
  readonly blocklistText: string | undefined;
  /** The rebuilt DNS filter table (dns-filter-table.ts), with the blocklist file. */
  readonly filterTable?: readonly Buffer[];
}

export function renderAll(ctx: AgentContext, state: HubState): Renders {
  const { options } = ctx;
  const paths = options.paths;
  const peers = peerZones(state);
  const inputs = blocklistInputs(ctx, state);
  // Only the header is read to see whether the (large) file is current.
  const blockHead = readHeadIfExists(paths.unboundBlocklist, 1000);
  const blockCurrent =
    blockHead !== undefined &&
    zonesInputs(blockHead) === inputs &&
    readHeadIfExists(paths.dnsFilterTable, 1) !== undefined;
  return {
    nftRuleset: renderNftRuleset(state, {
      table: options.nftTable,
      interface: options.interface,
      sessions: sessionAddresses(readSessions(paths)),
      relayUser: options.tcpRelayUser,
    }),
    settings: renderUnboundSettings(state, { caBundle: paths.caBundle }),
    peers,
    peersText: renderUnboundZones(peers),
    blocklistInputs: inputs,
    blocklistExists: blockHead !== undefined,
    blocklistCurrent: blockCurrent,
    // Only rebuilt when its inputs changed: with a million blocked names this is most of an apply's work.
    // The lists are enforced by the DNS filter (dns-filter.ts), so unbound's blocklist file holds no zones
    // any more; it stays as the record of the inputs the table was built from.
    blocklistText: blockCurrent ? undefined : renderBlocklistZones({ blocked: [], exempt: [] }, inputs),
    filterTable: blockCurrent ? undefined : buildFilterTable(state, paths.blocklistDir).parts,
  };
}

/**
 * Refuses, before anything is saved or changed, renders the tools would not load: the ruleset through
 * `nft -c` (checked by the kernel, nothing committed), unbound's files through `unbound-checkconf` on a copy in
 * a temporary directory. Only CloudPal's own files are copied: a state changes nothing else in unbound's
 * configuration, so every failure a state can cause is in them, and a distribution file the check cannot read
 * outside its tree never blocks an apply. The blocklist file is checked when it is rebuilt.
 */
export async function prevalidate(ctx: AgentContext, r: Renders): Promise<void> {
  const { runner } = ctx;
  const refuse = (tool: string, out: { stdout: string; stderr: string }) => {
    const why = (out.stderr.trim() || out.stdout.trim() || "no output").split("\n")[0].slice(0, 300);
    return new Error(
      `the new hub state was refused because ${tool} rejects what it renders (${why}); nothing was saved and the hub keeps running the previous state.`,
    );
  };
  const nft = await runner.run("nft", ["-c", "-f", "-"], { input: r.nftRuleset, allowFailure: true });
  if (nft.code !== 0) throw refuse("nft -c", nft);
  const dir = mkdtempSync(path.join(tmpdir(), "cloudpal-check-"));
  try {
    const files = [path.join(dir, "settings.conf"), path.join(dir, "zones.conf")];
    writeFileSync(files[0], r.settings);
    writeFileSync(files[1], r.peersText);
    if (r.blocklistText !== undefined) {
      files.push(path.join(dir, "blocklist.conf"));
      writeFileSync(files[2], r.blocklistText);
    }
    const main = path.join(dir, "unbound.conf");
    writeFileSync(
      main,
      [
        "server:",
        '    chroot: ""',
        '    username: ""',
        `    directory: "${dir}"`,
        ...files.map((f) => `include-toplevel: "${f}"`),
        "",
      ].join("\n"),
    );
    const check = await runner.run("unbound-checkconf", [main], { allowFailure: true });
    if (check.code !== 0) throw refuse("unbound-checkconf", check);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function reconcile(
  ctx: AgentContext,
  state: HubState,
  opts: ReconcileOptions = {},
): Promise<Change[]> {
  // Before anything: the WireGuard config written below holds the same keys as the state.
  assertSecretStorage(ctx.options.paths);
  const renders = opts.renders ?? renderAll(ctx, state);
  const verify = opts.verifyLive ?? false;
  const changes: Change[] = [];
  changes.push(...ensureForwarding(ctx));
  changes.push(...(await reconcileWireguard(ctx, state)));
  // Right after WireGuard: a revoked device loses its TCP-path sessions before anything else changes too.
  changes.push(...(await reconcileRelay(ctx.options.paths.tcpControlSocket, state, ctx.log)));
  if (await reconcilePublicIpv6(ctx, state, readSessions(ctx.options.paths))) changes.push("public ipv6");
  // Before the firewall: the DNS64 resolver listens before the redirect to it is loaded.
  if (await reconcileNat64(ctx, state)) changes.push("nat64");
  changes.push(...(await reconcileNftables(ctx, renders.nftRuleset, verify)));
  changes.push(...(await reconcileUnbound(ctx, state, { renders, verifyLive: verify })));
  return changes;
}

/** The hub routes between peers and to the internet; it also must keep learning its own IPv6 route. */
function ensureForwarding(ctx: AgentContext): Change[] {
  const dir = ctx.options.paths.sysctlDir;
  const set = (rel: string, value: string): boolean => {
    const file = path.join(dir, rel);
    const current = readIfExists(file);
    if (current === undefined || current.trim() === value) return false;
    // Not through writeFileAtomic: /proc files cannot be renamed over, only written.
    writeFileSync(file, value);
    return true;
  };
  let changed = false;
  // With forwarding on, Linux ignores router advertisements unless accept_ra is 2; providers that hand out
  // IPv6 by SLAAC would otherwise lose the hub's default route when it expires.
  const ipv6Conf = path.join(dir, "net/ipv6/conf");
  const ifaces = (() => {
    try {
      return readdirSync(ipv6Conf);
    } catch {
      return [];
    }
  })();
  for (const iface of ifaces) {
    if (["all", "default", "lo", ctx.options.interface].includes(iface)) continue;
    if (readIfExists(path.join(ipv6Conf, iface, "accept_ra"))?.trim() === "1")
      changed = set(`net/ipv6/conf/${iface}/accept_ra`, "2") || changed;
  }
  changed = set("net/ipv4/ip_forward", "1") || changed;
  changed = set("net/ipv6/conf/all/forwarding", "1") || changed;
  return changed ? ["forwarding"] : [];
}

interface IpAddrInfo {
  readonly family: string;
  readonly local: string;
  readonly prefixlen: number;
  readonly scope?: string;
}

async function reconcileWireguard(ctx: AgentContext, state: HubState): Promise<Change[]> {
  const { runner } = ctx;
  const ifname = ctx.options.interface;
  const changes: Change[] = [];
  let probe = await runner.run("ip", ["-j", "addr", "show", "dev", ifname], { allowFailure: true });
  if (probe.code !== 0) {
    // After a reboot the kernel interface is gone; the persisted state brings it back.
    await runner.run("ip", ["link", "add", "dev", ifname, "type", "wireguard"]);
    changes.push("wireguard interface");
    probe = await runner.run("ip", ["-j", "addr", "show", "dev", ifname]);
  }
  const link = (JSON.parse(probe.stdout) as { flags?: string[]; addr_info?: IpAddrInfo[] }[])[0] ?? {};
  const live = parseWgDump((await runner.run("wg", ["show", ifname, "dump"])).stdout);
  if (!wireguardMatches(state, live)) {
    const file = ctx.options.paths.wireguardConfig;
    writeFileAtomic(file, renderWireguardConfig(state), 0o600, 0o700);
    const diff = diffPeers(state, live);
    if (diff === undefined) {
      await runner.run("wg", ["syncconf", ifname, file]);
    } else {
      // Touch only the peers that differ. `wg syncconf` re-sends every peer with "replace allowed IPs" and the
      // listen port; wireguard-go then rebinds its socket and briefly has no route to any peer, which the
      // network-namespace test saw as lost packets between devices that had nothing to do with the change.
      for (let i = 0; i < diff.remove.length; i += 500) {
        const args = diff.remove.slice(i, i + 500).flatMap((key) => ["peer", key, "remove"]);
        await runner.run("wg", ["set", ifname, ...args]);
      }
      if (diff.add.length > 0) {
        // Preshared keys are secrets: they go in a 0600 file, never in argv.
        const addFile = `${file}.add`;
        writeFileAtomic(addFile, renderWireguardPeers(diff.add, state.hub), 0o600, 0o700);
        try {
          await runner.run("wg", ["addconf", ifname, addFile]);
        } finally {
          rmSync(addFile, { force: true });
        }
      }
    }
    changes.push("wireguard peers");
  }
  const hub = hubAddresses(state.hub);
  const want = [
    { family: "inet", local: hub.ipv4, prefixlen: Number(state.hub.ipv4Subnet.split("/")[1]) },
    { family: "inet6", local: hub.ipv6, prefixlen: Number(state.hub.ipv6Prefix.split("/")[1]) },
  ];
  // The hub's global address in the tunnel's public prefix; its prefix route sends the devices' global
  // addresses into the tunnel (model/public-ipv6.ts).
  const tunnelPrefix = tunnelGlobalPrefix(state.hub.publicIpv6);
  if (tunnelPrefix !== undefined)
    want.push({
      family: "inet6",
      local: addressInPrefix(tunnelPrefix, 1n),
      prefixlen: Number(tunnelPrefix.split("/")[1]),
    });
  const have = (link.addr_info ?? []).filter((a) => a.scope !== "link");
  const key = (a: { family: string; local: string; prefixlen: number }) =>
    `${a.family} ${a.local}/${a.prefixlen}`;
  const wantKeys = new Set(want.map(key));
  const haveKeys = new Set(have.map(key));
  for (const a of have) {
    if (!wantKeys.has(key(a))) {
      await runner.run("ip", ["addr", "del", `${a.local}/${a.prefixlen}`, "dev", ifname]);
      changes.push("wireguard addresses");
    }
  }
  for (const a of want) {
    if (!haveKeys.has(key(a))) {
      await runner.run("ip", ["addr", "replace", `${a.local}/${a.prefixlen}`, "dev", ifname]);
      changes.push("wireguard addresses");
    }
  }
  if (!(link.flags ?? []).includes("UP")) {
    await runner.run("ip", ["link", "set", "dev", ifname, "up"]);
    changes.push("wireguard interface");
  }
  return [...new Set(changes)];
}

export async function reconcileNftables(
  ctx: AgentContext,
  ruleset: string,
  verify: boolean,
): Promise<Change[]> {
  const { runner, options } = ctx;
  const paths = options.paths;
  const onDisk = readIfExists(paths.nftablesConfig);
  // -s: no counters or quotas, so the listing of one loaded ruleset never changes by itself.
  const list = () =>
    runner.run("nft", ["-s", "list", "table", "inet", options.nftTable], { allowFailure: true });
  if (verify) {
    const live = await list();
    if (live.code === 0 && nftLiveMatches(readLoadRecord(paths), ruleset, live.stdout)) {
      if (onDisk === ruleset) return [];
      writeFileAtomic(paths.nftablesConfig, ruleset, 0o644);
      return ["nftables"];
    }
  } else {
    const loaded = await runner.run("nft", ["-t", "list", "table", "inet", options.nftTable], {
      allowFailure: true,
    });
    if (onDisk === ruleset && loaded.code === 0) return [];
  }
  // Load first, then save: a ruleset the kernel rejects never becomes the one loaded at boot. One `nft -f` is
  // one kernel transaction, so loading again after an interruption is always safe.
  await runner.run("nft", ["-f", "-"], { input: ruleset });
  writeFileAtomic(paths.nftablesConfig, ruleset, 0o644);
  const after = await list();
  if (after.code === 0)
    updateLoadRecord(paths, { nftRuleset: digest(ruleset), nftLive: digest(after.stdout) });
  return ["nftables"];
}

/** A digest of everything the blocklist zones derive from: the stored lists, 'allow' and 'deny'. */
function blocklistInputs(ctx: AgentContext, state: HubState): string {
  const hash = createHash("sha256");
  // The format is part of the inputs: a hub whose file still holds local-zones rebuilds it as the filter table.
  hash.update(JSON.stringify(["filter-table-1", state.dns.allow, state.dns.deny, state.dns.blocklists]));
  // The groups' stored lists too: a refresh that changed only those rewrites the table, and the filter, seeing
  // a new table, rebuilds the groups' tables from them (site-policy.ts).
  for (const url of allBlocklistUrls(state)) {
    // Read 1 MiB at a time: a million-name list read whole was ~30 MB more at the refresh's peak (bench/dns-filter.ts).
    if (!hashFile(hash, storedListPath(ctx.options.paths.blocklistDir, url))) hash.update("(none)");
  }
  return hash.digest("hex");
}

/** Feeds a file to `hash` in 1 MiB chunks; false when there is no such file. */
function hashFile(hash: Hash, file: string): boolean {
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw e;
  }
  try {
    const chunk = Buffer.alloc(1 << 20);
    for (let n = readSync(fd, chunk); n > 0; n = readSync(fd, chunk)) hash.update(chunk.subarray(0, n));
    return true;
  } finally {
    closeSync(fd);
  }
}

export async function reconcileUnbound(
  ctx: AgentContext,
  state: HubState,
  opts: ReconcileOptions = {},
): Promise<Change[]> {
  const { runner, options } = ctx;
  const paths = options.paths;
  const control = (args: string[], input?: string) =>
    runner.run("unbound-control", [...options.unboundControlArgs, ...args], { input });
  const r = opts.renders ?? renderAll(ctx, state);
  const { settings, peers, peersText } = r;
  const blockText = r.blocklistText;
  const settingsOnDisk = readIfExists(paths.unboundConfig);
  const record = readLoadRecord(paths);
  const recordSettings = () =>
    updateLoadRecord(paths, { unboundSettings: digest(settings), unboundListen: listenLines(settings) });

  const writeAll = (): boolean => {
    let wrote = false;
    if (readIfExists(paths.unboundZones) !== peersText) {
      writeFileAtomic(paths.unboundZones, peersText, 0o644);
      wrote = true;
    }
    if (r.filterTable !== undefined) {
      // Renamed in whole: the filter sees the new file and swaps tables between two queries.
      writeFileAtomic(paths.dnsFilterTable, r.filterTable, 0o600, 0o700);
      wrote = true;
    }
    if (blockText !== undefined) {
      writeFileAtomic(paths.unboundBlocklist, blockText, 0o644);
      wrote = true;
    }
    if (settingsOnDisk !== settings) {
      writeFileAtomic(paths.unboundConfig, settings, 0o644);
      wrote = true;
    }
    return wrote;
  };
  const reload = async (): Promise<Change[]> => {
    writeAll();
    await control(["reload"]);
    recordSettings();
    return ["unbound reload"];
  };
  const restart = async (): Promise<Change[]> => {
    writeAll();
    await runner.run(options.unboundRestartCommand[0], options.unboundRestartCommand.slice(1));
    recordSettings();
    return ["unbound restart"];
  };
  const notRunning = async (): Promise<string | undefined> => {
    const res = await runner.run("unbound-control", [...options.unboundControlArgs, "status"], {
      allowFailure: true,
    });
    return res.code === 0 ? undefined : (res.stderr || res.stdout).trim().split("\n")[0];
  };
  const filesOnly = (why: string): Change[] => {
    // Not started yet (boot order, first install): it reads these files when it starts.
    writeAll();
    recordSettings();
    ctx.log(`[!] unbound is not running (${why}); its files are written for its next start`);
    return ["unbound files"];
  };
  const editLive = async (edits: LiveEdits): Promise<Change[]> => {
    const commands = Object.entries(edits) as [keyof LiveEdits, readonly string[]][];
    if (commands.every(([, lines]) => lines.length === 0)) return [];
    try {
      for (const [command, lines] of commands) {
        if (lines.length === 0) continue;
        const out = await control([command], lines.join("\n") + "\n");
        // unbound-control exits 0 even when a line is rejected; it says so on stdout.
        if (/error/i.test(out.stdout))
          throw new Error(`unbound-control ${command}: ${out.stdout.trim().slice(0, 300)}`);
      }
      return ["unbound zones"];
    } catch (e) {
      const why = await notRunning();
      if (why !== undefined) return filesOnly(why);
      // The files already hold the desired zones; a reload makes unbound match them whatever the live edit left.
      ctx.log(`[!] live zone update failed (${(e as Error).message}); reloading unbound instead`);
      return reload();
    }
  };

  if (opts.verifyLive) {
    const why = await notRunning();
    if (why !== undefined) return filesOnly(why);
    // A settings file on disk that differs from the record may have been loaded behind the record's back (a
    // crash after the write, then unbound restarted on its own): then what runs is unknown, so load again.
    const diskDrift = settingsOnDisk !== undefined && digest(settingsOnDisk) !== record.unboundSettings;
    if (record.unboundSettings !== digest(settings) || diskDrift) {
      // Settings cannot be listed live: unless unbound is known to have loaded these very settings, load them.
      // A reload keeps its sockets, so a different (or unknown) set of listen addresses needs a restart.
      const listening =
        record.unboundListen ?? (settingsOnDisk !== undefined ? listenLines(settingsOnDisk) : undefined);
      return listening === listenLines(settings) ? reload() : restart();
    }
    const blocklist = parseUnboundZones(blockText ?? readIfExists(paths.unboundBlocklist) ?? "");
    const desired: UnboundZones = {
      zones: new Map([...peers.zones, ...blocklist.zones]),
      datas: new Map([...peers.datas, ...blocklist.datas]),
    };
    const live = liveOwnZones(
      (await control(["list_local_zones"])).stdout,
      (await control(["list_local_data"])).stdout,
    );
    const repair = planLiveRepair(live, desired);
    const wrote = writeAll();
    if (repair.action === "reload") return reload();
    if (repair.action === "live") return editLive(repair.edits);
    return wrote ? ["unbound files"] : [];
  }

  const plan = planUnbound({
    settings,
    settingsOnDisk,
    peers,
    peersText,
    peersOnDisk: readIfExists(paths.unboundZones),
    blocklistExists: r.blocklistExists,
    blocklistCurrent: r.blocklistCurrent,
    blocklistText: blockText,
    readBlocklistOnDisk: () => readIfExists(paths.unboundBlocklist) ?? "",
  });
  if (plan.action === "none") {
    // After a clean run the files are what unbound loaded; a hub set up before the load record existed gets one.
    if (record.unboundSettings === undefined) recordSettings();
    return [];
  }
  if (plan.action !== "live") {
    if (plan.ifRunning) {
      const why = await notRunning();
      if (why !== undefined) return filesOnly(why);
    }
    return plan.action === "reload" ? reload() : restart();
  }
  writeAll();
  return editLive(plan.edits);
}
