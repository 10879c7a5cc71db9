/**
 * `cloudpal-agent status`: what the hub is doing now, read from the live system (not from the state file),
 * with peers named from the persisted state.
 */
import type { AgentContext } from "./reconcile";
import type { HubState } from "../../model/state";
import { parseWgDump } from "./wireguard-config";
import { heldCopies } from "./blocklist-fetch";
import { allBlocklistUrls } from "./site-policy";
import { filterStatus } from "./dns-filter";

export interface PeerStatus {
  readonly name: string;
  readonly publicKey: string;
  readonly endpoint?: string;
  /** Unix seconds, 0 = never. */
  readonly latestHandshake: number;
  readonly rxBytes: number;
  readonly txBytes: number;
}

export interface ServiceStatus {
  readonly name: string;
  readonly healthy: boolean;
  readonly detail: string;
}

export interface HubStatus {
  readonly peers: PeerStatus[];
  readonly services: ServiceStatus[];
}

export async function collectStatus(ctx: AgentContext, state: HubState): Promise<HubStatus> {
  const { runner, options } = ctx;
  const names = new Map(state.peers.map((p) => [p.publicKey, p.name]));
  const services: ServiceStatus[] = [];
  const wg = await runner.run("wg", ["show", options.interface, "dump"], { allowFailure: true });
  let peers: PeerStatus[] = [];
  if (wg.code === 0) {
    const dump = parseWgDump(wg.stdout);
    peers = dump.peers.map((p) => ({ ...p, name: names.get(p.publicKey) ?? "(unknown peer)" }));
    services.push({
      name: "wireguard",
      healthy: true,
      detail: `${options.interface} listening on UDP ${dump.listenPort}, ${dump.peers.length} peers`,
    });
  } else {
    services.push({
      name: "wireguard",
      healthy: false,
      detail: wg.stderr.trim() || `${options.interface} is missing`,
    });
  }
  const nft = await runner.run("nft", ["-t", "list", "table", "inet", options.nftTable], {
    allowFailure: true,
  });
  services.push({
    name: "nftables",
    healthy: nft.code === 0,
    detail: nft.code === 0 ? `table inet ${options.nftTable} loaded` : nft.stderr.trim() || "table missing",
  });
  const unbound = await runner.run("unbound-control", [...options.unboundControlArgs, "status"], {
    allowFailure: true,
  });
  services.push({
    name: "unbound",
    healthy: unbound.code === 0,
    detail:
      unbound.code === 0
        ? (/uptime: .*/.exec(unbound.stdout)?.[0] ?? "running")
        : unbound.stderr.trim() || unbound.stdout.trim() || "not running",
  });
  services.push(await filterStatus(ctx));
  // A copy the shrink guard held back (agent/src/blocklist-fetch.ts) leaves the filter on the last good copy.
  // The groups' lists too (site-policy.ts): the refresh stores and guards them the same way.
  const urls = new Set(allBlocklistUrls(state));
  const held = heldCopies(options.paths.blocklistDir).filter((h) => urls.has(h.url));
  if (held.length > 0)
    services.push({
      name: "blocklists",
      healthy: false,
      detail: held
        .map(
          (h) =>
            `${h.url} held back at ${h.at}: ${h.domains} domains against ${h.lastGood} in the copy in use`,
        )
        .join("; "),
    });
  return { peers: peers.sort((a, b) => a.name.localeCompare(b.name)), services };
}

function ago(seconds: number, now: number): string {
  if (seconds === 0) return "never";
  const d = Math.max(0, now - seconds);
  return d < 120
    ? `${d} s ago`
    : d < 7200
      ? `${Math.round(d / 60)} min ago`
      : `${Math.round(d / 3600)} h ago`;
}

function bytes(n: number): string {
  return n < 1024
    ? `${n} B`
    : n < 1024 ** 2
      ? `${(n / 1024).toFixed(1)} KiB`
      : n < 1024 ** 3
        ? `${(n / 1024 ** 2).toFixed(1)} MiB`
        : `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

export function formatStatus(status: HubStatus, nowSeconds: number): string {
  const lines = ["services:"];
  for (const s of status.services) lines.push(`  ${s.healthy ? "ok  " : "FAIL"} ${s.name}: ${s.detail}`);
  lines.push("peers:");
  if (status.peers.length === 0) lines.push("  (none)");
  for (const p of status.peers) {
    lines.push(
      `  ${p.name}: handshake ${ago(p.latestHandshake, nowSeconds)}, received ${bytes(p.rxBytes)}, sent ${bytes(p.txBytes)}, endpoint ${p.endpoint ?? "(none)"}`,
    );
  }
  return lines.join("\n") + "\n";
}
