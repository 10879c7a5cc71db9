import { LAYOUT, MANAGED_HEADER } from "../model/layout";
import { shellQuote } from "../model/shell";
import { FAIL_FAST, type CloudConfig, type CloudUser, type WriteFile } from "./types";

function argv(words: readonly string[]): string {
  return words.map(shellQuote).join(" ");
}

const EOF_MARK = "CLOUDPAL_EOF";

/** How long the package install waits for another apt run to release the dpkg lock. */
export const DPKG_LOCK_TIMEOUT_SECONDS = 600;

/** A quoted heredoc: bash expands nothing inside it. The content must not contain the end marker line. */
function heredoc(content: string): string {
  if (content.split("\n").includes(EOF_MARK)) {
    throw new Error(`a bootstrap file contains the line ${EOF_MARK}, which would end its heredoc early`);
  }
  const body = content.endsWith("\n") ? content : `${content}\n`;
  return `<<'${EOF_MARK}'\n${body}${EOF_MARK}`;
}

/**
 * Helpers at the top of the script. put_file writes atomically (temp file in the same directory, then rename)
 * and keeps one copy of a file it replaces that CloudPal did not write, so an existing server's own
 * /etc/nftables.conf or sshd settings can be found again as FILE.pre-cloudpal. A file that already holds the
 * same bytes, mode and owner is left alone, mtime included (same_file): users re-run `pulumi up`, and a second
 * run of the script must change nothing.
 */
const PRELUDE = `export DEBIAN_FRONTEND=noninteractive
umask 022

same_file() {
	[ -f "$2" ] && [ ! -L "$2" ] && cmp -s "$1" "$2" &&
		[ "$(stat -c %a:%u:%g "$1")" = "$(stat -c %a:%u:%g "$2")" ]
}

put_file() {
	local path=$1 mode=$2 owner=$3 tmp
	mkdir -p "$(dirname "$path")"
	tmp=$(mktemp "$path.cloudpal.XXXXXX")
	cat >"$tmp"
	chmod "$mode" "$tmp"
	chown "$owner" "$tmp"
	if same_file "$tmp" "$path"; then
		rm -f "$tmp"
		return 0
	fi
	if [ -f "$path" ] && [ ! -e "$path.pre-cloudpal" ] && ! grep -qF 'Managed by CloudPal' "$path"; then
		cp -p "$path" "$path.pre-cloudpal"
	fi
	sync "$tmp"
	mv -f "$tmp" "$path"
}

add_line_once() {
	grep -qxF "$2" "$1" 2>/dev/null || printf '%s\\n' "$2" >>"$1"
}
`;

/**
 * Files the bootstrap only seeds: the agent renders them from the state on every apply (agent/src/reconcile.ts
 * writes LAYOUT.unboundConfig; the nftables ruleset goes to LAYOUT.nftablesConfig). Once a state exists the
 * agent owns them, and a second run of the script must not put the baseline back: runcmd would then load it
 * (`nft -f`, `systemctl restart unbound`) and cut every device off DNS and the internet until the next apply.
 */
export const AGENT_RENDERED_FILES: readonly string[] = [LAYOUT.nftablesConfig, LAYOUT.unboundConfig];

function writeFiles(files: readonly WriteFile[]): string[] {
  return files.map((f) => {
    const put = `put_file ${argv([f.path, f.permissions, f.owner])} ${heredoc(f.content)}`;
    return AGENT_RENDERED_FILES.includes(f.path)
      ? `if [ ! -e ${shellQuote(LAYOUT.stateFile)} ]; then\n${put}\nfi`
      : put;
  });
}

function user(u: CloudUser): string[] {
  const create = ["useradd", "--shell", u.shell];
  if (u.system === true) create.push("--system");
  create.push(u.no_create_home === true ? "--no-create-home" : "--create-home");
  if (u.gecos !== undefined) create.push("--comment", u.gecos);
  // lock_passwd applies to an account the script makes: it gets no usable password, logins are by key only.
  // An account the owner already has keeps its password: on a home server it may be the console login, and
  // SSH refuses passwords anyway (the sshd drop-in among write_files).
  const lines = [
    `if ! id -u ${shellQuote(u.name)} >/dev/null 2>&1; then`,
    `\t${argv([...create, u.name])}`,
    `\t${argv(["usermod", "--lock", u.name])}`,
    "fi",
  ];
  if (u.groups !== undefined && u.groups.length > 0) {
    lines.push(argv(["usermod", "--append", "--groups", u.groups.join(","), u.name]));
  }
  if (u.sudo !== undefined) {
    // Checked under a name sudo ignores (it skips files with a dot), then renamed: a broken rule in
    // sudoers.d would lock everyone out of sudo on a server someone already runs. An unchanged rule stays as
    // it is (same_file), so a second run changes nothing.
    const file = shellQuote(`/etc/sudoers.d/90-cloudpal-${u.name}`);
    const candidate = shellQuote(`/etc/sudoers.d/.90-cloudpal-${u.name}.check`);
    lines.push(`put_file ${candidate} '0440' 'root:root' ${heredoc(`${u.name} ${u.sudo}\n`)}`);
    lines.push(
      `'visudo' '-c' '-q' '-f' ${candidate}`,
      `if same_file ${candidate} ${file}; then rm -f ${candidate}; else mv -f ${candidate} ${file}; fi`,
    );
  }
  if (u.ssh_authorized_keys !== undefined && u.ssh_authorized_keys.length > 0) {
    // Keys are added, never replaced: an existing operator account keeps the keys it already had.
    lines.push(
      `home=$(getent passwd ${shellQuote(u.name)} | cut -d: -f6)`,
      `install -d -m 0700 -o ${shellQuote(u.name)} -g ${shellQuote(u.name)} "$home/.ssh"`,
      `touch "$home/.ssh/authorized_keys"`,
      ...u.ssh_authorized_keys.map((key) => `add_line_once "$home/.ssh/authorized_keys" ${shellQuote(key)}`),
      `chown ${shellQuote(`${u.name}:${u.name}`)} "$home/.ssh/authorized_keys"`,
      `chmod 0600 "$home/.ssh/authorized_keys"`,
    );
  }
  return lines;
}

/**
 * How each cloud-config key is carried out over SSH. A Record over every key of CloudConfig: adding a key to
 * the description without saying here what it means on an existing server does not compile.
 */
const steps: { readonly [K in keyof CloudConfig]: (value: CloudConfig[K], config: CloudConfig) => string[] } =
  {
    write_files: (files) => writeFiles(files),
    hostname: (name) => [argv(["hostnamectl", "set-hostname", name])],
    // The host name is the FQDN too; /etc/hosts gets it below.
    fqdn: () => [],
    preserve_hostname: () => [],
    manage_etc_hosts: (_on, config) => [
      // cloud-init rewrites /etc/hosts from a template; on a server someone already runs, only add our name.
      `add_line_once /etc/hosts ${shellQuote(`127.0.1.1 ${config.hostname}`)}`,
    ],
    users: (users) => users.flatMap(user),
    // Root login and passwords are refused by the sshd drop-in among write_files, exactly as on a cloud VM.
    disable_root: () => [],
    ssh_pwauth: () => [],
    locale: (locale) => [argv(["localectl", "set-locale", `LANG=${locale}`])],
    // A later run finds every package installed and runs no apt at all: it needs no mirror and changes nothing
    // (upgrades are unattended-upgrades' job, as on a cloud hub). `db:Status-Abbrev` is "ii " for an
    // installed package; dpkg-query prints nothing for one it does not know.
    package_update: (_on, config) => [
      `installed=$(dpkg-query -W -f='\${db:Status-Abbrev}\\n' ${argv(config.packages)} 2>/dev/null | grep -c '^ii' || :)`,
      `if [ "$installed" -ne ${config.packages.length} ]; then`,
      `\t${argv(["apt-get", "update", "-q"])}`,
      "fi",
    ],
    package_upgrade: () => [],
    // The same dpkg option cloud-init uses: keep the files written above rather than the packages' defaults.
    // No Recommends and no source indexes come from the apt drop-in among those files, as on a cloud VM.
    // cloud-init also passes --force-unsafe-io (cloudinit/distros/debian.py); a server someone already runs
    // keeps dpkg's fsyncs.
    // DPkg::Lock::Timeout (apt 1.9.11 and later): wait for the dpkg lock rather than fail at once. On a hub
    // that already runs, the daily unattended-upgrades this bootstrap enables may hold it when `pulumi up`
    // runs the script again.
    packages: (packages) => [
      `if [ "$installed" -ne ${packages.length} ]; then`,
      "\t" +
        argv([
          "apt-get",
          "install",
          "-y",
          "-q",
          "-o",
          "Dpkg::Options::=--force-confold",
          "-o",
          `DPkg::Lock::Timeout=${DPKG_LOCK_TIMEOUT_SECONDS}`,
          ...packages,
        ]),
      "fi",
    ],
    runcmd: (cmds) => cmds.filter((c) => c !== FAIL_FAST).map((c) => argv(c as readonly string[])),
  };

/** The order cloud-init runs these modules in on Debian/Ubuntu: init stage, config stage, final stage. */
const ORDER: readonly (keyof CloudConfig)[] = [
  "write_files",
  "hostname",
  "fqdn",
  "preserve_hostname",
  "manage_etc_hosts",
  "users",
  "disable_root",
  "ssh_pwauth",
  "locale",
  "package_update",
  "package_upgrade",
  "packages",
  "runcmd",
];

function step<K extends keyof CloudConfig>(key: K, config: CloudConfig): string[] {
  const lines = steps[key](config[key], config);
  return lines.length === 0 ? [] : [`# ${key}`, ...lines, ""];
}

/** Translates the cloud-config into one idempotent bash script, for servers without a cloud-init datasource. */
export function cloudConfigToScript(config: CloudConfig): string {
  const missing = (Object.keys(config) as (keyof CloudConfig)[]).filter((k) => !ORDER.includes(k));
  if (missing.length > 0)
    throw new Error(`no bootstrap script step for cloud-config key(s) ${missing.join(", ")}`);
  return [
    "#!/bin/bash",
    MANAGED_HEADER,
    "# CloudPal bootstrap for a server without cloud-init; the same description as the hub's user-data.",
    "# Run as root (sudo bash -s < script). Safe to run again.",
    "set -eu",
    PRELUDE,
    ...ORDER.flatMap((key) => step(key, config)),
    "echo 'CloudPal bootstrap: done'",
    "",
  ].join("\n");
}
