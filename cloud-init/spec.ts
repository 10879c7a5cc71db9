export type ImageFamily = "debian-12" | "ubuntu-24.04";
export interface BootstrapSpec {
  readonly hostname: string;
  readonly image: ImageFamily;
  readonly operator: { readonly user: string; readonly sshPublicKeys: readonly string[] };
  readonly sshPort: number;
  readonly wireguardPort: number;
  readonly unattendedUpgrades: { readonly autoReboot: boolean; readonly rebootTime: string };
  /**
   * The provider attaches a volume, encrypted at rest, for the hub's keys (DigitalOcean, Vultr): the bootstrap
   * writes its mount unit on the state directory. Absent or false: the keys stay on the root disk.
   */
  readonly stateOnVolume?: boolean;
}
