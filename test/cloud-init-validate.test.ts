import { generateKeyPairSync } from "crypto";
import { renderBootstrapScript, renderUserData, validateBootstrapSpec } from "../cloud-init/render";
import type { BootstrapSpec } from "../cloud-init/spec";
import { ED25519_KEY, spec } from "./cloud-init-helpers";

/** An ECDSA P-256 public key in authorized_keys form, built from a fresh key pair (RFC 5656 blob layout). */
function ecdsaKey(): string {
  const jwk = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({ format: "jwk" });
  const str = (b: Buffer): Buffer => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(b.length);
    return Buffer.concat([len, b]);
  };
  const point = Buffer.concat([
    Buffer.from([4]),
    Buffer.from(jwk.x!, "base64url"),
    Buffer.from(jwk.y!, "base64url"),
  ]);
  const blob = Buffer.concat([
    str(Buffer.from("ecdsa-sha2-nistp256")),
    str(Buffer.from("nistp256")),
    str(point),
  ]);
  return `ecdsa-sha2-nistp256 ${blob.toString("base64")} phone`;
}

const withKeys = (sshPublicKeys: unknown[]): BootstrapSpec =>
  spec({ operator: { user: "alice", sshPublicKeys: sshPublicKeys as string[] } });

describe("validateBootstrapSpec", () => {
  it("accepts a good spec, including ECDSA keys and keys without a comment", () => {
    expect(() => validateBootstrapSpec(spec())).not.toThrow();
    expect(() =>
      validateBootstrapSpec(withKeys([ecdsaKey(), ED25519_KEY.replace(/ me@laptop$/, "")])),
    ).not.toThrow();
  });

  const ed25519Blob = ED25519_KEY.split(" ")[1]!;
  const cases: [string, BootstrapSpec, RegExp][] = [
    [
      "hostname with an underscore",
      spec({ hostname: "my_hub" }),
      /^'hostname' \("my_hub"\) is not a valid host name: use 1 to 63/,
    ],
    ["hostname with a leading hyphen", spec({ hostname: "-hub" }), /^'hostname' \("-hub"\)/],
    ["hostname of 64 characters", spec({ hostname: "a".repeat(64) }), /^'hostname' /],
    [
      "unknown image",
      spec({ image: "centos-9" as never }),
      /^'image' \("centos-9"\) is not a supported image: use one of debian-12, ubuntu-24.04\.$/,
    ],
    [
      "user name with capitals",
      spec({ operator: { user: "Alice", sshPublicKeys: [ED25519_KEY] } }),
      /^'operator\.user' \("Alice"\) is not a valid user name/,
    ],
    [
      "user root",
      spec({ operator: { user: "root", sshPublicKeys: [ED25519_KEY] } }),
      /^'operator\.user' \("root"\) is reserved/,
    ],
    [
      "CloudPal's own name",
      spec({ operator: { user: "cloudpal", sshPublicKeys: [ED25519_KEY] } }),
      /^'operator\.user' \("cloudpal"\) is reserved/,
    ],
    ["no keys", withKeys([]), /^'operator\.sshPublicKeys' \(\[\]\) must list at least one SSH public key/],
    [
      "a private key",
      withKeys(["-----BEGIN OPENSSH PRIVATE KEY-----"]),
      /^'operator\.sshPublicKeys\[0\]' holds a private key \(not shown\): paste the public half instead/,
    ],
    [
      "an unsupported type",
      withKeys([ED25519_KEY, `ssh-dss ${ed25519Blob}`]),
      /^'operator\.sshPublicKeys\[1\]' .* has unsupported key type "ssh-dss"/,
    ],
    [
      "a mislabelled key",
      withKeys([`ssh-rsa ${ed25519Blob} x`]),
      /declares "ssh-rsa" but the key part encodes "ssh-ed25519"/,
    ],
    ["a key that is not base64", withKeys(["ssh-ed25519 AAAA$$$$ x"]), /has a key part that is not base64/],
    ["two keys on one line", withKeys([`${ED25519_KEY}\n${ED25519_KEY}`]), /spans several lines/],
    ["a key that is not a string", withKeys([42]), /^'operator\.sshPublicKeys\[0\]' \(42\) is not a string/],
    [
      "SSH port 0",
      spec({ sshPort: 0 }),
      /^'sshPort' \(0\) is not a TCP port: use a whole number from 1 to 65535\.$/,
    ],
    ["SSH port 70000", spec({ sshPort: 70000 }), /^'sshPort' \(70000\)/],
    [
      "a fractional port",
      spec({ wireguardPort: 51820.5 }),
      /^'wireguardPort' \(51820\.5\) is not a UDP port/,
    ],
    [
      "a port given as text",
      spec({ wireguardPort: "51820" as never }),
      /^'wireguardPort' \("51820"\) is not a UDP port/,
    ],
    [
      "autoReboot as text",
      spec({ unattendedUpgrades: { autoReboot: "yes" as never, rebootTime: "04:00" } }),
      /^'unattendedUpgrades\.autoReboot' \("yes"\) must be true or false\.$/,
    ],
    [
      "reboot at 24:00",
      spec({ unattendedUpgrades: { autoReboot: true, rebootTime: "24:00" } }),
      /^'unattendedUpgrades\.rebootTime' \("24:00"\) is not a time of day: use 24-hour HH:MM/,
    ],
    [
      "reboot at 4am",
      spec({ unattendedUpgrades: { autoReboot: true, rebootTime: "4am" } }),
      /^'unattendedUpgrades\.rebootTime' \("4am"\)/,
    ],
  ];

  it.each(cases)("rejects %s with one sentence naming the field", (_name, bad, message) => {
    expect(() => validateBootstrapSpec(bad)).toThrow(message);
    const text = (() => {
      try {
        validateBootstrapSpec(bad);
        return "";
      } catch (e) {
        return (e as Error).message;
      }
    })();
    expect(text).not.toContain("\n");
    expect(text.trim().endsWith(".")).toBe(true);
  });

  it("never echoes any part of a pasted private key", () => {
    const pem = generateKeyPairSync("ed25519").privateKey.export({ format: "pem", type: "pkcs8" }).toString();
    let message = "";
    try {
      validateBootstrapSpec(withKeys([ED25519_KEY, pem]));
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(
      /^'operator\.sshPublicKeys\[1\]' holds a private key \(not shown\): paste the public half/,
    );
    expect(message).not.toContain("-----BEGIN");
    const body = pem.split("\n")[1]!;
    for (let i = 0; i + 6 <= body.length; i++) expect(message).not.toContain(body.slice(i, i + 6));
  });

  it("both renderers refuse a bad spec before producing anything", () => {
    expect(() => renderUserData(spec({ sshPort: -1 }))).toThrow(/^'sshPort'/);
    expect(() => renderBootstrapScript(spec({ hostname: "a b" }))).toThrow(/^'hostname'/);
  });
});
