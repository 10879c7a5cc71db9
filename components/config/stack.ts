/**
 * Reading the running Pulumi stack's `cloudpal:*` config: Pulumi's flat key → text map turned into one object
 * for loadConfig, and the secret SSH private key delivery logs in with, checked without ever being shown.
 */
import * as pulumi from "@pulumi/pulumi";
import { loadConfig } from "./load";
import { CONFIG_SCHEMA } from "./schema";
import { CONFIG_NAMESPACE, ConfigError, type HubConfig } from "./types";

/** Secret config holding the operator's SSH private key for delivery; not part of HubConfig. */
export const SSH_PRIVATE_KEY_KEY = "sshPrivateKey";

/**
 * Reads `cloudpal:*` from the running Pulumi program and validates it, the SSH private key included, so a
 * wrong key is reported with the other problems instead of failing the first SSH step minutes later.
 */
export function loadStackConfig(): HubConfig {
  const all = pulumi.runtime.allConfig();
  const keyProblems = checkSshPrivateKey(all[`${CONFIG_NAMESPACE}:${SSH_PRIVATE_KEY_KEY}`]);
  try {
    const config = loadConfig(readStackConfig(all));
    if (keyProblems.length > 0) throw new ConfigError(keyProblems);
    return config;
  } catch (e) {
    if (e instanceof ConfigError && keyProblems.length > 0 && e.problems !== keyProblems)
      throw new ConfigError([...e.problems, ...keyProblems]);
    throw e;
  }
}

const SET_KEY = `pulumi config set --secret ${CONFIG_NAMESPACE}:${SSH_PRIVATE_KEY_KEY} < ~/.ssh/id_ed25519`;

/** The private key's text is never shown: only what is wrong with it. */
export function checkSshPrivateKey(value: string | undefined): string[] {
  const field = `'${SSH_PRIVATE_KEY_KEY}'`;
  if (value === undefined || value.trim() === "")
    return [`${field} is missing: delivery logs in over SSH with it; set it with '${SET_KEY}'.`];
  if (/^(ssh-|ecdsa-|sk-)/.test(value.trim()))
    return [
      `${field} (not shown) is a public key: give the private key, the same file without '.pub', with '${SET_KEY}'.`,
    ];
  const pem = /-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----([\s\S]*?)-----END/.exec(value);
  if (!pem)
    return [
      `${field} (not shown) is not an SSH private key (a file path instead of the file's content?): set it with '${SET_KEY}'.`,
    ];
  if (pem[1] === "ENCRYPTED " || /Proc-Type: 4,ENCRYPTED/.test(value) || openSshCipher(pem[2]) !== "none")
    return [
      `${field} (not shown) is protected by a passphrase, which delivery cannot type: make a key without one for CloudPal ('ssh-keygen -t ed25519 -N "" -f ~/.ssh/cloudpal'), add its .pub to 'sshPublicKeys', and set it with '${SET_KEY.replace("id_ed25519", "cloudpal")}'.`,
    ];
  return [];
}

/** The cipher an OpenSSH-format key is encrypted with ("none" when it is not), from its binary header. */
function openSshCipher(body: string): string {
  const bytes = Buffer.from(body.replace(/\s+/g, ""), "base64");
  const magic = "openssh-key-v1\0";
  if (bytes.subarray(0, magic.length).toString("latin1") !== magic) return "none"; // PEM (PKCS#1/#8)
  const length = bytes.readUInt32BE(magic.length);
  return bytes.subarray(magic.length + 4, magic.length + 4 + length).toString("latin1");
}

/**
 * Turns Pulumi's flat config map (structured values arrive as JSON text) into one object. Unknown keys are
 * kept so the schema reports them (a typo such as `cloudpal:sshport` must not be silently ignored).
 */
export function readStackConfig(all: Record<string, string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const prefix = `${CONFIG_NAMESPACE}:`;
  for (const [fullKey, text] of Object.entries(all)) {
    if (!fullKey.startsWith(prefix)) continue;
    const key = fullKey.slice(prefix.length);
    if (key === SSH_PRIVATE_KEY_KEY) continue;
    const schema = (CONFIG_SCHEMA.properties as Record<string, { type?: string; enum?: unknown }>)[key];
    const isText = schema !== undefined && (schema.type === "string" || schema.enum !== undefined);
    const value = isText ? text : parseJson(text);
    // Pulumi.yaml must give optional keys a default; "" and {} there mean "not set" (see its header).
    if (value === "" || isEmptyObject(value)) continue;
    out[key] = value;
  }
  return out;
}

function isEmptyObject(value: unknown): boolean {
  return (
    typeof value === "object" && value !== null && !Array.isArray(value) && Object.keys(value).length === 0
  );
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text; // The schema then says what type was expected.
  }
}
