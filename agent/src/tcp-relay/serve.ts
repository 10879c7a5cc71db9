/**
 * `cloudpal-agent tcp serve` (the cloudpal-tcp service, as its own user) and `cloudpal-agent tcp push` (its
 * ExecStartPost, as root): the relay starts with no key and listens on nothing until the agent pushes the
 * saved state's keys, so a restarted relay serves the current keys, never older ones.
 */
import { readIfExists } from "../../../lib/atomic-file";
import { parseHubState } from "../../../model/state-schema";
import { acquireHubLock } from "../lock";
import type { AgentContext } from "../reconcile";
import { loadPersistedState } from "../state-store";
import { pushRelayConfig } from "./control";
import { relayConfig } from "./policy";
import { DEFAULT_RELAY_OPTIONS, RelayServer, serveControl } from "./server";

export async function serveRelay(ctx: AgentContext): Promise<number> {
  const relay = new RelayServer({
    ...DEFAULT_RELAY_OPTIONS,
    handshakeTimeoutMs: ctx.options.tcpHandshakeTimeoutMs,
    log: ctx.log,
  });
  const control = await serveControl(ctx.options.paths.tcpControlSocket, relay);
  ctx.log(`[#] tcp relay: waiting for keys on ${ctx.options.paths.tcpControlSocket}`);
  return new Promise<number>((resolve) => {
    const stop = () => {
      control.close();
      void relay.close().then(() => resolve(0));
    };
    process.once("SIGTERM", stop);
    process.once("SIGINT", stop);
  });
}

/**
 * Under the hub lock, so a push of the saved state never lands after an apply's newer one. Run right after the
 * relay's start, so it waits (up to 10 s) for the control socket. Before the first apply there is nothing to
 * push, and that is no failure: the first apply pushes.
 */
export async function pushSaved(ctx: AgentContext, waitMs = 10_000): Promise<string> {
  const paths = ctx.options.paths;
  if (readIfExists(paths.stateFile) === undefined) return "tcp relay: no saved state yet\n";
  const lock = await acquireHubLock(paths);
  try {
    const config = relayConfig(parseHubState(loadPersistedState(ctx)));
    const deadline = Date.now() + waitMs;
    for (;;) {
      const r = await pushRelayConfig(paths.tcpControlSocket, config);
      if (r.state === "loaded") return "tcp relay: keys loaded\n";
      if (r.state === "unchanged") return "tcp relay: nothing changed\n";
      if (Date.now() > deadline) throw new Error(`the TCP relay is not running (${r.why})`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } finally {
    lock.release();
  }
}
