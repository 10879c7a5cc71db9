/**
 * Prints the rendered user-data size per provider and image against each provider's limit, for a typical
 * spec (one ed25519 key) and a large one (ten RSA-4096 keys). Run: npx ts-node --transpile-only bench/userdata-size.ts
 */
import { generateKeyPairSync, randomBytes } from "crypto";
import { renderBootstrapScript, renderUserData } from "../cloud-init/render";
import type { BootstrapSpec, ImageFamily } from "../cloud-init/spec";
import { ed25519HostKey } from "../model/ssh-host-key";

/** Limits as documented by each provider (see test/cloud-init-render.test.ts for the sources). */
const LIMITS: { provider: string; bytes: number; measure: (u: string) => number; note: string }[] = [
  { provider: "digitalocean", bytes: 64 * 1024, measure: (u) => Buffer.byteLength(u), note: "64 KiB raw" },
  { provider: "linode", bytes: 65535, measure: (u) => Buffer.byteLength(u), note: "65535 B before base64" },
  {
    provider: "linode (encoded)",
    bytes: 65535,
    measure: (u) => Buffer.from(u).toString("base64").length,
    note: "same limit applied to the base64 form, in case",
  },
];

function sshRsaKey(): string {
  const jwk = generateKeyPairSync("rsa", { modulusLength: 4096 }).publicKey.export({ format: "jwk" });
  const field = (b: Buffer): Buffer => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(b.length);
    return Buffer.concat([len, b]);
  };
  const mpint = (s: string): Buffer => {
    const raw = Buffer.from(s, "base64url");
    return field(raw[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), raw]) : raw);
  };
  const blob = Buffer.concat([field(Buffer.from("ssh-rsa")), mpint(jwk.e!), mpint(jwk.n!)]);
  return `ssh-rsa ${blob.toString("base64")} operator@laptop.example.org`;
}

const ed25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGvwDjtFrBh1g3XQuFaASrQa9cfgUDddBNpobli+RPAf me@laptop";
const rsa = sshRsaKey();
/** The cloud user-data carries the hub's SSH host key (README, "Delivery trust"): measured with it. */
const hostKey = ed25519HostKey(randomBytes(32).toString("base64"), "cloudpal-hub");

function spec(image: ImageFamily, keys: string[]): BootstrapSpec {
  return {
    hostname: "cloudpal-hub",
    image,
    operator: { user: "cloudpal-admin", sshPublicKeys: keys },
    sshPort: 22,
    wireguardPort: 51820,
    unattendedUpgrades: { autoReboot: true, rebootTime: "04:00" },
  };
}

console.log("provider           image         keys            bytes   limit   used");
for (const image of ["debian-12", "ubuntu-24.04"] as ImageFamily[]) {
  for (const [label, keys] of [
    ["1 ed25519", [ed25519]],
    ["10 rsa-4096", Array.from({ length: 10 }, () => rsa)],
  ] as [string, string[]][]) {
    const userData = renderUserData(spec(image, keys), hostKey);
    for (const limit of LIMITS) {
      const size = limit.measure(userData);
      console.log(
        `${limit.provider.padEnd(18)} ${image.padEnd(13)} ${label.padEnd(12)} ${String(size).padStart(8)} ${String(limit.bytes).padStart(7)} ${((100 * size) / limit.bytes).toFixed(1).padStart(5)}%  (${limit.note})`,
      );
    }
  }
  console.log(
    `bootstrap script   ${image.padEnd(13)} 1 ed25519    ${String(Buffer.byteLength(renderBootstrapScript(spec(image, [ed25519])))).padStart(8)}`,
  );
}
