/**
 * The hub's SSH host key: ed25519, made by the stack from 32 random bytes held in Pulumi state, so every
 * rebuild of the hub presents the same key and delivery can pin it (`hostKey` on each connection) before any
 * secret is sent. The private key reaches the VM through cloud-init's `ssh_keys` (cloud-init/ssh.ts).
 *
 * The private key is written in OpenSSH's own format ("openssh-key-v1", unencrypted), the format
 * `ssh-keygen` writes and sshd reads for ed25519 host keys. Its layout follows OpenSSH's PROTOCOL.key
 * (openssh-portable, file PROTOCOL.key, and sshkey.c `sshkey_private_to_blob2`); the test suite checks the
 * result with the real `ssh-keygen -y -f`.
 */
import { createHash, createPrivateKey, createPublicKey } from "crypto";

export interface SshHostKey {
  /** "-----BEGIN OPENSSH PRIVATE KEY-----" … : secret. */
  readonly privateKey: string;
  /** authorized_keys format, "ssh-ed25519 <base64> <comment>": what pulumi-command's `hostKey` parses. */
  readonly publicKey: string;
}

const MAGIC = "openssh-key-v1\0";
const BEGIN = "-----BEGIN OPENSSH PRIVATE KEY-----";
const END = "-----END OPENSSH PRIVATE KEY-----";
const TYPE = "ssh-ed25519";

/** An SSH wire-format string: uint32 length, then the bytes (RFC 4251 §5). */
function sshString(bytes: Buffer | string): Buffer {
  const body = typeof bytes === "string" ? Buffer.from(bytes, "latin1") : bytes;
  const length = Buffer.alloc(4);
  length.writeUInt32BE(body.length);
  return Buffer.concat([length, body]);
}

function uint32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

/** The 32-byte ed25519 public key for a 32-byte seed (RFC 8032), by node's crypto. */
export function ed25519PublicFromSeed(seed: Buffer): Buffer {
  if (seed.length !== 32) throw new Error(`an ed25519 seed is 32 bytes, got ${seed.length}`);
  const jwk = createPublicKey(
    createPrivateKey({
      key: { kty: "OKP", crv: "Ed25519", d: seed.toString("base64url"), x: "" },
      format: "jwk",
    }),
  ).export({ format: "jwk" });
  if (typeof jwk.x !== "string") throw new Error("ed25519 public key export returned no 'x'");
  return Buffer.from(jwk.x, "base64url");
}

function publicBlob(pub: Buffer): Buffer {
  return Buffer.concat([sshString(TYPE), sshString(pub)]);
}

/**
 * The host key pair for a 32-byte seed (base64, as random.RandomBytes gives it). Deterministic: the same seed
 * gives the same bytes, so the user-data (which the providers treat as replace-on-change) never drifts.
 * OpenSSH fills the two "checkint" words with random bytes to detect a wrong passphrase; for an unencrypted
 * key any equal pair is valid, so they come from a hash of the seed.
 */
export function ed25519HostKey(seedBase64: string, comment: string): SshHostKey {
  if (/[\r\n]/.test(comment)) throw new Error("an SSH key comment must be one line");
  const seed = Buffer.from(seedBase64, "base64");
  const pub = ed25519PublicFromSeed(seed);
  const check = createHash("sha256")
    .update("cloudpal-openssh-checkint")
    .update(seed)
    .digest()
    .readUInt32BE(0);
  let secret = Buffer.concat([
    uint32(check),
    uint32(check),
    sshString(TYPE),
    sshString(pub),
    // OpenSSH keeps ed25519 private keys as seed || public key (64 bytes).
    sshString(Buffer.concat([seed, pub])),
    sshString(comment),
  ]);
  // Padded with 1, 2, 3, … to the cipher block size, 8 for "none" (PROTOCOL.key).
  const pad: number[] = [];
  for (let i = 1; (secret.length + pad.length) % 8 !== 0; i++) pad.push(i);
  secret = Buffer.concat([secret, Buffer.from(pad)]);
  const body = Buffer.concat([
    Buffer.from(MAGIC, "latin1"),
    sshString("none"),
    sshString("none"),
    sshString(""),
    uint32(1),
    sshString(publicBlob(pub)),
    sshString(secret),
  ]);
  const lines = body.toString("base64").match(/.{1,70}/g) ?? [];
  return {
    privateKey: `${BEGIN}\n${lines.join("\n")}\n${END}\n`,
    publicKey: `${TYPE} ${publicBlob(pub).toString("base64")} ${comment}`.trim(),
  };
}

/**
 * The public key line inside an unencrypted OpenSSH ed25519 private key, or undefined when the text is not one
 * (another type, encrypted, several keys, or a private half that does not match its public half). The policy
 * pack uses it to allow exactly the host key in user-data and nothing else.
 */
export function ed25519PublicOfPrivate(privateKey: string): string | undefined {
  const m =
    /^-----BEGIN OPENSSH PRIVATE KEY-----\n([A-Za-z0-9+/=\n]+)-----END OPENSSH PRIVATE KEY-----\n?$/.exec(
      privateKey,
    );
  if (!m) return undefined;
  const bytes = Buffer.from(m[1].replace(/\n/g, ""), "base64");
  let at = 0;
  const take = (): Buffer | undefined => {
    if (at + 4 > bytes.length) return undefined;
    const n = bytes.readUInt32BE(at);
    if (at + 4 + n > bytes.length) return undefined;
    const out = bytes.subarray(at + 4, at + 4 + n);
    at += 4 + n;
    return out;
  };
  if (bytes.subarray(0, MAGIC.length).toString("latin1") !== MAGIC) return undefined;
  at = MAGIC.length;
  const cipher = take()?.toString("latin1");
  const kdf = take()?.toString("latin1");
  take(); // kdf options
  if (cipher !== "none" || kdf !== "none" || at + 4 > bytes.length || bytes.readUInt32BE(at) !== 1)
    return undefined;
  at += 4;
  const blob = take();
  const secret = take();
  if (!blob || !secret || at !== bytes.length) return undefined;
  // The private section: check words, then type, public, seed||public.
  const inner = { bytes: secret, at: 8 };
  const innerTake = (): Buffer | undefined => {
    const b = inner.bytes;
    if (inner.at + 4 > b.length) return undefined;
    const n = b.readUInt32BE(inner.at);
    if (inner.at + 4 + n > b.length) return undefined;
    const out = b.subarray(inner.at + 4, inner.at + 4 + n);
    inner.at += 4 + n;
    return out;
  };
  if (secret.length < 8 || secret.readUInt32BE(0) !== secret.readUInt32BE(4)) return undefined;
  const type = innerTake()?.toString("latin1");
  const pub = innerTake();
  const priv = innerTake();
  if (type !== TYPE || !pub || pub.length !== 32 || !priv || priv.length !== 64) return undefined;
  if (!priv.subarray(32).equals(pub) || !ed25519PublicFromSeed(priv.subarray(0, 32)).equals(pub))
    return undefined;
  if (!publicBlob(pub).equals(blob)) return undefined;
  return `${TYPE} ${blob.toString("base64")}`;
}

/** The key part of an authorized_keys line ("type base64"), without the comment. */
export function publicKeyWithoutComment(line: string): string {
  return line.trim().split(/\s+/).slice(0, 2).join(" ");
}

/**
 * A known_hosts line for the hub (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT"): the bare host on port 22, and
 * "[host]:port" otherwise, which is how ssh looks a non-default port up.
 */
export function knownHostsLine(host: string, port: number, publicKey: string): string {
  const name = port === 22 ? host : `[${host}]:${port}`;
  return `${name} ${publicKeyWithoutComment(publicKey)}`;
}
