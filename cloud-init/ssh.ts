import { MANAGED_HEADER } from "../model/layout";

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

export function renderSshdConfig(sshPort: number): string {
  return `${MANAGED_HEADER}
Port ${sshPort}
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
