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
 * Secret config holding that key's passphrase, if it has one; delivery passes it as pulumi-command's
 * `privateKeyPassword` (used with `ssh.ParsePrivateKeyWithPassphrase`, remote/connection.go L106-116).
 */
export const SSH_PRIVATE_KEY_PASSWORD_KEY = "sshPrivateKeyPassword";

/**
 * Reads `cloudpal:*` from the running Pulumi program and validates it, the SSH private key included, so a
 * wrong key is reported with the other problems instead of failing the first SSH step minutes later.
 */
export function loadStackConfig(): HubConfig {
  const all = pulumi.runtime.allConfig();
  const keyProblems = checkSshPrivateKey(
    all[`${CONFIG_NAMESPACE}:${SSH_PRIVATE_KEY_KEY}`],
    all[`${CONFIG_NAMESPACE}:${SSH_PRIVATE_KEY_PASSWORD_KEY}`],
  );
  // The stack file itself: a key in a namespace nothing reads (a typo), and a secret left in plain text.
  keyProblems.push(...unknownNamespaces(Object.keys(all)), ...plaintextSecrets([SSH_PRIVATE_KEY_KEY], all));
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

/**
 * The config namespaces something reads: CloudPal's own, the engine's, and those of the providers the program
 * uses (each provider reads `<its package name>:*`, e.g. `digitalocean:token`). Anything else is a typo that
 * would otherwise be ignored without a word.
 */
export const READ_NAMESPACES: readonly string[] = [
  CONFIG_NAMESPACE,
  "pulumi",
  "digitalocean",
  "linode",
  "vultr",
  "command",
  "random",
];

export function unknownNamespaces(keys: readonly string[]): string[] {
  const out: string[] = [];
  for (const key of keys) {
    const at = key.indexOf(":");
    const namespace = at < 0 ? "" : key.slice(0, at);
    if (READ_NAMESPACES.includes(namespace)) continue;
    const near = READ_NAMESPACES.find((n) => editDistance(n, namespace.toLowerCase()) <= 2);
    const rest = key.slice(at + 1);
    // The value is never shown: it may be a secret under a misspelt name.
    const why = `'${key}' is read by nothing (namespace ${JSON.stringify(namespace)} is not CloudPal's or a provider's)`;
    out.push(
      near !== undefined
        ? `${why}: did you mean '${near}:${rest}'?`
        : `${why}: CloudPal's settings are 'cloudpal:<name>'; rename it, or remove it with 'pulumi config rm ${key}'.`,
    );
  }
  return out;
}

/** Levenshtein distance, one row at a time. */
function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++)
      next[j] = Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    row = next;
  }
  return row[b.length];
}

/**
 * Whether the Pulumi CLI passed a config key as a secret. The engine gives the program the names of its secret
 * keys (PULUMI_CONFIG_SECRET_KEYS), which @pulumi/pulumi answers from in `runtime.isConfigSecret`
 * (node_modules/@pulumi/pulumi/runtime/config.js); its typings mark that function internal, hence the cast.
 * If a release ever drops it every key counts as plain text, and test/program-stack.test.ts fails.
 */
function isConfigSecret(fullKey: string): boolean {
  const runtime = pulumi.runtime as unknown as { isConfigSecret?: (key: string) => boolean };
  return runtime.isConfigSecret?.(fullKey) ?? false;
}

/** Secret keys whose value sits in the stack file as plain text: readable by anyone who reads the file. */
export function plaintextSecrets(
  keys: readonly string[],
  all: Record<string, string>,
  isSecret: (fullKey: string) => boolean = isConfigSecret,
): string[] {
  return keys
    .map((key) => `${CONFIG_NAMESPACE}:${key}`)
    .filter((fullKey) => all[fullKey] !== undefined && !isSecret(fullKey))
    .map(
      (fullKey) =>
        `'${fullKey}' (not shown) is in the stack file as plain text, where anyone who reads the file sees it: set it as a secret with 'pulumi config set --secret ${fullKey} < ~/.ssh/id_ed25519' (and make a new key if the file was ever shared).`,
    );
}

const SET_KEY = `pulumi config set --secret ${CONFIG_NAMESPACE}:${SSH_PRIVATE_KEY_KEY} < ~/.ssh/id_ed25519`;

const SET_PASSWORD = `pulumi config set --secret ${CONFIG_NAMESPACE}:${SSH_PRIVATE_KEY_PASSWORD_KEY}`;

/** The private key's text (and its passphrase) is never shown: only what is wrong with it. */
export function checkSshPrivateKey(value: string | undefined, password?: string): string[] {
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
  // pulumi-command decrypts OpenSSH-format and legacy PEM ("Proc-Type: 4,ENCRYPTED") keys with
  // `privateKeyPassword` (x/crypto ssh.ParsePrivateKeyWithPassphrase); an encrypted PKCS#8 block it cannot.
  if (pem[1] === "ENCRYPTED ")
    return [
      `${field} (not shown) is protected by a passphrase, which delivery cannot type: it is encrypted PKCS#8, which pulumi-command cannot decrypt; rewrite it in OpenSSH format with 'ssh-keygen -p -f <file>' and set it again with '${SET_KEY}'.`,
    ];
  const encrypted = /Proc-Type: 4,ENCRYPTED/.test(value) || openSshCipher(pem[2]) !== "none";
  const hasPassword = password !== undefined && password !== "";
  if (encrypted && !hasPassword)
    return [
      `${field} (not shown) is protected by a passphrase, which delivery cannot type: set the passphrase with '${SET_PASSWORD}' (it asks for it), or use a key without one.`,
    ];
  if (!encrypted && hasPassword)
    return [
      `'${SSH_PRIVATE_KEY_PASSWORD_KEY}' (not shown) is set but ${field} has no passphrase: remove it with 'pulumi config rm ${CONFIG_NAMESPACE}:${SSH_PRIVATE_KEY_PASSWORD_KEY}'.`,
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
    if (key === SSH_PRIVATE_KEY_KEY || key === SSH_PRIVATE_KEY_PASSWORD_KEY) continue;
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
