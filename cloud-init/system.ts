import { MANAGED_HEADER } from "../model/layout";
import type { ImageFamily } from "./spec";

export const SYSCTL_FILE = "/etc/sysctl.d/90-cloudpal.conf";
export const JOURNALD_DROP_IN = "/etc/systemd/journald.conf.d/90-cloudpal.conf";
/** No dot in the name: apt ignores apt.conf.d files with an extension other than .conf. 52 sorts after the
 * package's 50unattended-upgrades and 20auto-upgrades, so our single values win. */
export const UNATTENDED_UPGRADES_FILE = "/etc/apt/apt.conf.d/52cloudpal-unattended-upgrades";

/**
 * The hub routes between peers and to the internet. Turning on IPv6 forwarding makes the kernel ignore router
 * adverts on interfaces with accept_ra=1, which would drop the IPv6 default route on providers that use SLAAC
 * (Linode, Vultr). accept_ra=2 keeps them; the glob is expanded by systemd-sysctl, which udev also runs for
 * each interface that appears later.
 */
export function renderSysctl(): string {
  return `${MANAGED_HEADER}
net.ipv4.ip_forward = 1
net.ipv6.conf.all.forwarding = 1
net.ipv6.conf.*.accept_ra = 2
`;
}

/** Logs live in RAM only and not for long: nothing about the hub's users survives a reboot or two days. */
export function renderJournald(): string {
  return `${MANAGED_HEADER}
[Journal]
Storage=volatile
RuntimeMaxUse=32M
MaxRetentionSec=2day
ForwardToSyslog=no
`;
}

/** Security updates only, from the image's own security archive. */
function securityOrigins(image: ImageFamily): string {
  switch (image) {
    case "debian-12":
      return `Unattended-Upgrade::Origins-Pattern {
        "origin=Debian,codename=\${distro_codename}-security,label=Debian-Security";
};`;
    case "ubuntu-24.04":
      return `Unattended-Upgrade::Allowed-Origins {
        "\${distro_id}:\${distro_codename}-security";
};`;
    default: {
      const unknown: never = image;
      throw new Error(`unknown image ${String(unknown)}`);
    }
  }
}

export function renderUnattendedUpgrades(
  image: ImageFamily,
  options: { readonly autoReboot: boolean; readonly rebootTime: string },
): string {
  return `${MANAGED_HEADER}
APT::Periodic::Update-Package-Lists "1";
APT::Periodic::Unattended-Upgrade "1";
${securityOrigins(image)}
Unattended-Upgrade::Automatic-Reboot "${options.autoReboot}";
Unattended-Upgrade::Automatic-Reboot-Time "${options.rebootTime}";
`;
}
