import { MANAGED_HEADER } from "../model/layout";
import type { SshHostKey } from "../model/ssh-host-key";
import type { SshHostKeyConfig } from "./types";

/** Where the sshd drop-in goes. sshd keeps the FIRST value it reads for most keywords, and Debian/Ubuntu include
 * sshd_config.d/*.conf at the top of sshd_config, so a low number beats cloud-init's own 50-cloud-init.conf. */
export const SSHD_DROP_IN = "/etc/ssh/sshd_config.d/10-cloudpal.conf";

/**
 * Ubuntu 24.04 starts sshd through ssh.socket, and the socket, not sshd_config, decides the listening port
 * (https://discourse.ubuntu.com/t/sshd-now-uses-socket-based-activation-ubuntu-22-10-and-later/30189). This
 * drop-in sorts after the generator's addresses.conf and resets ListenStream, so the port is right whether or
 * not that generator reads sshd_config.d. On Debian 12 ssh.socket is shipped but disabled, so it is inert.
 */
export const SSH_SOCKET_DROP_IN = "/etc/systemd/system/ssh.socket.d/cloudpal.conf";

/** The one host key sshd offers: the ed25519 key the stack pins (cloud VMs) or the one 'existing.hostKey' names. */
export const SSH_HOST_KEY_FILE = "/etc/ssh/ssh_host_ed25519_key";

export function renderSshdConfig(sshPort: number): string {
  return `${MANAGED_HEADER}
Port ${sshPort}
HostKey ${SSH_HOST_KEY_FILE}
PermitRootLogin no
PubkeyAuthentication yes
AuthenticationMethods publickey
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitEmptyPasswords no
MaxAuthTries 3
LoginGraceTime 30
X11Forwarding no
`;
}

export function renderSshSocketDropIn(sshPort: number): string {
  return `${MANAGED_HEADER}
[Socket]
ListenStream=
ListenStream=${sshPort}
`;
}

/**
 * The cloud-config that installs the stack's host key (cloud-init module `ssh`, cc_ssh.py in cloud-init 22.4:
 * `handle`). `ssh_deletekeys` removes every /etc/ssh/ssh_host_*key* the image shipped or generated; `ssh_keys`
 * then writes ed25519_private to /etc/ssh/ssh_host_ed25519_key (mode 0600) and ed25519_public next to it.
 * When `ssh_keys` is present cc_ssh generates nothing (`ssh_genkeytypes` is read only in its `else` branch);
 * `[ed25519]` (the schema wants at least one type) bounds that branch anyway: were our key ever skipped, only
 * an ed25519 key would be made, and its mismatch with the pinned one stops delivery before any secret is sent. The ssh module
 * runs in the init stage, and cloud-init.service is ordered Before=sshd.service, so sshd starts with this key.
 */
export function sshHostKeyCloudConfig(key: SshHostKey): SshHostKeyConfig {
  return {
    ssh_deletekeys: true,
    ssh_genkeytypes: ["ed25519"],
    ssh_keys: { ed25519_private: key.privateKey, ed25519_public: key.publicKey },
  };
}
