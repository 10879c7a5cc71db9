/**
 * The remote steps that put the agent on a host and hand it the desired state. The Pulumi program turns each
 * step into a `command.remote.Command`; the VM end-to-end test runs the very same steps through `ssh`
 * (test/e2e/vm/delivery-runner.ts). Commands hold no secrets; secrets only travel on stdin, named by `stdin`.
 * The agent bundle, which is large and not secret, travels as a file (`upload`: `command.remote.CopyToRemote`
 * with a FileAsset, so Pulumi state keeps its path and hash rather than 0.5 MB twice as a Command's stdin).
 *
 * Every command is built from constants (LAYOUT paths and the program's wait bound), never from user input, and
 * is POSIX sh: `command.remote.Command` runs it through the login shell of the operator user, which cloud-init
 * leaves at /bin/sh unless told otherwise.
 */
import { LAYOUT } from "../model/layout";
import { shellQuote } from "../model/shell";

/** Small payloads piped to a command's stdin; the secrets (the state) travel only this way. */
export type StdinPayload = "state" | "bootstrapScript";
/** Every payload a step can carry or watch: the stdin ones and the agent bundle, which is uploaded as a file. */
export type Payload = StdinPayload | "agentBundle";

/**
 * A file copied to the host over SFTP, as the operator user, before the step's command runs. `remotePath` is
 * relative, so the SFTP server resolves it against the operator's home directory (OpenSSH sftp-server starts
 * there). The file is not secret: pulumi-command's CopyToRemote creates it with the server's default mode
 * (command.md §CopyToRemote: `sftpClient.Create`, no chmod).
 */
export interface Upload {
  readonly payload: "agentBundle";
  readonly remotePath: string;
}

export interface RemoteStep {
  /** Short kebab-case name, used as the Pulumi resource name suffix. */
  readonly name: string;
  /** The shell command run on the host as the operator user. Never holds a secret. */
  readonly command: string;
  /** Which payload is piped to the command's stdin, if any. */
  readonly stdin?: StdinPayload;
  /** A file copied to the host first (its change re-copies it and re-runs this step). */
  readonly upload?: Upload;
  /**
   * Payloads other than `stdin` and `upload` whose change must re-run this step too (the program passes a
   * hash of each as a Command trigger). A change of `stdin` itself re-runs the step already, since it is a
   * Command input. Added after the first contract; optional, so older callers keep working.
   */
  readonly triggers?: readonly Payload[];
}

/**
 * How each delivery connection dials (pulumi-command 1.2.1, audited in command.md §Dialling): every failed
 * `ssh.Dial` (refused, timed out, host key mismatch, auth refused) is retried by `dialWithRetry`
 * (provider/pkg/provider/remote/connection.go L150-187) with the pulumi sdk's `retry.Until` backoff (first
 * sleep 100 ms, ×1.5, capped at 5 s), and the step fails after `dialErrorLimit` + 1 attempts. With refused
 * connections N attempts take about 11.3 + 5·(N − 10) s; with dropped packets each also waits `perDialTimeout`.
 *
 * - The first step on a machine the stack just made waits for its first boot: sshd answers within about a
 *   minute on a cloud VM, but on Ubuntu 24.04 (socket-activated sshd) a non-default `sshPort` only opens once
 *   runcmd has reloaded ssh.socket, after the package install. 130 attempts ≈ 10 min of refusals, a bound
 *   rather than -1 (unlimited), because every error is retried, so with -1 a wrong key or a host key mismatch
 *   would hang the update forever instead of failing.
 * - Every other connection (later steps, an existing server) reaches a host that is up: 20 attempts ≈ 1 min
 *   rides out an sshd restart, and a mismatched host key or refused login fails within a minute.
 * - 10 s per dial (default 15) covers TCP connect plus the SSH handshake (connection.go L104 `Timeout`) on a
 *   loaded small VM, and shortens the worst case when a provider firewall drops the packets.
 */
export const DIAL = {
  perDialTimeoutSeconds: 10,
  firstBootDialErrorLimit: 130,
  dialErrorLimit: 20,
} as const;

/**
 * Options set on every delivery Command (command.md §logging, §addPreviousOutputInEnv):
 * - `logging: "none"`: stdout/stderr are otherwise sent to the engine as Info diagnostics (remote
 *   commandOutputs.go L92-93), into the `pulumi up` output and the update's event log. On failure the provider
 *   puts the command and its whole output in the error anyway (L100-101), whatever `logging` says, which is why
 *   no step ever prints a secret (the agent reads the state on stdin and prints only what it changed).
 * - `addPreviousOutputInEnv: false`: otherwise an update or delete sends the previous stdout/stderr as SSH `env`
 *   requests (L51-71), which sshd refuses (no AcceptEnv) with a warning on each run, and which would carry
 *   output back to the host for nothing.
 */
export const COMMAND_OPTIONS = { logging: "none", addPreviousOutputInEnv: false } as const;

/** Where the agent bundle lands in the operator's home before it is installed (see Upload). */
export const AGENT_UPLOAD_PATH = ".cloudpal-agent-upload.js";

export interface DeliveryOptions {
  /** `existing` servers have no cloud-init datasource: the bootstrap script runs first. */
  readonly bootstrapOverSsh: boolean;
  /** Bound on waiting for cloud-init, in seconds. */
  readonly cloudInitTimeoutSeconds: number;
  /** The hub keeps its keys on the provider's volume (BootstrapSpec.stateOnVolume): mount it before the state. */
  readonly stateOnVolume?: boolean;
}

/**
 * The cloud-init wait bound the program uses unless told otherwise. A cloud VM is done in one to three minutes;
 * the bound only decides how long a hung first boot takes to be reported (a failed one is reported as soon as
 * cloud-init stops). Emulated or loaded machines (the TCG VM test) have taken 17 minutes, hence 30.
 */
export const DEFAULT_CLOUD_INIT_TIMEOUT_SECONDS = 1800;

/** Lines of /var/log/cloud-init-output.log shown when cloud-init fails. */
const LOG_TAIL_LINES = 60;

/** Every interpolated value below goes through it, constants included. */
const sh = shellQuote;

/**
 * Waits for cloud-init, bounded. `cloud-init status --wait` exits 0 when done, 1 on error and (cloud-init
 * 23.4 and later) 2 when done with recoverable errors; `timeout` exits 124 when the bound is reached. On
 * failure the operator sees `status --long` and the output log tail in the Pulumi error, not just an exit code.
 * The diagnostics use `|| :` because a failure to print them must not hide the real failure reported after.
 */
function waitForCloudInit(timeoutSeconds: number): RemoteStep {
  const seconds = String(timeoutSeconds);
  const log = "/var/log/cloud-init-output.log";
  const command = [
    "if ! command -v cloud-init >/dev/null 2>&1; then",
    "  echo 'cloud-init is not installed on this host: nothing to wait for.'",
    "  exit 0",
    "fi",
    "rc=0",
    `timeout ${seconds} cloud-init status --wait >/dev/null || rc=$?`,
    'if [ "$rc" -eq 0 ]; then echo "cloud-init: done"; exit 0; fi',
    'if [ "$rc" -eq 2 ]; then',
    "  echo 'cloud-init finished with recoverable errors; continuing:' >&2",
    "  sudo cloud-init status --long >&2 || :",
    "  exit 0",
    "fi",
    `echo '--- cloud-init status --long' >&2`,
    "sudo cloud-init status --long >&2 || :",
    `echo ${sh(`--- last ${LOG_TAIL_LINES} lines of ${log}`)} >&2`,
    `sudo tail -n ${LOG_TAIL_LINES} ${sh(log)} >&2 || :`,
    'if [ "$rc" -eq 124 ]; then',
    `  echo ${sh(`cloud-init did not finish within ${seconds} s: see the status and log tail above; if the host is only slow, run 'pulumi up' again (the wait starts over).`)} >&2`,
    "else",
    `  echo "cloud-init failed (exit $rc): see the status and log tail above; fix the cause, then run 'pulumi up' again." >&2`,
    "fi",
    "exit 1",
  ].join("\n");
  return { name: "wait-cloud-init", command };
}

/**
 * Runs the bootstrap script (the same steps cloud-init runs on a cloud VM) as root. The script is saved to a
 * root-only temp file and run with stdin from /dev/null, rather than `bash -s`: with `bash -s` any command in
 * the script that reads stdin (apt's maintainer scripts, for one) would swallow the rest of the script.
 */
function bootstrap(): RemoteStep {
  const inner = [
    "set -eu",
    "script=$(mktemp /root/.cloudpal-bootstrap.XXXXXX)",
    "trap 'rm -f \"$script\"' EXIT",
    'cat >"$script"',
    'bash "$script" </dev/null',
  ].join("; ");
  return { name: "bootstrap", command: `sudo sh -c ${sh(inner)}`, stdin: "bootstrapScript" };
}

/**
 * Installs the uploaded agent bundle atomically: copied by root into a temp file in the target directory (so
 * the operator-owned upload cannot change under the check), syntax-checked by the hub's own node, synced, then
 * renamed over the old one, so a dropped connection never leaves half a bundle that the boot-time unit would
 * run. The upload's path reaches root's shell as "$1": $HOME is the operator's, expanded before sudo.
 */
function installAgent(): RemoteStep {
  const target = LAYOUT.agentBundle;
  const dir = target.slice(0, target.lastIndexOf("/"));
  const inner = [
    "set -eu",
    "umask 022",
    `test -s "$1" || { echo 'the agent bundle upload is missing or empty: nothing was installed.' >&2; exit 1; }`,
    `install -d -m 0755 -o root -g root ${sh(dir)}`,
    // The .js suffix matters: node refuses to --check a file with an extension it does not know.
    `tmp=$(mktemp --suffix=.js ${sh(`${dir}/.cloudpal-agent.XXXXXX`)})`,
    "trap 'rm -f \"$tmp\"' EXIT",
    'cat -- "$1" >"$tmp"',
    `test -s "$tmp" || { echo 'the agent bundle arrived empty: nothing was installed.' >&2; exit 1; }`,
    'node --check "$tmp"',
    'chown root:root "$tmp"',
    'chmod 0755 "$tmp"',
    'sync "$tmp"',
    `mv -f "$tmp" ${sh(target)}`,
    "trap - EXIT",
    `echo ${sh(`installed ${target}`)}`,
  ].join("; ");
  return {
    name: "agent-bundle",
    command: `sudo sh -c ${sh(inner)} cloudpal-install "$HOME/"${sh(AGENT_UPLOAD_PATH)}`,
    upload: { payload: "agentBundle", remotePath: AGENT_UPLOAD_PATH },
  };
}

/** How long the storage step waits for the volume to appear in the guest after the provider attached it. */
export const STATE_VOLUME_WAIT_SECONDS = 300;

/**
 * Mounts the provider's volume on the state directory before any key is sent. DigitalOcean formats the volume
 * itself (`initialFilesystemLabel`); Vultr's block storage arrives blank and is hot-plugged after the instance
 * exists, so the step waits for it and formats it with the label, but only a whole disk with no partition and
 * no signature at all (`blkid -p` exits 2 when it finds none): a disk that holds anything is never formatted.
 * Two blank disks are refused rather than guessed between. Re-running on a hub already mounted changes nothing.
 */
function mountStateVolume(): RemoteStep {
  const volume = LAYOUT.stateVolume;
  const seconds = String(STATE_VOLUME_WAIT_SECONDS);
  const inner = [
    "set -eu",
    `dir=${sh(LAYOUT.stateDir)}`,
    `dev=${sh(`/dev/disk/by-label/${volume.label}`)}`,
    "waited=0",
    'while ! mountpoint -q "$dir" && [ ! -e "$dev" ]; do',
    "  udevadm settle || :",
    '  blank=""; count=0',
    "  for d in /dev/vd? /dev/sd? /dev/nvme?n1; do",
    '    [ -b "$d" ] || continue',
    '    [ "$(lsblk -nro NAME "$d" | wc -l)" -eq 1 ] || continue',
    '    rc=0; blkid -p "$d" >/dev/null 2>&1 || rc=$?',
    '    [ "$rc" -eq 2 ] || continue',
    '    blank="$d"; count=$((count + 1))',
    "  done",
    '  if [ "$count" -gt 1 ]; then',
    `    echo ${sh(`several blank disks are attached and none is labelled '${volume.label}': nothing was formatted; detach the ones that are not the hub's state volume, then run 'pulumi up' again.`)} >&2`,
    "    exit 1",
    "  fi",
    '  if [ "$count" -eq 1 ]; then',
    `    mkfs.${volume.fsType} -q -L ${sh(volume.label)} "$blank"`,
    // The by-label link comes from udev's change event; ask for it rather than wait on inotify.
    '    udevadm trigger --action=change "$blank" || :',
    "    udevadm settle || :",
    "    continue",
    "  fi",
    `  if [ "$waited" -ge ${seconds} ]; then`,
    `    echo ${sh(`no disk labelled '${volume.label}' and no blank disk appeared within ${seconds} s: check in the provider's console that the state volume is attached to this server, then run 'pulumi up' again.`)} >&2`,
    "    exit 1",
    "  fi",
    "  sleep 2; waited=$((waited + 2))",
    "done",
    `mountpoint -q "$dir" || systemctl start ${sh(volume.mountUnit)}`,
    `mountpoint -q "$dir" || { echo ${sh(`'${LAYOUT.stateDir}' is still not mounted after starting ${volume.mountUnit}: see 'systemctl status ${volume.mountUnit}' on the hub, fix it, then run 'pulumi up' again.`)} >&2; exit 1; }`,
    // The filesystem's root directory is the state directory: root only, like the directory it replaces.
    'chown root:root "$dir"',
    'chmod 0700 "$dir"',
    `install -d -m 0700 -o root -g root ${sh(LAYOUT.blocklistDir)}`,
    `echo ${sh(`${LAYOUT.stateDir} is on the volume labelled ${volume.label}`)}`,
  ].join("\n");
  return { name: "storage", command: `sudo sh -c ${sh(inner)}` };
}

/**
 * Hands the desired state to the agent; a new agent version may render differently, so it re-runs then too.
 * Then starts the TCP path's relay and the DNS filter, which the bootstrap only enables (they need the agent and
 * the state): the relay's ExecStartPost pushes the keys just applied; the filter's waits until the filter
 * answers and then redirects the tunnel's DNS to it, so the step returns with DNS filtered. Starting a running
 * unit changes nothing; starting one waiting to restart starts it at once.
 */
function applyState(): RemoteStep {
  return {
    name: "state",
    command: `sudo ${sh(LAYOUT.agentBin)} apply && sudo systemctl start ${sh(LAYOUT.tcpRelay.unit)} ${sh(LAYOUT.units.dnsFilter)}`,
    stdin: "state",
    triggers: ["agentBundle"],
  };
}

/**
 * The steps, in order. On an existing server cloud-init is waited for first: a server made from a cloud image
 * may still be running its own first boot, and its apt run would hold the dpkg lock the bootstrap needs.
 */
export function deliverySteps(options: DeliveryOptions): RemoteStep[] {
  const wait = waitForCloudInit(options.cloudInitTimeoutSeconds);
  const storage = options.stateOnVolume === true ? [mountStateVolume()] : [];
  return options.bootstrapOverSsh
    ? [wait, bootstrap(), installAgent(), ...storage, applyState()]
    : [wait, installAgent(), ...storage, applyState()];
}
