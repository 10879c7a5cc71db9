/**
 * The VM test's process runner: argument arrays only, stdin for payloads and secrets, a hard time bound, each
 * command logged with masked values, and stderr in the error. Kept apart from the agent's runner because this
 * one also starts long-lived processes (QEMU, wireguard-go) whose PIDs the test must own and stop.
 */
// eslint-disable-next-line no-restricted-imports -- the e2e harness starts QEMU, ssh and wireguard-go itself.
import { spawn } from "child_process";

export interface RunOptions {
  /** Written to the process's stdin, then closed. */
  readonly stdin?: string | Buffer;
  /** Killed (SIGKILL) after this long; the error says so. */
  readonly timeoutMs?: number;
  /** Substrings replaced by "***" in the logged command line. */
  readonly mask?: readonly string[];
  /** Return a non-zero exit instead of throwing. */
  readonly allowFailure?: boolean;
  /** Do not log the command (polling loops). */
  readonly quiet?: boolean;
}

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

export class CommandError extends Error {
  constructor(
    message: string,
    readonly result: RunResult,
  ) {
    super(message);
    this.name = "CommandError";
  }
}

function describe(file: string, args: readonly string[], mask: readonly string[]): string {
  let line = [file, ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(" ");
  for (const secret of mask) if (secret) line = line.split(secret).join("***");
  return line.length > 400 ? `${line.slice(0, 400)}…` : line;
}

export function run(file: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const shown = describe(file, args, options.mask ?? []);
  if (!options.quiet) process.stderr.write(`[#] ${shown}\n`);
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(file, [...args], { stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, options.timeoutMs ?? 120_000);
    child.stdout.on("data", (d: Buffer) => out.push(d));
    child.stderr.on("data", (d: Buffer) => err.push(d));
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(new Error(`could not start ${shown}: ${e.message}`));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const result: RunResult = {
        code: code ?? (signal ? 128 : 1),
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
        ms: Date.now() - started,
      };
      if (timedOut) {
        reject(
          new CommandError(
            `${shown} timed out after ${options.timeoutMs ?? 120_000} ms: ${result.stderr}`,
            result,
          ),
        );
      } else if (result.code !== 0 && !options.allowFailure) {
        reject(
          new CommandError(
            `${shown} exited ${result.code}: ${result.stderr.trim() || result.stdout.trim()}`,
            result,
          ),
        );
      } else {
        resolve(result);
      }
    });
    // A remote end that exits early closes the pipe; the exit code tells the story, not EPIPE.
    child.stdin.on("error", () => undefined);
    child.stdin.end(options.stdin ?? "");
  });
}

export interface Background {
  readonly pid: number;
  /** Resolves when the process exits. */
  readonly exited: Promise<number | null>;
  output(): string;
}

/** Starts a long-lived process the caller stops by PID (see stopPid). */
export function start(file: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): Background {
  process.stderr.write(`[#] ${describe(file, args, [])} &\n`);
  const child = spawn(file, [...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...env },
  });
  if (child.pid === undefined) throw new Error(`could not start ${file}`);
  const chunks: Buffer[] = [];
  child.stdout.on("data", (d: Buffer) => chunks.push(d));
  child.stderr.on("data", (d: Buffer) => chunks.push(d));
  const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
  return { pid: child.pid, exited, output: () => Buffer.concat(chunks).toString("utf8") };
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM, then SIGKILL if the process is still there after graceMs. Only ever called with PIDs we started. */
export async function stopPid(pid: number, graceMs = 3000): Promise<void> {
  if (!isAlive(pid)) return;
  process.kill(pid, "SIGTERM");
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return;
    await sleep(100);
  }
  if (isAlive(pid)) process.kill(pid, "SIGKILL");
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
