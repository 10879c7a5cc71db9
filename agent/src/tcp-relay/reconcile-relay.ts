/**
 * The TCP path's part of an apply: the relay gets the keys and rules the state implies (policy.ts), and
 * answers once the sessions of removed or changed devices are cut (server.ts). Comparing is the relay's job:
 * it answers "unchanged" to the configuration it already runs, so applying the same state twice changes nothing.
 */
import type { Logger } from "../../../lib/runner";
import type { HubState } from "../../../model/state";
import { pushRelayConfig } from "./control";
import { relayConfig } from "./policy";

export async function reconcileRelay(
  socketPath: string,
  state: HubState,
  log: Logger,
): Promise<"tcp relay"[]> {
  let result;
  try {
    result = await pushRelayConfig(socketPath, relayConfig(state));
  } catch (e) {
    // The rest of the hub (WireGuard, firewall, DNS) must not wait on the TCP path: a port taken by another
    // server on an existing machine is reported, and every apply tries again.
    log(`[!] ${(e as Error).message}`);
    return [];
  }
  if (result.state === "not running") {
    // Its service pushes the saved state when it starts (ExecStartPost=cloudpal-agent tcp push).
    if (state.hub.tcpPort !== undefined)
      log(`[!] the TCP relay is not running (${result.why}); it gets its keys when it starts`);
    return [];
  }
  return result.state === "loaded" ? ["tcp relay"] : [];
}
