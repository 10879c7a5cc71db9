/**
 * Bundles the device helper (device/src/helper.ts) into one CommonJS file for Node.js 18 or later, every
 * dependency inlined, as the agent is bundled (components/agent-bundle.ts). `npm run device -- NAME --helper`
 * embeds it in the device's installer.
 */
import { buildSync } from "esbuild";
import { createHash } from "crypto";
import * as path from "path";

// Bundled by path, never imported: the program does not depend on the helper's code.
export const HELPER_ENTRY = path.join(__dirname, "..", "device", "src", "helper.ts");

export function buildHelperBundle(): { code: string; sha256: string } {
  const result = buildSync({
    entryPoints: [HELPER_ENTRY],
    bundle: true,
    platform: "node",
    target: "node18",
    format: "cjs",
    write: false,
    outfile: "cloudpal-helper.js",
    absWorkingDir: path.join(__dirname, ".."),
    legalComments: "none",
    logLevel: "silent",
  });
  const code = result.outputFiles[0].text;
  return { code, sha256: createHash("sha256").update(code).digest("hex") };
}
