/**
 * Runs the agent's CLI in-process against a given context (a FakeHub runner in unit tests), collecting what
 * it prints: the same entry point `cloudpal-agent` runs, with stdin given as a string.
 */
import { runCli } from "../src/commands";
import type { AgentContext } from "../src/reconcile";

export interface CliResult {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

export async function runAgentCli(
  ctx: AgentContext,
  args: readonly string[],
  stdin = "",
): Promise<CliResult> {
  let out = "";
  let err = "";
  const code = await runCli(args, ctx, {
    stdin: async () => stdin,
    stdout: (t) => (out += t),
    stderr: (t) => (err += t),
  });
  return { code, out, err };
}
