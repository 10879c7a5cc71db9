/**
 * The rules on names, domains, keys and users that the stack config, the bootstrap spec and the hub state all
 * apply. Each lives here once, so a value the config accepts is never refused later by the bootstrap or on the
 * hub. They are also the injection defence: names are hostname labels, domains are dotted labels, keys are
 * base64, so no value can carry a newline, quote, brace or semicolon into a file the hub reads.
 */

/** Peer, group and host names: one DNS label of at most 32 characters (a peer is also `<name>.pal`). */
export const NAME_PATTERN = "^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$";
export const NAME_FIX =
  "use 1 to 32 lower-case letters, digits or '-', starting and ending with a letter or digit";

/** Dotted hostname labels; '_' is allowed because real blocklists name such hosts (e.g. _dmarc). */
export const DOMAIN_PATTERN =
  "^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$";

/**
 * A WireGuard key (public, private or preshared): 32 bytes in standard base64, so 43 characters and '='; the
 * 43rd character carries only 4 of the key's bits, hence its short alphabet.
 */
export const WIREGUARD_KEY_PATTERN = "^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$";
/** A TCP-path (Shadowsocks) password: 32 random bytes as unpadded base64url, safe in an ss:// URI. */
export const TCP_KEY_PATTERN = "^[A-Za-z0-9_-]{43}$";

/**
 * The operator's login name: Debian's adduser default NAME_REGEX (adduser.conf), restricted to lower case and
 * to a letter first, at most 32 characters (useradd's limit).
 */
export const USER_NAME_PATTERN = "^[a-z][a-z0-9_-]{0,31}$";
const USER_NAME = new RegExp(USER_NAME_PATTERN);

/**
 * Names the images or CloudPal already use: an operator with one of these would fight the system for it (and
 * root cannot be the operator because the hub refuses root logins over SSH).
 */
export const RESERVED_USER_NAMES: readonly string[] = [
  "root",
  "cloudpal",
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
];

/**
 * Why a name cannot be the operator user, as the tail of a sentence that starts "'field' (value) ", or
 * undefined when it can.
 */
export function userNameProblem(name: unknown): string | undefined {
  if (typeof name !== "string" || !USER_NAME.test(name))
    return "is not a valid user name: start with a lower-case letter, then up to 31 lower-case letters, digits, '_' or '-'";
  if (RESERVED_USER_NAMES.includes(name))
    return `is reserved for the system or for CloudPal: choose another name, e.g. "admin"${name === "root" ? " (the hub refuses root logins over SSH)" : ""}`;
  return undefined;
}

/** Public key algorithms OpenSSH 9.2 (Debian 12) and 9.6 (Ubuntu 24.04) accept for user authentication. */
export const SSH_KEY_TYPES: readonly string[] = [
  "ssh-ed25519",
  "ssh-rsa",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "sk-ssh-ed25519@openssh.com",
  "sk-ecdsa-sha2-nistp256@openssh.com",
];

/** What to do about a bad authorized_keys line. */
export const SSH_KEY_FIX =
  "copy the whole line from your '.pub' file again, e.g. \"ssh-ed25519 AAAAC3... me@laptop\"";

/**
 * Why an authorized_keys line is not a usable public key (the tail of a sentence that starts
 * "'field' (value) "), or undefined when it is. The key blob is a run of length-prefixed strings whose first
 * is the algorithm named in front (RFC 4253 section 6.6); decoding it whole catches truncated or mixed-up
 * pastes that a pattern cannot.
 */
export function sshPublicKeyProblem(line: string): string | undefined {
  if (/[\r\n\0]/.test(line)) return "spans several lines";
  const parts = line.trim().split(/\s+/);
  if (parts.length < 2) return "is not '<type> <base64> [comment]'";
  const [type, blob] = parts as [string, string];
  if (!SSH_KEY_TYPES.includes(type)) return `has unsupported key type ${JSON.stringify(type)}`;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(blob)) return "has a key part that is not base64";
  const bytes = Buffer.from(blob, "base64");
  const fields: Buffer[] = [];
  let at = 0;
  while (at + 4 <= bytes.length) {
    const length = bytes.readUInt32BE(at);
    if (at + 4 + length > bytes.length) break;
    fields.push(bytes.subarray(at + 4, at + 4 + length));
    at += 4 + length;
  }
  const embedded = fields[0]?.toString("latin1");
  if (embedded !== undefined && embedded !== type && SSH_KEY_TYPES.includes(embedded))
    return `declares ${JSON.stringify(type)} but the key part encodes ${JSON.stringify(embedded)}`;
  if (at !== bytes.length || fields.length < 2 || embedded !== type) return `is not a complete ${type} key`;
  return undefined;
}
