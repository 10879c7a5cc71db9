/**
 * The DNS filter on the hub: its table built from the state and the stored lists, its process (`cloudpal-agent
 * dns-filter serve`, the unit cloud-init/units.ts installs) and the redirect that sends the tunnel's DNS to it.
 *
 * The redirect lives in a table of its own, added by the filter unit's ExecStartPost once the filter listens and
 * deleted by its ExecStopPost, which systemd also runs when the process dies. Its chain hooks prerouting before
 * the agent's own DNS DNAT (priority dstnat - 10): a connection gets one NAT binding per hook and the first chain
 * that binds wins, so while the redirect is there, tunnel DNS (to the hub or to any resolver outside the
 * tunnel) reaches the filter on FILTER_PORT; when it is gone, the agent's rule sends it to unbound on 53 as
 * before. A dead filter thus means unfiltered answers for the seconds systemd takes to restart it, never no
 * answers. Conntrack keeps the binding of a flow that began before the change for as long as the flow lives
 * (30 s for UDP): stub resolvers use a new source port per query, so that is at most a retried query.
 */
import * as dgram from "dgram";
import * as net from "net";
import { hubAddresses } from "../../model/addressing";
import { canonicalIpv6 } from "../../model/ip-text";
import { DNS_FILTER_PORT, MANAGED_HEADER } from "../../model/layout";
import type { HubState } from "../../model/state";
import { parseHubState } from "../../model/state-schema";
import { readFileSync, watchFile } from "fs";
import { maxBlocklistEntries } from "./blocklist";
import { storedListPath } from "./blocklist-fetch";
import { countLines, FilterTableBuilder, readTableCounts } from "./dns-filter-table";
import type { AgentOptions } from "./options";
import type { Logger, Runner } from "../../lib/runner";

/** reconcile.ts AgentContext, restated: reconcile and status import this module. */
interface AgentContext {
  readonly options: AgentOptions;
  readonly runner: Runner;
  readonly log: Logger;
}

/** status.ts ServiceStatus, restated for the same reason. */
interface ServiceStatus {
  readonly name: string;
  readonly healthy: boolean;
  readonly detail: string;
}
import { DnsFilterServer } from "./dns-filter-server";
import { filterSitePolicies } from "./site-policy";
import { clientsOf } from "./filter-clients";

/** Where the filter listens on the hub's tunnel addresses (the redirect's target). */
export const FILTER_PORT = DNS_FILTER_PORT;
/** The nftables table the filter's unit owns: only the redirect. */
export const REDIRECT_TABLE_SUFFIX = "_dnsfilter";

export function redirectTable(agentTable: string): string {
  return `${agentTable}${REDIRECT_TABLE_SUFFIX}`;
}

/** The filter's table for a state: deny and allow from the state, every stored list, streamed; as file pieces. */
export function buildFilterTable(
  state: HubState,
  blocklistDir: string,
  maxEntries: number = maxBlocklistEntries(),
): { parts: Buffer[]; blocked: number; dropped: number } {
  const b = new FilterTableBuilder(maxEntries);
  for (const d of state.dns.deny) b.addDeny(d);
  for (const a of state.dns.allow) b.addAllow(a);
  const files = state.dns.blocklists.map((url) => storedListPath(blocklistDir, url));
  b.reserveBlocked(files.reduce((n, f) => n + countLines(f), 0));
  let blocked = 0;
  for (const f of files) blocked += b.addBlockedFile(f);
  return { parts: b.finishParts(), blocked: blocked - b.dropped, dropped: b.dropped };
}

/** The redirect, loaded with `nft -f -` (one transaction, replacing an older copy). */
export function renderRedirect(state: HubState, agentTable: string, ifname: string): string {
  const table = redirectTable(agentTable);
  const hub = hubAddresses(state.hub);
  const wg = JSON.stringify(ifname);
  const to = `redirect to :${FILTER_PORT} comment "DNS goes through the filter"`;
  return [
    MANAGED_HEADER,
    `table inet ${table} {}`,
    `delete table inet ${table}`,
    `table inet ${table} {`,
    "  chain prerouting {",
    "    type nat hook prerouting priority dstnat - 10; policy accept;",
    `    iifname ${wg} ip daddr ${hub.ipv4} meta l4proto { udp, tcp } th dport 53 ${to}`,
    `    iifname ${wg} ip6 daddr ${canonicalIpv6(hub.ipv6)} meta l4proto { udp, tcp } th dport 53 ${to}`,
    `    iifname ${wg} ip daddr != ${state.hub.ipv4Subnet} meta l4proto { udp, tcp } th dport 53 ${to}`,
    `    iifname ${wg} ip6 daddr != ${state.hub.ipv6Prefix} meta l4proto { udp, tcp } th dport 53 ${to}`,
    "  }",
    // The hub's own queries to its tunnel addresses: the TCP path's relay resolves names there and relays its
    // devices' DNS there (tcp-relay/server.ts, policy.ts), so they are filtered as the tunnel's are. Not the
    // filter's own queries to unbound, which leave from loopback (dns-filter-server.ts localSource).
    "  chain output {",
    // -110: before any NAT output chain at the usual -100. nft names `dstnat` for prerouting only ("invalid
    // priority expression value in this context" in output: nft(8), "Standard priority names").
    "    type nat hook output priority -110; policy accept;",
    `    ip daddr ${hub.ipv4} ip saddr != 127.0.0.1 meta l4proto { udp, tcp } th dport 53 dnat ip to ${hub.ipv4}:${FILTER_PORT} comment "the hub's own DNS goes through the filter"`,
    `    ip6 daddr ${canonicalIpv6(hub.ipv6)} ip6 saddr != ::1 meta l4proto { udp, tcp } th dport 53 dnat ip6 to [${canonicalIpv6(hub.ipv6)}]:${FILTER_PORT} comment "the hub's own DNS goes through the filter"`,
    "  }",
    "}",
    "",
  ].join("\n");
}

/** Whether the filter answers a query (for hub.pal, which it never refuses) on `address`, within 1 s. */
export function filterAnswers(address: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket(net.isIPv6(address) ? "udp6" : "udp4");
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.close();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), 1000);
    socket.on("error", () => done(false));
    socket.on("message", (m) => done(m.length >= 12 && m.readUInt16BE(0) === 0xcafe));
    const q = Buffer.from("cafe01000001000000000000036875620370616c0000010001", "hex");
    socket.send(q, FILTER_PORT, address);
  });
}

/**
 * The unit's ExecStartPost: waits (up to 60 s) until the filter answers, then adds the redirect, so the tunnel's
 * DNS never goes to a filter that is not listening yet.
 */
export async function redirectOn(ctx: AgentContext, state: HubState): Promise<void> {
  const hub = hubAddresses(state.hub);
  const deadline = Date.now() + 60_000;
  while (!(await filterAnswers(hub.ipv4))) {
    if (Date.now() > deadline) throw new Error("the DNS filter does not answer: the redirect stays off");
    await new Promise((r) => setTimeout(r, 200));
  }
  await ctx.runner.run("nft", ["-f", "-"], {
    input: renderRedirect(state, ctx.options.nftTable, ctx.options.interface),
  });
}

export async function redirectOff(ctx: AgentContext): Promise<void> {
  await ctx.runner.run("nft", ["delete", "table", "inet", redirectTable(ctx.options.nftTable)], {
    allowFailure: true,
  });
}

/** What `status` says about the filter: the redirect in place means the filter has started and not stopped. */
export async function filterStatus(ctx: AgentContext): Promise<ServiceStatus> {
  const r = await ctx.runner.run(
    "nft",
    ["-t", "list", "table", "inet", redirectTable(ctx.options.nftTable)],
    {
      allowFailure: true,
    },
  );
  let counts: string;
  try {
    const c = readTableCounts(ctx.options.paths.dnsFilterTable);
    counts = c ? `${c.block} blocked, ${c.allow} allowed, ${c.deny} denied names` : "no table yet";
  } catch (e) {
    counts = `table unreadable: ${(e as Error).message}`;
  }
  return r.code === 0
    ? { name: "dns filter", healthy: true, detail: `filtering tunnel DNS (${counts})` }
    : {
        name: "dns filter",
        healthy: false,
        detail: `NOT FILTERING: the filter is not running, so unbound answers tunnel DNS unfiltered until systemd restarts it (journalctl -u cloudpal-dns-filter)`,
      };
}

/** `cloudpal-agent dns-filter serve`: runs until killed; SIGHUP reloads the table at once. */
export async function serveFilter(ctx: AgentContext, state: HubState): Promise<number> {
  const hub = hubAddresses(state.hub);
  // Per-group lists and site modes (site-policy.ts): applied again with every new state and every new table (a
  // blocklist refresh rewrites the table after storing the lists, the groups' included). A group's blocklist
  // table is rebuilt, in the background, only when its stored copies changed; `rebuilt` applies it when ready.
  let groupsReady: (groups: ReturnType<typeof sites.load>) => void = () => {};
  const sites = filterSitePolicies({
    rebuilt: (groups) => groupsReady(groups),
    agentTable: ctx.options.nftTable,
    blocklistDir: ctx.options.paths.blocklistDir,
    maxEntries: maxBlocklistEntries(),
    upstream: { address: hub.ipv4, port: 53 },
    log: ctx.log,
  });
  const server = new DnsFilterServer({
    listen: [
      { address: hub.ipv4, port: FILTER_PORT },
      { address: canonicalIpv6(hub.ipv6), port: FILTER_PORT },
    ],
    upstream: { address: hub.ipv4, port: 53 },
    tableFile: ctx.options.paths.dnsFilterTable,
    log: ctx.log,
    sites: sites.runtime,
  });
  groupsReady = (groups) => server.setGroups(groups);
  // The devices by address, built once per state for both lookups (the verdicts' and the site policies').
  let current = { state, clients: clientsOf(state) };
  const adopt = (now: HubState) => {
    current = { state: now, clients: clientsOf(now) };
    server.setClients(current.clients);
    server.setGroups(sites.load(current.state, current.clients));
  };
  adopt(state);
  watchFile(ctx.options.paths.dnsFilterTable, { interval: 1000 }, () =>
    server.setGroups(sites.load(current.state, current.clients)),
  );
  await server.start();
  process.on("SIGHUP", () => server.reload());
  // New tunnel addresses (a changed subnet) need new sockets and a new redirect: exit, systemd starts it again.
  const addresses = JSON.stringify(hub);
  watchFile(ctx.options.paths.stateFile, { interval: 2000 }, () => {
    try {
      const now = parseHubState(readFileSync(ctx.options.paths.stateFile, "utf8"));
      if (JSON.stringify(hubAddresses(now.hub)) !== addresses) {
        ctx.log("the hub's tunnel addresses changed: restarting the filter");
        process.exit(0);
      }
      // Devices added, removed or moved to another group.
      adopt(now);
    } catch {
      // A state being replaced is read again at the next poll.
    }
  });
  ctx.log(`dns filter listening on ${hub.ipv4} and ${canonicalIpv6(hub.ipv6)} port ${FILTER_PORT}`);
  return new Promise<number>((resolve) => {
    const stop = () => {
      server.close();
      resolve(0);
    };
    process.once("SIGTERM", stop);
    process.once("SIGINT", stop);
  });
}
