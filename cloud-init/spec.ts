export type ImageFamily = "debian-12" | "ubuntu-24.04";
export interface BootstrapSpec {
  readonly hostname: string;
  readonly image: ImageFamily;
  readonly operator: { readonly user: string; readonly sshPublicKeys: readonly string[] };
  readonly sshPort: number;
  readonly wireguardPort: number;
  readonly unattendedUpgrades: { readonly autoReboot: boolean; readonly rebootTime: string };
}
