#!/usr/bin/env node
/** Entry point of the bundle: real runner, options from the environment, process stdio. */
import { runCli } from "./commands";
import { optionsFromEnv } from "./options";
import { realRunner } from "../../lib/runner";

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

async function main(): Promise<number> {
  const log = (line: string) => process.stderr.write(line + "\n");
  // Files the agent creates hold keys; nothing it writes should be group- or world-writable by default.
  process.umask(0o022);
  let options;
  try {
    options = optionsFromEnv(process.env);
  } catch (e) {
    log((e as Error).message);
    return 2;
  }
  return runCli(
    process.argv.slice(2),
    { options, runner: realRunner(log), log },
    {
      stdin: readStdin,
      stdout: (t) => process.stdout.write(t),
      stderr: (t) => process.stderr.write(t),
    },
  );
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  },
);
