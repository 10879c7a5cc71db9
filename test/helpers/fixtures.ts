/** Valid keys and minimal configs for config, program and plan tests: derived from fixed seeds. */
import { createHash, createPrivateKey, createPublicKey } from "crypto";
import { privateKeyFromBytes, publicKeyFromPrivate } from "../../model/keys";

function seed(label: string): Buffer {
  return createHash("sha256").update(label).digest();
}

/** A real WireGuard public key (the device keeps the private half). */
export function wireguardPublicKey(label: string): string {
  return publicKeyFromPrivate(privateKeyFromBytes(seed(`wg:${label}`)));
}

/** A real OpenSSH ed25519 public key line. */
export function sshPublicKey(label: string): string {
  const d = seed(`ssh:${label}`).toString("base64url");
  const jwk = createPublicKey(
    createPrivateKey({ key: { kty: "OKP", crv: "Ed25519", d, x: "" }, format: "jwk" }),
  ).export({ format: "jwk" });
  const field = (b: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(b.length);
    return Buffer.concat([len, b]);
  };
  const blob = Buffer.concat([
    field(Buffer.from("ssh-ed25519")),
    field(Buffer.from(jwk.x as string, "base64url")),
  ]);
  return `ssh-ed25519 ${blob.toString("base64")} ${label}@example`;
}

export const OPERATOR_CIDR = "203.0.113.7/32";

/** The `existing` fixture server's ed25519 host key line (what 'cat /etc/ssh/ssh_host_ed25519_key.pub' prints). */
export const EXISTING_HOST_KEY =
  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOpKbGPinFIKvvVQexMuxfmVR3auvr57kkIe6mkURtIs root@server";

export function minimalConfig(
  provider: string,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    provider,
    sshPublicKeys: [sshPublicKey("operator")],
    sshAllowedCidrs: [OPERATOR_CIDR],
    ...(provider === "existing"
      ? { existing: { host: "198.51.100.44", user: "admin", hostKey: EXISTING_HOST_KEY } }
      : {}),
    ...extra,
  };
}
