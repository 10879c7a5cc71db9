import { Document, isSeq, visit } from "yaml";
import { bootstrapCloudConfig } from "./description";
import { cloudConfigToScript } from "./script";
import type { BootstrapSpec } from "./spec";

export { validateBootstrapSpec } from "./validate";
export type { BootstrapSpec, ImageFamily } from "./spec";

/**
 * The hub's cloud-init user-data. Pure: the same spec gives the same bytes, so the provider never sees a
 * change (which would replace the VM) unless the spec itself changed.
 */
export function renderUserData(spec: BootstrapSpec): string {
  const doc = new Document(bootstrapCloudConfig(spec));
  // Each command on one line, `- [systemctl, enable, x]`, so the user-data reads like the script it becomes.
  const runcmd = doc.get("runcmd");
  if (isSeq(runcmd)) {
    visit(runcmd, {
      Seq(_key, node) {
        if (node !== runcmd) node.flow = true;
      },
    });
  }
  return `#cloud-config\n${doc.toString({ lineWidth: 0 })}`;
}

/** The same bootstrap as a bash script, for `existing` servers: run over SSH with `sudo bash -s`. */
export function renderBootstrapScript(spec: BootstrapSpec): string {
  return cloudConfigToScript(bootstrapCloudConfig(spec));
}
