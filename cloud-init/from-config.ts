import type { HubConfig } from "../components/config";
import type { BootstrapSpec } from "./spec";

/**
 * The only fields of the stack config that reach the user-data. Everything else (peers, groups, DNS lists,
 * keys, firewall mode) travels later over SSH, so changing it never changes the user-data and never
 * replaces the VM.
 */
export function bootstrapSpecFromConfig(cfg: HubConfig): BootstrapSpec {
  return {
    hostname: cfg.hostname,
    image: cfg.image,
    operator: { user: cfg.operatorUser, sshPublicKeys: cfg.sshPublicKeys },
    sshPort: cfg.sshPort,
    wireguardPort: cfg.wireguardPort,
    unattendedUpgrades: { autoReboot: cfg.autoReboot.enabled, rebootTime: cfg.autoReboot.time },
  };
}
