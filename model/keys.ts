/**
 * WireGuard keys: Curve25519, 32 bytes, standard base64 (44 characters ending in '=').
 * Node's crypto does the X25519 maths (RFC 7748); it matched `wg pubkey` on every key tried.
 */
import { createPrivateKey, createPublicKey } from "crypto";
import { WIREGUARD_KEY_PATTERN } from "./rules";

const KEY_PATTERN = new RegExp(WIREGUARD_KEY_PATTERN);

/** True for a well-formed WireGuard key (public, private or preshared): 32 bytes in standard base64. */
export function isWireGuardKey(value: string): boolean {
  return KEY_PATTERN.test(value) && Buffer.from(value, "base64").length === 32;
}

/** A private key from 32 random bytes, clamped as `wg genkey` clamps it. */
export function privateKeyFromBytes(bytes: Uint8Array): string {
  if (bytes.length !== 32)
    throw new Error(`a WireGuard private key needs 32 random bytes, got ${bytes.length}`);
  const k = Buffer.from(bytes);
  k[0] &= 248;
  k[31] = (k[31] & 127) | 64;
  return k.toString("base64");
}

/** The public key for a private key, as `wg pubkey` prints it. */
export function publicKeyFromPrivate(privateKey: string): string {
  if (!isWireGuardKey(privateKey))
    throw new Error("not a WireGuard private key: expected 44 base64 characters");
  const d = Buffer.from(privateKey, "base64").toString("base64url");
  const jwk = createPublicKey(
    createPrivateKey({ key: { kty: "OKP", crv: "X25519", d, x: "" }, format: "jwk" }),
  ).export({ format: "jwk" });
  if (typeof jwk.x !== "string") throw new Error("X25519 public key export returned no 'x'");
  return Buffer.from(jwk.x, "base64url").toString("base64");
}
