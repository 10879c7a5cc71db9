/**
 * Shadowsocks AEAD framing, written from the specification (shadowsocks.org, SIP004 "AEAD ciphers" and SIP007
 * "per-session subkey"); no code copied from an implementation.
 *
 * - The master key comes from the password as OpenSSL's EVP_BytesToKey does with MD5, no salt, one round
 *   (what ss-libev's `-k`, ss:// access keys and Outline's servers all use).
 * - Each direction of a TCP session starts with a random salt as long as the key; the session subkey is
 *   HKDF-SHA1(master key, salt, info "ss-subkey").
 * - Then chunks: the payload length (2 bytes, big-endian, at most 0x3FFF) sealed with its own 16-byte tag, then
 *   the payload sealed with its tag. The 12-byte nonce is a little-endian counter from 0, incremented after each
 *   seal or open, so the length and the payload of one chunk use consecutive nonces.
 */
import { createCipheriv, createDecipheriv, createHash, hkdfSync, type CipherGCMTypes } from "crypto";

export type Method = "chacha20-ietf-poly1305" | "aes-256-gcm";

export const KEY_BYTES = 32;
export const SALT_BYTES = 32;
export const TAG_BYTES = 16;
export const MAX_PAYLOAD = 0x3fff;
/** Bytes a client must send before its key can be tried: the salt and the sealed length of the first chunk. */
export const FIRST_BYTES = SALT_BYTES + 2 + TAG_BYTES;

const NODE_CIPHER: Record<Method, CipherGCMTypes | "chacha20-poly1305"> = {
  "chacha20-ietf-poly1305": "chacha20-poly1305",
  "aes-256-gcm": "aes-256-gcm",
};

/** EVP_BytesToKey(MD5, no salt, count 1): D1 = MD5(pw), Di = MD5(D(i-1) || pw), concatenated to 32 bytes. */
export function masterKey(password: string): Buffer {
  const pw = Buffer.from(password, "utf8");
  const parts: Buffer[] = [];
  let prev = Buffer.alloc(0);
  while (parts.length * 16 < KEY_BYTES) {
    prev = createHash("md5")
      .update(Buffer.concat([prev, pw]))
      .digest();
    parts.push(prev);
  }
  return Buffer.concat(parts).subarray(0, KEY_BYTES);
}

export function sessionSubkey(master: Buffer, salt: Buffer): Buffer {
  return Buffer.from(hkdfSync("sha1", master, salt, "ss-subkey", KEY_BYTES));
}

/** One direction's AEAD state: a subkey and its nonce counter. */
class Sealer {
  private readonly nonce = Buffer.alloc(12);
  constructor(
    private readonly method: Method,
    private readonly key: Buffer,
  ) {}

  private step(): void {
    for (let i = 0; i < this.nonce.length; i++) {
      this.nonce[i] = (this.nonce[i] + 1) & 0xff;
      if (this.nonce[i] !== 0) break;
    }
  }

  seal(plain: Buffer): Buffer {
    const c = createCipheriv(NODE_CIPHER[this.method] as CipherGCMTypes, this.key, this.nonce, {
      authTagLength: TAG_BYTES,
    });
    const out = Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
    this.step();
    return out;
  }

  /** undefined when the tag does not verify; the counter then stays where it was. */
  open(sealed: Buffer): Buffer | undefined {
    const d = createDecipheriv(NODE_CIPHER[this.method] as CipherGCMTypes, this.key, this.nonce, {
      authTagLength: TAG_BYTES,
    });
    d.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
    try {
      const out = Buffer.concat([d.update(sealed.subarray(0, sealed.length - TAG_BYTES)), d.final()]);
      this.step();
      return out;
    } catch {
      return undefined;
    }
  }
}

/** Frames outgoing bytes: the salt once, then sealed chunks of at most MAX_PAYLOAD bytes. */
export class Encryptor {
  private readonly sealer: Sealer;
  private saltSent = false;
  constructor(
    method: Method,
    master: Buffer,
    readonly salt: Buffer,
  ) {
    this.sealer = new Sealer(method, sessionSubkey(master, salt));
  }

  frame(data: Buffer): Buffer {
    const out: Buffer[] = [];
    if (!this.saltSent) {
      out.push(this.salt);
      this.saltSent = true;
    }
    for (let at = 0; at < data.length; at += MAX_PAYLOAD) {
      const chunk = data.subarray(at, Math.min(data.length, at + MAX_PAYLOAD));
      const len = Buffer.alloc(2);
      len.writeUInt16BE(chunk.length);
      out.push(this.sealer.seal(len), this.sealer.seal(chunk));
    }
    return Buffer.concat(out);
  }
}

/**
 * Reads incoming bytes after the salt: buffers until a whole chunk is there, then yields its payload. Throws
 * AuthError on a tag that does not verify or a length over MAX_PAYLOAD (the stream is then not trustworthy).
 */
export class Decryptor {
  private readonly sealer: Sealer;
  private pending: Buffer = Buffer.alloc(0);
  private nextLength: number | undefined;

  constructor(method: Method, subkey: Buffer) {
    this.sealer = new Sealer(method, subkey);
  }

  push(data: Buffer): Buffer[] {
    this.pending = this.pending.length === 0 ? data : Buffer.concat([this.pending, data]);
    const out: Buffer[] = [];
    for (;;) {
      if (this.nextLength === undefined) {
        if (this.pending.length < 2 + TAG_BYTES) break;
        const len = this.sealer.open(this.pending.subarray(0, 2 + TAG_BYTES));
        if (len === undefined) throw new AuthError("length tag");
        const n = len.readUInt16BE(0);
        if (n > MAX_PAYLOAD || n === 0) throw new AuthError("length");
        this.nextLength = n;
        this.pending = this.pending.subarray(2 + TAG_BYTES);
      }
      if (this.pending.length < this.nextLength + TAG_BYTES) break;
      const payload = this.sealer.open(this.pending.subarray(0, this.nextLength + TAG_BYTES));
      if (payload === undefined) throw new AuthError("payload tag");
      out.push(payload);
      this.pending = this.pending.subarray(this.nextLength + TAG_BYTES);
      this.nextLength = undefined;
    }
    return out;
  }
}

export class AuthError extends Error {}

/** A key a connection's first bytes may be tried with. */
export interface TrialKey<T> {
  readonly method: Method;
  readonly master: Buffer;
  readonly owner: T;
}

/**
 * Which key opens the first chunk's sealed length (the first FIRST_BYTES bytes), as Outline's server finds a
 * client among many keys on one port: each key's subkey for this salt is derived and tried. Returns the owner
 * and a Decryptor positioned at the start (nothing consumed), or undefined when no key opens it.
 */
export function findKey<T>(
  first: Buffer,
  keys: Iterable<TrialKey<T>>,
): { owner: T; key: TrialKey<T>; decryptor: Decryptor } | undefined {
  const salt = first.subarray(0, SALT_BYTES);
  const sealedLength = first.subarray(SALT_BYTES, FIRST_BYTES);
  for (const key of keys) {
    const subkey = sessionSubkey(key.master, salt);
    const probe = new Sealer(key.method, subkey);
    const len = probe.open(sealedLength);
    if (len === undefined) continue;
    const n = len.readUInt16BE(0);
    if (n === 0 || n > MAX_PAYLOAD) continue;
    return { owner: key.owner, key, decryptor: new Decryptor(key.method, subkey) };
  }
  return undefined;
}

/** The SOCKS5-style target address at the start of a session's first payload (SIP003 address format). */
export type Target =
  | { readonly kind: "ip"; readonly host: string; readonly port: number }
  | { readonly kind: "name"; readonly host: string; readonly port: number };

/** Parses the address; undefined if more bytes are needed; throws AuthError on a malformed one. */
export function parseTarget(buf: Buffer): { target: Target; rest: Buffer } | undefined {
  if (buf.length < 1) return undefined;
  const atyp = buf[0];
  let host: string;
  let at: number;
  if (atyp === 1) {
    if (buf.length < 7) return undefined;
    host = [...buf.subarray(1, 5)].join(".");
    at = 5;
    const port = buf.readUInt16BE(at);
    return { target: { kind: "ip", host, port }, rest: buf.subarray(at + 2) };
  }
  if (atyp === 4) {
    if (buf.length < 19) return undefined;
    const words: string[] = [];
    for (let i = 0; i < 8; i++) words.push(buf.readUInt16BE(1 + 2 * i).toString(16));
    host = words.join(":");
    at = 17;
    return { target: { kind: "ip", host, port: buf.readUInt16BE(at) }, rest: buf.subarray(at + 2) };
  }
  if (atyp === 3) {
    if (buf.length < 2) return undefined;
    const n = buf[1];
    if (n === 0) throw new AuthError("empty name");
    if (buf.length < 2 + n + 2) return undefined;
    host = buf.subarray(2, 2 + n).toString("latin1");
    if (!/^[A-Za-z0-9._-]+$/.test(host)) throw new AuthError("bad name");
    at = 2 + n;
    return { target: { kind: "name", host, port: buf.readUInt16BE(at) }, rest: buf.subarray(at + 2) };
  }
  throw new AuthError("address type");
}
