/**
 * ssh/scp to a test VM through its loopback port forward. Host keys are not checked: every boot of a fresh
 * overlay makes new ones, and the only host reachable this way is the VM the test itself started.
 */
import { run, sleep, type RunOptions, type RunResult } from "./exec";

export interface SshTarget {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly identityFile: string;
}

function sshOptions(target: SshTarget, connectTimeoutSeconds: number): string[] {
  return [
    "-i",
    target.identityFile,
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
    "-o",
    "BatchMode=yes",
    "-o",
    `ConnectTimeout=${connectTimeoutSeconds}`,
    "-o",
    "ServerAliveInterval=5",
    "-o",
    "ServerAliveCountMax=6",
  ];
}

export class Ssh {
  constructor(readonly target: SshTarget) {}

  /**
   * Runs `command` through the remote login shell, exactly as `command.remote.Command` does with its `create`
   * string. Payloads and secrets go on stdin.
   */
  exec(command: string, options: RunOptions = {}): Promise<RunResult> {
    const t = this.target;
    return run("ssh", [...sshOptions(t, 10), "-p", String(t.port), `${t.user}@${t.host}`, "--", command], {
      timeoutMs: 300_000,
      ...options,
    });
  }

  /** Copies a remote file to the host (logs on failure). */
  async fetch(remotePath: string, localPath: string): Promise<void> {
    const t = this.target;
    await run(
      "scp",
      [...sshOptions(t, 10), "-P", String(t.port), `${t.user}@${t.host}:${remotePath}`, localPath],
      {
        timeoutMs: 60_000,
      },
    );
  }

  /**
   * Copies a local file to the host as the login user, over scp (SFTP protocol with OpenSSH 9), the way
   * `command.remote.CopyToRemote` does: a relative `remotePath` lands in the user's home directory.
   */
  async put(localPath: string, remotePath: string): Promise<RunResult> {
    const t = this.target;
    return run(
      "scp",
      [...sshOptions(t, 10), "-P", String(t.port), localPath, `${t.user}@${t.host}:${remotePath}`],
      { timeoutMs: 120_000 },
    );
  }

  /** Polls until a trivial command succeeds; bounded, and the error carries ssh's last complaint. */
  async waitUntilReachable(timeoutMs: number, isStillRunning: () => boolean = () => true): Promise<number> {
    const started = Date.now();
    let last = "";
    while (Date.now() - started < timeoutMs) {
      if (!isStillRunning()) throw new Error(`the VM stopped while waiting for ssh; last ssh error: ${last}`);
      const r = await this.exec("true", { allowFailure: true, quiet: true, timeoutMs: 20_000 }).catch(
        (e: Error) => ({
          code: -1,
          stderr: e.message,
        }),
      );
      if (r.code === 0) return Date.now() - started;
      last = r.stderr.trim();
      await sleep(2000);
    }
    throw new Error(
      `ssh to ${this.target.host}:${this.target.port} did not answer within ${timeoutMs} ms: ${last}`,
    );
  }
}

export function bootId(ssh: Ssh): Promise<string> {
  return ssh
    .exec("cat /proc/sys/kernel/random/boot_id", { quiet: true, timeoutMs: 30_000 })
    .then((r) => r.stdout.trim());
}
