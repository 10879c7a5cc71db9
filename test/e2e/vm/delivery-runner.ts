/**
 * Runs the delivery steps (components/delivery.ts) over ssh, in order, each with its payload on stdin: what
 * the Pulumi engine does with one `command.remote.Command` per step, minus the engine. The test calls this with
 * the very list the program uses, so the commands it proves are the commands that ship.
 */
import type { RemoteStep, StdinPayload } from "../../../components/delivery";
import type { RunResult } from "./exec";
import type { Ssh } from "./ssh";

export type Payloads = Partial<Record<StdinPayload, string | Buffer>>;

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
      result = await ssh.exec(step.command, { stdin, timeoutMs: options.timeoutMs ?? 20 * 60_000 });
    } catch (e) {
      throw new Error(`delivery step '${step.name}' failed: ${(e as Error).message}`);
    }
    timings.push({ name: step.name, ms: result.ms, stdout: result.stdout });
  }
  return timings;
}
