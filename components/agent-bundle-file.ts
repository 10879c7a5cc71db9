/**
 * The agent bundle as a file for `command.remote.CopyToRemote`: Pulumi stores a FileAsset as its path and
 * sha256 only (pulumi `sdk/go/common/resource/asset/asset.go` Serialize; command.md §CopyToRemote), where the
 * bundle as a Command's stdin was stored in full, twice (inputs and outputs).
 *
 * The name carries the content hash, so a run never reads a file another run (or a test with a stand-in
 * bundle) is writing, and a file once written never changes. It is written atomically: temp file, rename.
 */
import { existsSync, mkdirSync, renameSync, writeFileSync } from "fs";
import * as path from "path";

/** build/agent under the project; gitignored. */
export const AGENT_BUNDLE_DIR = path.join(__dirname, "..", "build", "agent");

/**
 * Writes the bundle (if that exact content is not there yet) and returns its path relative to the working
 * directory, the project root when Pulumi runs the program, so the path in state is the same on every machine.
 */
export function writeAgentBundleFile(bundle: { readonly code: string; readonly sha256: string }): string {
  if (!/^[0-9a-f]{64}$/.test(bundle.sha256))
    throw new Error("the agent bundle's sha256 is not 64 hex digits");
  const file = path.join(AGENT_BUNDLE_DIR, `cloudpal-agent-${bundle.sha256.slice(0, 16)}.js`);
  if (!existsSync(file)) {
    mkdirSync(AGENT_BUNDLE_DIR, { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, bundle.code, { mode: 0o644 });
    renameSync(tmp, file);
  }
  return path.relative(process.cwd(), file) || file;
}
