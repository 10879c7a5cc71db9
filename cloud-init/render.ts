import { Document, isSeq, visit } from "yaml";
import { bootstrapCloudConfig } from "./description";
import { cloudConfigToScript } from "./script";
import type { BootstrapSpec } from "./spec";
import type { SshHostKey } from "../model/ssh-host-key";
import { sshHostKeyCloudConfig } from "./ssh";

export { validateBootstrapSpec } from "./validate";
export type { BootstrapSpec, ImageFamily } from "./spec";

/**
 * The hub's cloud-init user-data. Pure: the same spec (and host key) gives the same bytes, so the provider
 * never sees a change (which would replace the VM) unless the spec itself changed. With `hostKey` the
 * document pins the hub's SSH host key (cloud-init/ssh.ts) and is then a secret.
 */
export function renderUserData(spec: BootstrapSpec, hostKey?: SshHostKey): string {
  const config = bootstrapCloudConfig(spec);
  const doc = new Document(hostKey === undefined ? config : { ...config, ...sshHostKeyCloudConfig(hostKey) });
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
