import { show } from "../model/messages";
import { SSH_KEY_FIX, sshPublicKeyProblem, userNameProblem } from "../model/rules";
import type { BootstrapSpec, ImageFamily } from "./spec";

const IMAGES: readonly ImageFamily[] = ["debian-12", "ubuntu-24.04"];

/** One DNS label (RFC 1123): what `hostname` accepts and what /etc/hosts can hold without surprises. */
const HOSTNAME = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

const REBOOT_TIME = /^([01][0-9]|2[0-3]):[0-5][0-9]$/;

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
  // The stack config applies the same rule to 'operatorUser' and 'existing.user' (model/rules.ts), so a
  // config that passed never fails here; this check guards callers that build a spec by hand.
  const user = spec.operator?.user;
  const userProblem = userNameProblem(user);
  if (userProblem !== undefined) throw new Error(`'operator.user' (${show(user)}) ${userProblem}.`);
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
    const problem = typeof key === "string" ? sshPublicKeyProblem(key) : "is not a string";
    if (problem !== undefined) {
      throw new Error(`'operator.sshPublicKeys[${i}]' (${show(key)}) ${problem}: ${SSH_KEY_FIX}.`);
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
