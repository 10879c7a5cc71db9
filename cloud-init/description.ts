import { posix } from "node:path";
import { LAYOUT } from "../model/layout";
import { AGENT_WRAPPER, agentUnits, stateMountUnit } from "./units";
import { tcpRelaySysusers, tcpRelayUnit } from "./tcp-relay";
import { renderNftablesBaseline } from "./nftables-baseline";
import { APT_DROP_IN, HUB_PACKAGES, renderAptConfig } from "./packages";
import type { BootstrapSpec } from "./spec";
import { renderSshdConfig, renderSshSocketDropIn, SSHD_DROP_IN, SSH_SOCKET_DROP_IN } from "./ssh";
import {
  JOURNALD_DROP_IN,
  renderJournald,
  renderSysctl,
  renderUnattendedUpgrades,
  SYSCTL_FILE,
  UNATTENDED_UPGRADES_FILE,
} from "./system";
import { FAIL_FAST, type CloudConfig, type Command, type WriteFile } from "./types";
import { renderUnboundBaseline } from "./unbound-baseline";
import { validateBootstrapSpec } from "./validate";

function rootFile(path: string, content: string, permissions = "0644"): WriteFile {
  return { path, content, permissions, owner: "root:root" };
}

function dir(path: string, mode: string): Command {
  return ["install", "-d", "-m", mode, "-o", "root", "-g", "root", path];
}

/**
 * Commands run once the packages are installed (cloud-init: runcmd, which runs after
 * package_update_upgrade_install in the final stage), in this order:
 *
 * 1. The firewall first. Before this line, on a fresh VM, only sshd listens on a public address (on sshPort,
 *    key-only, as configured by the drop-in written before sshd started); unbound, just installed, listens on
 *    loopback only because its baseline was written before the package; nothing listens on the WireGuard port
 *    until the agent runs. The provider's own firewall, created with the VM, covers that window too. From the
 *    next boot on, nftables.service loads the same file before the network comes up.
 * 2. Settings that need a reload to apply: forwarding, journald (and the journal files already on disk go).
 * 3. The agent's places and units; the agent itself starts only once its state exists (ConditionPathExists).
 *    Where the state belongs on a volume, its mount unit is only enabled here: a Vultr volume is attached after
 *    the instance exists and arrives blank, so the delivery's storage step formats (if blank) and mounts it
 *    before any key is sent (components/delivery.ts), the same way on every provider.
 */
function commands(spec: BootstrapSpec): Command[] {
  const bundleDir = posix.dirname(LAYOUT.agentBundle);
  return [
    ["nft", "-f", LAYOUT.nftablesConfig],
    // Loads the same file again (harmless: the table is replaced, not added to), so the unit reports active.
    ["systemctl", "enable", "--now", "nftables.service"],
    ["systemctl", "restart", "systemd-sysctl.service"],
    ["systemctl", "restart", "systemd-journald.service"],
    // What journald wrote to disk before the restart (this boot so far); with Storage=volatile nothing
    // recreates the directory.
    ["rm", "-rf", "--one-file-system", "/var/log/journal"],
    dir(LAYOUT.stateDir, "0700"),
    dir(LAYOUT.blocklistDir, "0700"),
    dir(bundleDir, "0755"),
    // sshd -t refuses to run without its privilege-separation directory, which only exists once ssh.service has
    // started; with Ubuntu's socket activation it may not have yet.
    dir("/run/sshd", "0755"),
    ["sshd", "-t"],
    // The TCP path relay's user, before the agent's first ruleset names it (cloud-init/tcp-relay.ts).
    ["systemd-sysusers"],
    ["systemctl", "daemon-reload"],
    ...(spec.stateOnVolume === true ? [["systemctl", "enable", LAYOUT.stateVolume.mountUnit]] : []),
    // Socket first, then the daemon, so a socket-activated sshd picks up the new listening socket. try-restart
    // leaves whichever of the two is not in use alone.
    ["systemctl", "try-restart", "ssh.socket"],
    ["systemctl", "try-restart", "ssh.service"],
    ["unbound-checkconf"],
    ["systemctl", "restart", "unbound.service"],
    ["systemctl", "enable", LAYOUT.units.agent],
    ["systemctl", "enable", "--now", LAYOUT.units.discovery],
    ["systemctl", "enable", "--now", LAYOUT.units.blocklistsTimer],
    // Enabled, not started: its ExecStartPost pushes the saved keys with the agent, and neither exists before
    // the delivery (a failed start here failed the whole runcmd). The delivery's state step starts it.
    ["systemctl", "enable", LAYOUT.tcpRelay.unit],
    // The DNS filter likewise: it serves the saved state's table on the tunnel's addresses, and its ExecStartPost
    // adds the redirect with the agent. Started at first boot it failed, then came up some seconds after the
    // delivery's apply, so a query right after the delivery reached unbound unfiltered (the VM test's blocked
    // name: SERVFAIL, unbound having no upstream there). The state step starts it and waits for the redirect.
    ["systemctl", "enable", LAYOUT.units.dnsFilter],
    ["systemctl", "enable", "--now", LAYOUT.units.sessions],
  ];
}

/**
 * THE description of a hub's bootstrap, as typed cloud-config. Both renderers read only this: the user-data
 * serialises it, and the bootstrap script for existing servers translates it, so the two cannot drift.
 * Everything in it is fixed for the VM's life and public: no key, no peer, no blocklist.
 */
export function bootstrapCloudConfig(spec: BootstrapSpec): CloudConfig {
  validateBootstrapSpec(spec);
  const files: WriteFile[] = [
    rootFile(LAYOUT.nftablesConfig, renderNftablesBaseline(spec)),
    rootFile(LAYOUT.unboundConfig, renderUnboundBaseline()),
    rootFile(SSHD_DROP_IN, renderSshdConfig(spec.sshPort)),
    rootFile(SSH_SOCKET_DROP_IN, renderSshSocketDropIn(spec.sshPort)),
    rootFile(SYSCTL_FILE, renderSysctl()),
    rootFile(JOURNALD_DROP_IN, renderJournald()),
    // Before package_update and packages (final stage), so the first install already takes no Recommends.
    rootFile(APT_DROP_IN, renderAptConfig()),
    rootFile(UNATTENDED_UPGRADES_FILE, renderUnattendedUpgrades(spec.image, spec.unattendedUpgrades)),
    rootFile(LAYOUT.agentBin, AGENT_WRAPPER, "0755"),
    ...agentUnits().map((unit) => rootFile(unit.path, unit.content)),
    ...[tcpRelaySysusers(), tcpRelayUnit()].map((unit) => rootFile(unit.path, unit.content)),
    ...(spec.stateOnVolume === true ? [stateMountUnit()].map((u) => rootFile(u.path, u.content)) : []),
  ];
  return {
    hostname: spec.hostname,
    // Without it cloud-init takes the FQDN from the provider's metadata, and /etc/hosts would differ per cloud.
    fqdn: spec.hostname,
    preserve_hostname: false,
    manage_etc_hosts: true,
    // The only locale every image has without generating one (en_US is missing on minimal images).
    locale: "C.UTF-8",
    disable_root: true,
    ssh_pwauth: false,
    users: [
      {
        name: spec.operator.user,
        gecos: "CloudPal operator",
        groups: ["adm", "sudo"],
        sudo: "ALL=(ALL) NOPASSWD:ALL",
        shell: "/bin/bash",
        lock_passwd: true,
        ssh_authorized_keys: spec.operator.sshPublicKeys.map((key) => key.trim()),
      },
    ],
    write_files: files,
    // Needed: cloud images ship without package lists, and cloud-init's apt install runs `apt-get update`
    // once per instance anyway (cloudinit/distros/debian.py install_packages); saying so keeps it explicit.
    package_update: true,
    // Upgrading everything at first boot would add minutes; unattended-upgrades applies security fixes.
    package_upgrade: false,
    packages: HUB_PACKAGES,
    runcmd: [FAIL_FAST, ...commands(spec)],
  };
}
