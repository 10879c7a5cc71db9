/**
 * Key material goes only where it is encrypted at rest. On DigitalOcean and Vultr the instance disk is not
 * (documented as) encrypted, so the bootstrap mounts the provider's volume on the state directory and writes
 * its mount unit; the agent then refuses to write a key while that directory is not a mount point, rather than
 * leave the hub's private key on the unencrypted disk underneath (a volume that failed to attach, a `nofail`
 * mount that timed out). Hubs without the unit (Linode's encrypted disk, an existing server) are not checked.
 */
import * as path from "path";
import { existsSync } from "fs";
import { LAYOUT } from "../../model/layout";
import { readIfExists } from "../../lib/atomic-file";
import type { AgentPaths } from "./options";

/**
 * Mount points listed in a `/proc/<pid>/mountinfo` text. The mount point is the fifth field; the kernel
 * writes space, tab, newline and backslash in it as octal escapes (fs/proc_namespace.c, show_mountinfo and
 * mangle "\t\n\\ ").
 */
export function mountPoints(mountInfo: string): Set<string> {
  const points = new Set<string>();
  for (const line of mountInfo.split("\n")) {
    const fields = line.split(" ");
    if (fields.length < 5) continue;
    points.add(
      fields[4].replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8))),
    );
  }
  return points;
}

/** Throws, writing nothing, when `stateDir` should be the volume but is not mounted. */
export function assertSecretStorage(paths: AgentPaths): void {
  if (!existsSync(paths.stateMountUnit)) return;
  const table = readIfExists(paths.mountInfo) ?? "";
  if (mountPoints(table).has(path.resolve(paths.stateDir))) return;
  throw new Error(
    `'${paths.stateDir}' is not mounted, and this hub keeps its keys only on the provider's encrypted volume: ` +
      `nothing was written; attach the volume labelled '${LAYOUT.stateVolume.label}', run ` +
      `'systemctl start ${LAYOUT.stateVolume.mountUnit}', then apply again.`,
  );
}
