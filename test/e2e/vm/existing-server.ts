/**
 * The `existing` server of the VM test: a plain Debian 12 machine as a user has it before CloudPal touches it,
 * and the readings a user takes from it (its host key, its address) to write the stack.
 *
 * What the machine has is what a VPS provider's first boot gives a customer who picked Debian 12 and an SSH
 * key: the image's cloud-init with the provider's own small user-data, which makes one user with that key and
 * passwordless sudo, and nothing else. None of CloudPal's user-data reaches it: no package, no file, no host
 * key; sshd runs with the host keys the machine generated itself. A home server installed from the Debian
 * installer differs only in how that user and its sudo rule came to be (README "Your own server").
 */
import { readFile } from "fs/promises";
import { LAYOUT } from "../../../model/layout";
import { shellQuote } from "../../../model/shell";
import { sleep } from "./exec";
import type { Ssh } from "./ssh";

/**
 * The address QEMU's user network gives the guest (its built-in DHCP server always hands out 10.0.2.15): the
 * server's own address, as `ip addr` shows it on a server behind a home router. The test reaches it through
 * QEMU's port forwards, as a device reaches a home server through the router's.
 */
export const GUEST_ADDRESS = "10.0.2.15";

/**
 * The provider's user-data: the user and key the customer chose, sudo without a password (as Debian's cloud
 * images give their default user), password login locked. `locale` and `manage_etc_hosts` only keep this
 * test image's cloud-init from reporting errors (its minbase root has no en_US locale, and sudo warns when the
 * host name is not in /etc/hosts); a provider's image sets both up in its own way.
 */
export function providerUserData(user: string, sshPublicKey: string): string {
  return [
    "#cloud-config",
    "users:",
    `  - name: ${user}`,
    "    groups: [sudo]",
    "    shell: /bin/bash",
    '    sudo: "ALL=(ALL) NOPASSWD:ALL"',
    "    lock_passwd: true",
    "    ssh_authorized_keys:",
    `      - ${sshPublicKey}`,
    "locale: C.UTF-8",
    "manage_etc_hosts: true",
    "",
  ].join("\n");
}

/**
 * The server's ed25519 host key, read the way a VPS user reads it: from the console output the provider shows
 * (cloud-init's keys_to_console prints the public host keys between these two lines at the end of the first
 * boot). Never over the network, which is what the key is meant to authenticate.
 */
export async function readConsoleHostKey(
  serialLog: string,
  timeoutMs: number,
  isStillRunning: () => boolean,
): Promise<string> {
  const started = Date.now();
  for (;;) {
    const text = await readFile(serialLog, "latin1").catch(() => "");
    const block = /-----BEGIN SSH HOST KEY KEYS-----([\s\S]*?)-----END SSH HOST KEY KEYS-----/.exec(text);
    const key = block ? /ssh-ed25519 AAAA[A-Za-z0-9+/]+=*/.exec(block[1]) : null;
    if (key) return key[0];
    if (!isStillRunning()) throw new Error(`the VM stopped before its console showed its SSH host keys`);
    if (Date.now() - started > timeoutMs)
      throw new Error(`the VM's console showed no SSH host keys within ${timeoutMs} ms (${serialLog})`);
    await sleep(2000);
  }
}

/** The absolute paths the bootstrap script writes with put_file (both branches of the seeded files). */
export function filesWrittenBy(script: string): string[] {
  const paths = [...script.matchAll(/^put_file '([^']+)'/gm)].map((m) => m[1]);
  // The sudoers rule is written under a check name, then renamed.
  return paths.map((p) => p.replace(/\/\.(90-cloudpal-[^/]+)\.check$/, "/$1"));
}

/**
 * Everything a bootstrap run could change, read as root in one command: each file it writes itself (sha256,
 * mode, owner, mtime, inode: an unchanged file must not even be rewritten), the system files its commands
 * touch (content and mode: the operator's authorized_keys, /etc/hosts, /etc/group, /etc/hostname), leftovers
 * of put_file, the host name, the hub's units (active and enabled), the firewall as loaded (`nft -s`: no
 * counters) and the WireGuard interface (listen port and peers; not handshakes or byte counts, which traffic
 * moves).
 */
export async function bootstrapFootprint(ssh: Ssh, script: string, operatorUser: string): Promise<string> {
  const written = filesWrittenBy(script);
  if (written.length < 10)
    throw new Error(`found only ${written.length} put_file paths in the bootstrap script`);
  const touched = [`/home/${operatorUser}/.ssh/authorized_keys`, "/etc/hosts", "/etc/group", "/etc/hostname"];
  const units = [
    "nftables.service",
    "unbound.service",
    "ssh.service",
    LAYOUT.units.agent,
    LAYOUT.units.blocklistsTimer,
    LAYOUT.units.dnsFilter,
  ];
  const command = [
    "set -eu",
    `for f in ${written.map(shellQuote).join(" ")}; do`,
    `  printf '%s %s %s\n' "$f" "$(stat -c '%a %U:%G mtime=%Y inode=%i' "$f")" "$(sha256sum <"$f")"`,
    "done",
    `for f in ${touched.map(shellQuote).join(" ")}; do`,
    `  printf '%s %s %s\n' "$f" "$(stat -c '%a %U:%G' "$f")" "$(sha256sum <"$f")"`,
    "done",
    "hostname",
    // Temp files put_file would leave, copies it made of the owner's files, an unrenamed sudoers candidate.
    "find /etc /usr/local -xdev \\( -name '*.cloudpal.*' -o -name '*.pre-cloudpal' -o -name '.90-cloudpal-*' \\) | sort",
    `for u in ${units.join(" ")}; do echo "$u $(systemctl is-active "$u" || :) $(systemctl is-enabled "$u" || :)"; done`,
    // Table by table, in name order: replacing a table (the agent's `delete table` + `table`, which a bootstrap
    // run does from nftables.conf) moves it after the others, e.g. after the DNS filter's redirect table, and
    // `list ruleset` prints tables in that order (seen: same tables, same rules, another hash).
    'echo "ruleset $(nft list tables | sort | while read -r _ family name; do nft -s list table "$family" "$name"; done | sha256sum)"',
    `echo "listen-port $(wg show ${LAYOUT.interface} listen-port)"`,
    `wg show ${LAYOUT.interface} peers | sort`,
  ].join("\n");
  const r = await ssh.exec("sudo bash -s", { stdin: command, quiet: true });
  return r.stdout;
}
