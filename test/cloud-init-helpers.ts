/**
 * Shared fixtures and process helpers for the cloud-init tests. The tests run the real host tools (cloud-init,
 * nft, unbound-checkconf, systemd-sysctl, apt-config, bash) on the files the renderer produces.
 */
// eslint-disable-next-line no-restricted-imports -- test helper: runs real host tools on rendered files, argument arrays only
import { spawnSync } from "child_process";
import { mkdtempSync, rmSync } from "fs";
import { tmpdir } from "os";
import { join } from "path";
import { parse } from "yaml";
import type { BootstrapSpec, ImageFamily } from "../cloud-init/spec";
import type { CloudConfig } from "../cloud-init/types";

/** A real key made with `ssh-keygen -t ed25519` for these tests (the public half only). */
export const ED25519_KEY =
  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGvwDjtFrBh1g3XQuFaASrQa9cfgUDddBNpobli+RPAf me@laptop";

export function spec(overrides: Partial<BootstrapSpec> = {}): BootstrapSpec {
  return {
    hostname: "cloudpal-hub",
    image: "debian-12",
    operator: { user: "cloudpal-admin", sshPublicKeys: [ED25519_KEY] },
    sshPort: 22,
    wireguardPort: 51820,
    unattendedUpgrades: { autoReboot: true, rebootTime: "04:00" },
    ...overrides,
  };
}

export const IMAGES: readonly ImageFamily[] = ["debian-12", "ubuntu-24.04"];

/** Every image × auto-reboot × SSH port combination the snapshot and schema tests cover. */
export const COMBINATIONS: { name: string; spec: BootstrapSpec }[] = IMAGES.flatMap((image) =>
  [true, false].flatMap((autoReboot) =>
    [22, 2222].map((sshPort) => ({
      name: `${image}, autoReboot ${autoReboot ? "on" : "off"}, ssh port ${sshPort}`,
      spec: spec({ image, sshPort, unattendedUpgrades: { autoReboot, rebootTime: "03:30" } }),
    })),
  ),
);

export function parseUserData(userData: string): CloudConfig {
  return parse(userData) as CloudConfig;
}

export function fileContent(config: CloudConfig, path: string): string {
  const file = config.write_files.find((f) => f.path === path);
  if (!file) throw new Error(`user-data writes no ${path}`);
  return file.content;
}

export interface Result {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function run(command: string, args: readonly string[], input?: string): Result {
  const r = spawnSync(command, args, { encoding: "utf8", input, timeout: 60_000 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Runs and throws with stderr unless the command succeeds. */
export function runOk(command: string, args: readonly string[], input?: string): string {
  const r = run(command, args, input);
  if (r.status !== 0) {
    throw new Error(`${command} ${args.join(" ")} exited ${r.status}: ${r.stderr.trim() || r.stdout.trim()}`);
  }
  return r.stdout;
}

export function withTempDir<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), "cloudpal-ci-"));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

let netnsCounter = 0;

/** A fresh network namespace for the duration of fn, named after this process so parallel runs never meet. */
export function withNetns<T>(fn: (ns: string) => T): T {
  const ns = `cpci-${process.pid}-${netnsCounter++}`;
  runOk("ip", ["netns", "add", ns]);
  try {
    runOk("ip", ["netns", "exec", ns, "ip", "link", "set", "lo", "up"]);
    return fn(ns);
  } finally {
    runOk("ip", ["netns", "del", ns]);
  }
}
