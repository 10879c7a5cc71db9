/**
 * Bundles the agent into one CommonJS file for the hub's distribution Node.js (Debian 12: 18.20), with every
 * dependency inlined and no native module, so installing it needs only `apt install nodejs`.
 * The output is deterministic (same sources → same bytes → same sha256), which lets the delivery step skip
 * re-uploading an unchanged agent.
 */
import { buildSync } from "esbuild";
import { createHash } from "crypto";
import { mkdirSync, writeFileSync } from "fs";
import * as path from "path";

// The agent is bundled by path, never imported: the program must not depend on the agent's code.
export const AGENT_ENTRY = path.join(__dirname, "..", "agent", "src", "cli.ts");

/**
 * One TypeScript entry as one CommonJS file for Node.js 18, every dependency inlined, no native module: how the
 * agent (hub) and the device helper are shipped. Deterministic: the same sources give the same bytes.
 */
export function bundleForNode18(entry: string, outfile: string): { code: string; sha256: string } {
  const result = buildSync({
    entryPoints: [entry],
    bundle: true,
    platform: "node",
    target: "node18",
    format: "cjs",
    write: false,
    outfile,
    // Paths in the output are relative to this directory, so the bundle does not depend on the checkout path.
    absWorkingDir: path.join(__dirname, ".."),
    legalComments: "none",
    logLevel: "silent",
  });
  const code = result.outputFiles[0].text;
  return { code, sha256: createHash("sha256").update(code).digest("hex") };
}

export function buildAgentBundle(): { code: string; sha256: string } {
  // cli.ts carries its own `#!/usr/bin/env node` line; esbuild keeps it at the top.
  return bundleForNode18(AGENT_ENTRY, "cloudpal-agent.js");
}

if (require.main === module) {
  const out = path.join(__dirname, "..", "build", "agent", "cloudpal-agent.js");
  const { code, sha256 } = buildAgentBundle();
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, code, { mode: 0o755 });
  process.stdout.write(`${out} ${code.length} bytes sha256 ${sha256}\n`);
}
