import { LAYOUT } from "../model/layout";
import type { BootstrapSpec, ImageFamily } from "./spec";

const IMAGES: readonly ImageFamily[] = ["debian-12", "ubuntu-24.04"];

/** One DNS label (RFC 1123): what `hostname` accepts and what /etc/hosts can hold without surprises. */
const HOSTNAME = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/** Debian's adduser default NAME_REGEX, restricted to lower case, at most 32 characters. */
const USER_NAME = /^[a-z][a-z0-9_-]{0,31}$/;

/** Names the image or CloudPal already use; an operator with one of these would fight the system. */
const RESERVED_USERS = new Set([
  "root",
  LAYOUT.user,
  "daemon",
  "bin",
  "sys",
  "sync",
  "nobody",
  "sshd",
  "unbound",
  "messagebus",
  "systemd-network",
  "systemd-resolve",
  "systemd-timesync",
  "_apt",
]);

/** Public key algorithms OpenSSH 9.2 (Debian 12) and 9.6 (Ubuntu 24.04) accept for user authentication. */
const SSH_KEY_TYPES = new Set([
  "ssh-ed25519",
  "ssh-rsa",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "sk-ssh-ed25519@openssh.com",
  "sk-ecdsa-sha2-nistp256@openssh.com",
]);

const REBOOT_TIME = /^([01][0-9]|2[0-3]):[0-5][0-9]$/;

function show(value: unknown): string {
  const text = JSON.stringify(value);
  if (text === undefined) return String(value);
  return text.length > 60 ? `${text.slice(0, 57)}..."` : text;
}

/**
 * Why an authorized_keys line is not a usable public key, or undefined when it is. The key blob is decoded and
 * its embedded algorithm name compared with the declared one, which catches truncated or mixed-up pastes.
 */
function sshKeyProblem(line: string): string | undefined {
  if (/[\r\n\0]/.test(line)) return "spans several lines";
  const parts = line.trim().split(/\s+/);
  if (parts.length < 2) return "is not '<type> <base64> [comment]'";
  const [type, blob] = parts as [string, string];
  if (!SSH_KEY_TYPES.has(type)) return `has unsupported key type "${type}"`;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(blob) || blob.length % 4 !== 0)
    return "has a key part that is not base64";
  const bytes = Buffer.from(blob, "base64");
  if (bytes.length < 4) return "has a key part that is too short";
  const nameLength = bytes.readUInt32BE(0);
  const embedded = bytes.subarray(4, 4 + nameLength).toString("latin1");
  if (embedded !== type) return `declares "${type}" but the key part encodes "${embedded}"`;
  return undefined;
}

function checkPort(field: "sshPort" | "wireguardPort", value: unknown, proto: string): void {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > 65535) {
    throw new Error(
      `'${field}' (${show(value)}) is not a ${proto} port: use a whole number from 1 to 65535.`,
    );
  }
}

/**
 * Checks every field of a BootstrapSpec and throws on the first bad one, with one sentence that names the
 * field, shows the value and says how to fix it. Pure; the renderers call it before producing anything.
 */
export function validateBootstrapSpec(spec: BootstrapSpec): void {
  if (typeof spec.hostname !== "string" || !HOSTNAME.test(spec.hostname)) {
    throw new Error(
      `'hostname' (${show(spec.hostname)}) is not a valid host name: use 1 to 63 lower-case letters, digits or hyphens, not starting or ending with a hyphen.`,
    );
  }
  if (!IMAGES.includes(spec.image)) {
    throw new Error(
      `'image' (${show(spec.image)}) is not a supported image: use one of ${IMAGES.join(", ")}.`,
    );
  }
  const user = spec.operator?.user;
  if (typeof user !== "string" || !USER_NAME.test(user)) {
    throw new Error(
      `'operator.user' (${show(user)}) is not a valid user name: start with a lower-case letter, then up to 31 lower-case letters, digits, '_' or '-'.`,
    );
  }
  if (RESERVED_USERS.has(user)) {
    throw new Error(
      `'operator.user' (${show(user)}) is reserved for the system or for CloudPal: choose another name, e.g. "admin" (root cannot be the operator because the hub refuses root logins over SSH).`,
    );
  }
  const keys = spec.operator.sshPublicKeys;
  if (!Array.isArray(keys) || keys.length === 0) {
    throw new Error(
      `'operator.sshPublicKeys' (${show(keys)}) must list at least one SSH public key, e.g. the contents of ~/.ssh/id_ed25519.pub.`,
    );
  }
  keys.forEach((key: unknown, i: number) => {
    if (typeof key === "string" && /PRIVATE KEY/.test(key)) {
      // Never echo any of it: error messages end up in terminals, CI logs and bug reports.
      throw new Error(
        `'operator.sshPublicKeys[${i}]' holds a private key (not shown): paste the public half instead, the one line of your .pub file, e.g. "ssh-ed25519 AAAAC3... me@laptop".`,
      );
    }
    const problem = typeof key === "string" ? sshKeyProblem(key) : "is not a string";
    if (problem !== undefined) {
      throw new Error(
        `'operator.sshPublicKeys[${i}]' (${show(key)}) ${problem}: paste one line of a .pub file, e.g. "ssh-ed25519 AAAAC3... me@laptop".`,
      );
    }
  });
  checkPort("sshPort", spec.sshPort, "TCP");
  checkPort("wireguardPort", spec.wireguardPort, "UDP");
  const upgrades = spec.unattendedUpgrades;
  if (typeof upgrades?.autoReboot !== "boolean") {
    throw new Error(`'unattendedUpgrades.autoReboot' (${show(upgrades?.autoReboot)}) must be true or false.`);
  }
  if (typeof upgrades.rebootTime !== "string" || !REBOOT_TIME.test(upgrades.rebootTime)) {
    throw new Error(
      `'unattendedUpgrades.rebootTime' (${show(upgrades.rebootTime)}) is not a time of day: use 24-hour HH:MM, e.g. "04:00".`,
    );
  }
}
