/**
 * `cloudpal-agent sessions watch`: the small daemon behind "a new public address per session"
 * (agent/src/public-ipv6.ts has the rules). Every `intervalMs` it reads the saved state and, when a device uses
 * "session", one `wg show dump`; only when a device starts a new session does it take the hub lock, save the
 * sessions file and reload the firewall table (one transaction, as an apply does). It logs device names, never
 * addresses.
 */
import { statSync } from "fs";
import { acquireHubLock } from "./lock";
import {
  nextSessions,
  readSessions,
  reconcilePublicIpv6,
  sessionAddresses,
  writeSessions,
} from "./public-ipv6";
import { type AgentContext, reconcileNftables } from "./reconcile";
import { renderNftRuleset } from "./nftables-ruleset";
import { loadPersistedState } from "./state-store";
import { parseWgDump } from "./wireguard-config";
import { parseHubState } from "../../model/state-schema";
import type { HubState } from "../../model/state";

let cached: { mtimeMs: number; size: number; state: HubState } | undefined;

/** The saved state, parsed again only when the file changed (the watcher looks every second). */
function savedState(ctx: AgentContext): HubState | undefined {
  let st;
  try {
    st = statSync(ctx.options.paths.stateFile);
  } catch {
    return undefined; // before the first apply
  }
  if (cached?.mtimeMs !== st.mtimeMs || cached.size !== st.size)
    cached = { mtimeMs: st.mtimeMs, size: st.size, state: parseHubState(loadPersistedState(ctx)) };
  return cached.state;
}

/** One look at the tunnel; returns the devices that started a new session. */
export async function sessionsTick(ctx: AgentContext): Promise<string[]> {
  const paths = ctx.options.paths;
  const state = savedState(ctx);
  if (state === undefined) return [];
  if (!state.peers.some((p) => p.publicIpv6 === "session")) return [];
  const dump = await ctx.runner.run("wg", ["show", ctx.options.interface, "dump"], { allowFailure: true });
  if (dump.code !== 0) return [];
  const before = readSessions(paths);
  const { sessions, changed } = nextSessions(state, parseWgDump(dump.stdout), before);
  if (changed.length === 0) {
    if (JSON.stringify(sessions) !== JSON.stringify(before)) writeSessions(paths, sessions);
    return [];
  }
  const lock = await acquireHubLock(paths);
  try {
    // Under the lock, against the state an apply may just have saved.
    const current = parseHubState(loadPersistedState(ctx));
    const { sessions: next, changed: started } = nextSessions(current, parseWgDump(dump.stdout), before);
    writeSessions(paths, next);
    // Proxies first (on-link prefixes): the new address answers before the first packet leaves from it.
    await reconcilePublicIpv6(ctx, current, next);
    const ruleset = renderNftRuleset(current, {
      table: ctx.options.nftTable,
      interface: ctx.options.interface,
      sessions: sessionAddresses(next),
    });
    await reconcileNftables(ctx, ruleset, false);
    return started;
  } finally {
    lock.release();
  }
}

export async function watchSessions(
  ctx: AgentContext,
  intervalMs: number,
  out: (line: string) => void,
): Promise<never> {
  for (;;) {
    try {
      const started = await sessionsTick(ctx);
      if (started.length > 0) out(`new session: ${started.join(", ")}\n`);
    } catch (e) {
      // A missing state (before the first apply) or a busy lock: try again next time.
      ctx.log(`[!] sessions: ${(e as Error).message}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
