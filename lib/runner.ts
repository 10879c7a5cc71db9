/**
 * The only module that starts processes. Arguments are arrays (never a shell string), secrets travel on stdin,
 * every command is logged as `[#] wg syncconf wg0 …` with secret arguments masked, and a failure throws an
 * error carrying the command's stderr. Unit tests inject a fake Runner that records calls; the network-namespace
 * test runs this real one.
 */
// eslint-disable-next-line no-restricted-imports -- this is the one process runner the lint rule points to.
import { execFile, spawn, type ChildProcessWithoutNullStreams } from "child_process";

export interface RunOptions {
  /** Written to the process's stdin (how secrets reach `wg`). */
  readonly input?: string;
  /** Indexes into args that are secret and must be masked in the log. */
  readonly secretArgs?: readonly number[];
  /** Resolve instead of throwing on a non-zero exit (for probes such as "does wg0 exist"). */
  readonly allowFailure?: boolean;
  readonly timeoutMs?: number;
}

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface Runner {
  run(command: string, args: readonly string[], options?: RunOptions): Promise<RunResult>;
}

export class CommandError extends Error {
  constructor(
    readonly commandLine: string,
    readonly result: RunResult,
  ) {
    super(
      `${commandLine} failed (exit ${result.code}): ${result.stderr.trim() || result.stdout.trim() || "no output"}`,
    );
    this.name = "CommandError";
  }
}

/** `[#] cmd arg …` with secret args replaced by `(hidden)`; quoting only for readability. */
export function describeCommand(
  command: string,
  args: readonly string[],
  secretArgs: readonly number[] = [],
): string {
  const shown = args.map((a, i) =>
    secretArgs.includes(i) ? "(hidden)" : /^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a),
  );
  return `[#] ${[command, ...shown].join(" ")}`;
}

export type Logger = (line: string) => void;

export function realRunner(log: Logger = (line) => process.stderr.write(line + "\n")): Runner {
  return {
    run(command, args, options = {}) {
      const line = describeCommand(command, args, options.secretArgs);
      log(line);
      return new Promise((resolve, reject) => {
        const child = execFile(
          command,
          [...args],
          { maxBuffer: 512 * 1024 * 1024, timeout: options.timeoutMs ?? 120_000, encoding: "utf8" },
          (error, stdout, stderr) => {
            const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
            const result: RunResult = {
              code,
              stdout,
              stderr: error && typeof error.code !== "number" ? `${stderr}${error.message}` : stderr,
            };
            if (code !== 0 && !options.allowFailure) reject(new CommandError(line.slice(4), result));
            else resolve(result);
          },
        );
        // EPIPE when a process exits without reading stdin is reported through the exit status instead.
        child.stdin?.on("error", () => undefined);
        child.stdin?.end(options.input ?? "");
      });
    },
  };
}

/**
 * A long-lived process fed on stdin (`nft -i` for the DNS filter's set updates: agent/src/site-policy.ts), for
 * callers that cannot pay a process start per command. Arguments are an array, as for `run`.
 */
export function spawnSession(
  command: string,
  args: readonly string[],
  log: Logger = (line) => process.stderr.write(line + "\n"),
): ChildProcessWithoutNullStreams {
  log(`${describeCommand(command, args)} (session)`);
  const child = spawn(command, [...args], { stdio: ["pipe", "pipe", "pipe"] });
  child.stdin.on("error", () => undefined);
  return child;
}
