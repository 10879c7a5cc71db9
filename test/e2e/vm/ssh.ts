/**
 * ssh/scp to a test VM through its loopback port forward. With `hostKey` (the hub's VMs) the key is pinned
 * exactly as the program's Commands pin it (`connection.hostKey`): strict checking against a known_hosts file
 * holding only that key, so a hub that presents any other key fails the test. Without it (the device-side
 * helpers) host keys are not checked: the only host reachable this way is the VM the test itself started.
 */
import { mkdtempSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import { join } from "path";
import { run, sleep, type RunOptions, type RunResult } from "./exec";

export interface SshTarget {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly identityFile: string;
  /** The host key the hub must present, as an authorized_keys-style line ("ssh-ed25519 AAAA…"). */
  readonly hostKey?: string;
}

/** A known_hosts file holding only the pinned key for `[host]:port`. */
function knownHostsFile(target: SshTarget & { hostKey: string }): string {
  const dir = mkdtempSync(join(tmpdir(), "cloudpal-known-hosts-"));
  const file = join(dir, "known_hosts");
  const [type, key] = target.hostKey.trim().split(/\s+/);
  writeFileSync(file, `[${target.host}]:${target.port} ${type} ${key}\n`, { mode: 0o600 });
  return file;
}

const pinnedFiles = new WeakMap<SshTarget, string>();

function hostKeyOptions(target: SshTarget): string[] {
  if (target.hostKey === undefined) {
    return ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"];
  }
  let file = pinnedFiles.get(target);
  if (file === undefined) {
    file = knownHostsFile({ ...target, hostKey: target.hostKey });
    pinnedFiles.set(target, file);
  }
  return [
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    `UserKnownHostsFile=${file}`,
    "-o",
    "HostKeyAlgorithms=ssh-ed25519",
  ];
}

function sshOptions(target: SshTarget, connectTimeoutSeconds: number): string[] {
  return [
    "-i",
    target.identityFile,
    "-o",
    "IdentitiesOnly=yes",
    ...hostKeyOptions(target),
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
