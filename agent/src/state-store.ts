/**
 * The persisted desired state: written on every apply (0600 in a 0700 directory, atomically), read back at
 * boot, by the blocklist timer and by `status` / `peer config`. It holds the hub's private key and every
 * preshared key, so nothing else writes or prints it.
 */
import { readIfExists, writeFileAtomic } from "../../lib/atomic-file";
import type { HubState } from "../../model/state";
import type { AgentContext } from "./reconcile";
import { assertSecretStorage } from "./secret-storage";

export function persistState(ctx: AgentContext, state: HubState): void {
  assertSecretStorage(ctx.options.paths);
  writeFileAtomic(ctx.options.paths.stateFile, JSON.stringify(state, null, 2) + "\n", 0o600, 0o700);
}

/** The persisted state's text (validated by the caller), or a one-sentence error saying how to make one. */
export function loadPersistedState(ctx: AgentContext): string {
  const text = readIfExists(ctx.options.paths.stateFile);
  if (text === undefined) {
    throw new Error(
      `no persisted state at '${ctx.options.paths.stateFile}': run 'cloudpal-agent apply' with the state on stdin first.`,
    );
  }
  return text;
}
