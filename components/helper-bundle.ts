/**
 * Bundles the device helper (device/src/helper.ts) into one CommonJS file for Node.js 18 or later, every
 * dependency inlined, as the agent is bundled (components/agent-bundle.ts). `npm run device -- NAME --helper`
 * embeds it in the device's installer.
 */
import { bundleForNode18 } from "./agent-bundle";
import * as path from "path";

// Bundled by path, never imported: the program does not depend on the helper's code.
export const HELPER_ENTRY = path.join(__dirname, "..", "device", "src", "helper.ts");

export function buildHelperBundle(): { code: string; sha256: string } {
  return bundleForNode18(HELPER_ENTRY, "cloudpal-helper.js");
}
