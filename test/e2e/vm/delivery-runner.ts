/**
 * Runs the delivery steps (components/delivery.ts) over ssh, in order, each with its payload on stdin: what
 * the Pulumi engine does with one `command.remote.Command` per step, minus the engine. A step with an
 * `upload` first gets its file copied with scp to the same relative path, as the program's
 * `command.remote.CopyToRemote` does. The test calls this with the very list the program uses, so the
 * commands it proves are the commands that ship.
 */
import { mkdtempSync, rmSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import { join } from "path";
import type { Payload, RemoteStep } from "../../../components/delivery";
import type { RunResult } from "./exec";
import type { Ssh } from "./ssh";

/** Payload bytes; the agent bundle's are the bytes of the program's FileAsset (test/e2e/vm/program.ts). */
export type Payloads = Partial<Record<Payload, string | Buffer>>;

async function upload(ssh: Ssh, content: string | Buffer, remotePath: string): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "cloudpal-upload-"));
  try {
    const file = join(dir, "upload.js");
    writeFileSync(file, content, { mode: 0o644 });
    await ssh.put(file, remotePath);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface StepTiming {
  readonly name: string;
  readonly ms: number;
  readonly stdout: string;
}

export async function runStepsOverSsh(
  steps: readonly RemoteStep[],
  payloads: Payloads,
  ssh: Ssh,
  options: { readonly timeoutMs?: number } = {},
): Promise<StepTiming[]> {
  const timings: StepTiming[] = [];
  for (const step of steps) {
    let stdin: string | Buffer | undefined;
    if (step.stdin) {
      stdin = payloads[step.stdin];
      if (stdin === undefined)
        throw new Error(`delivery step '${step.name}' needs the '${step.stdin}' payload`);
    }
    let result: RunResult;
    try {
      if (step.upload) {
        const content = payloads[step.upload.payload];
        if (content === undefined)
          throw new Error(`delivery step '${step.name}' needs the '${step.upload.payload}' file`);
        await upload(ssh, content, step.upload.remotePath);
      }
      result = await ssh.exec(step.command, { stdin, timeoutMs: options.timeoutMs ?? 20 * 60_000 });
    } catch (e) {
      throw new Error(`delivery step '${step.name}' failed: ${(e as Error).message}`);
    }
    timings.push({ name: step.name, ms: result.ms, stdout: result.stdout });
  }
  return timings;
}
