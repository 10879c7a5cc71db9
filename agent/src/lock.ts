/**
 * One lock for every command that changes the hub (apply, reconcile, blocklists refresh, and so the boot unit):
 * an exclusive flock(2) on `<stateDir>/agent.lock`.
 *
 * Why flock(2), taken through util-linux's flock(1) on a descriptor this process holds: Node has no flock call,
 * and the alternatives are worse. A lock file made with O_EXCL outlives a SIGKILL, so it needs stale-lock
 * detection by PID, which two waiters can both decide at once (each removes the file, each creates its own)
 * and which a reused PID fools. An npm package either needs native code (not in the esbuild bundle for the
 * hub's Node 18) or uses mkdir plus mtime heuristics with the same takeover races. A flock belongs to the open
 * file description, so the kernel releases it when the last descriptor closes, which a SIGKILL or a power cut
 * does too: there is never a stale lock to detect. This process opens the file and hands that very descriptor
 * to `flock --wait N 3` as its fd 3 (util-linux flock(1): "flock [options] number", the `( flock 9; … )
 * 9>file` idiom); the child locks the shared description and exits, and the lock stays with the descriptor
 * this process keeps open until it finishes or dies. util-linux is essential on Debian and Ubuntu, so flock(1)
 * is on every hub. Wrapping the units in flock(1) instead would leave a hand-run `cloudpal-agent apply` (and
 * the delivery command) unlocked.
 *
 * Nothing else inherits the descriptor: Node opens files close-on-exec, and the runner passes children only
 * their stdio, so a command the agent started cannot keep the lock after the agent is gone.
 */
// eslint-disable-next-line no-restricted-imports -- flock(1) must receive this process's open lock descriptor as its fd 3, which lib/runner.ts (stdio only, by design) cannot pass.
import { spawn } from "child_process";
import { closeSync, mkdirSync, openSync } from "fs";
import * as path from "path";
import type { AgentPaths } from "./options";

/**
 * How long a command waits for another to finish. An apply of thousands of peers or a reload of a large
 * blocklist takes seconds to tens of seconds; two minutes is far beyond that and still ends a stuck wait.
 */
export const LOCK_WAIT_SECONDS = 120;

export function lockPath(paths: AgentPaths): string {
  return path.join(paths.stateDir, "agent.lock");
}

/** Holds the lock until `release` (or the process's end, however it ends). */
export interface HubLock {
  release(): void;
}

/** Waits up to `waitSeconds` for the hub lock; throws a one-sentence error naming the file when it cannot. */
export async function acquireHubLock(paths: AgentPaths, waitSeconds = LOCK_WAIT_SECONDS): Promise<HubLock> {
  mkdirSync(paths.stateDir, { recursive: true, mode: 0o700 });
  const file = lockPath(paths);
  // "a": created if missing, never truncated; the file's content is irrelevant, only its lock matters.
  const fd = openSync(file, "a", 0o600);
  let result: { code: number | null; stderr: string };
  try {
    result = await new Promise((resolve, reject) => {
      const child = spawn("flock", ["--exclusive", "--wait", String(waitSeconds), "3"], {
        stdio: ["ignore", "ignore", "pipe", fd],
      });
      let stderr = "";
      child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
      child.on("error", reject);
      child.on("close", (code) => resolve({ code, stderr }));
    });
  } catch (e) {
    closeSync(fd);
    throw new Error(
      `could not run flock(1) to take the hub lock '${file}' (${(e as Error).message}): install util-linux.`,
    );
  }
  if (result.code !== 0) {
    closeSync(fd);
    throw new Error(
      result.code === 1 && result.stderr.trim() === ""
        ? `another cloudpal-agent command has held the hub lock '${file}' for ${waitSeconds} s; nothing was changed: run this command again once it has finished.`
        : `could not take the hub lock '${file}' (flock: ${result.stderr.trim() || `exit ${result.code}`}); nothing was changed.`,
    );
  }
  let held = true;
  return {
    release() {
      if (!held) return;
      held = false;
      closeSync(fd);
    },
  };
}
