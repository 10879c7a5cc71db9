/**
 * The real program (index.ts) run from stack files under mocks, as `npm run plan` runs it: every example
 * stack is valid and plans, and an invalid stack fails with every problem listed and registers nothing.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import * as path from "path";
import type * as pulumiType from "@pulumi/pulumi";
import { type MockRecorder, settle } from "./helpers/pulumi-mocks";
import { readStackFile } from "../scripts/plan";

// Registering a resource under mocks costs tens of milliseconds (more on a busy machine); a hub is dozens.
jest.setTimeout(60_000);

const EXAMPLES = readdirSync(path.join(__dirname, "..", "stacks"))
  .map((f) => /^Pulumi\.(example-.+)\.yaml$/.exec(f)?.[1])
  .filter((s): s is string => s !== undefined);

interface Loaded {
  recorder: MockRecorder;
  program?: Record<string, unknown>;
  error?: Error;
  pulumi: typeof pulumiType;
}

/** A fresh module registry per run: the program reads its config at import time. */
function loadProgram(config: Record<string, string>, secretKeys: string[]): Loaded {
  let loaded: Loaded | undefined;
  jest.isolateModules(() => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- must be the registry's own copy
    const p = require("@pulumi/pulumi") as typeof pulumiType;
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { installMocks } = require("./helpers/pulumi-mocks") as typeof import("./helpers/pulumi-mocks");
    const recorder = installMocks(p, { stack: "test" });
    p.runtime.setAllConfig(config, secretKeys);
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      loaded = { recorder, pulumi: p, program: require("../index") as Record<string, unknown> };
    } catch (e) {
      loaded = { recorder, pulumi: p, error: e as Error };
    }
  });
  if (!loaded) throw new Error("isolateModules did not run");
  return loaded;
}

function outputValue<T>(o: unknown): Promise<T> {
  return new Promise((resolve) => (o as pulumiType.Output<T>).apply((v) => resolve(v)));
}

it("has an example stack for each provider", () => {
  expect(EXAMPLES.sort()).toEqual([
    "example-digitalocean",
    "example-existing",
    "example-linode",
    "example-vultr",
  ]);
});

describe.each(EXAMPLES)("stack %s", (stack) => {
  it("plans the hub with the real agent bundle and exports its outputs", async () => {
    const { config, secretKeys } = readStackFile(stack);
    const { program, error, recorder } = loadProgram(config, secretKeys);
    expect(error).toBeUndefined();
    const endpoint = await outputValue<string>(program?.endpoint);
    expect(endpoint).toMatch(/:51820$/);
    const configs = await outputValue<Record<string, string>>(program?.clientConfigs);
    expect(Object.keys(configs).sort()).toEqual(["laptop", "nas", "phone"]);
    expect(program?.provider).toBe(stack.replace("example-", ""));
    // Pulumi keeps its runtime state in a process global: let this program finish registering before the
    // next one installs its mocks.
    await settle(recorder);
    await new Promise((r) => setTimeout(r, 200));
  }, 60000);
});

it("an invalid stack registers nothing and lists every problem, one line each", async () => {
  const { config, secretKeys } = readStackFile("example-digitalocean");
  config["cloudpal:region"] = "mars1";
  config["cloudpal:wireguardPort"] = "70000";
  config["cloudpal:peers"] = JSON.stringify([{ name: "laptop", publicKey: "abc" }]);
  const { recorder, error, pulumi } = loadProgram(config, secretKeys);
  expect(pulumi.RunError.isInstance(error)).toBe(true);
  const lines = (error?.message ?? "").split("\n");
  expect(lines[0]).toBe("The cloudpal stack config has 3 problems:");
  expect(lines.slice(1)).toEqual([
    expect.stringContaining(`'region' ("mars1") is not a DigitalOcean region`),
    `  - 'wireguardPort' (70000) is not a port: use a number from 1 to 65535 (default 51820).`,
    `  - 'peers[0].publicKey' ("abc") is not a WireGuard public key: expected 44 base64 characters ending in '='. Generate one with 'wg genkey | wg pubkey'.`,
  ]);
  await new Promise((r) => setTimeout(r, 50));
  expect(recorder.registered).toEqual([]);
});

it("a stack without the SSH private key fails before registering anything, with the other problems", async () => {
  const { config } = readStackFile("example-linode");
  delete config["cloudpal:sshPrivateKey"];
  config["cloudpal:firewallMode"] = "open";
  const { recorder, error } = loadProgram(config, []);
  expect(error?.message.split("\n")).toEqual([
    "The cloudpal stack config has 2 problems:",
    `  - 'firewallMode' ("open") is not a firewall mode: use "vpn" or "mesh-only".`,
    "  - 'sshPrivateKey' is missing: delivery logs in over SSH with it; set it with 'pulumi config set --secret cloudpal:sshPrivateKey < ~/.ssh/id_ed25519'.",
  ]);
  await new Promise((r) => setTimeout(r, 50));
  expect(recorder.registered).toEqual([]);
});

it("a stack file holding the SSH private key in plain text is refused by the plan, as by pulumi up", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "cloudpal-stack-"));
  try {
    const text = readFileSync(path.join(__dirname, "..", "stacks", "Pulumi.example-linode.yaml"), "utf8");
    writeFileSync(
      path.join(dir, "Pulumi.plain.yaml"),
      `${text.trimEnd()}\n  cloudpal:sshPrivateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\\nabc\\n-----END OPENSSH PRIVATE KEY-----\\n"\n`,
    );
    const { config, secretKeys } = readStackFile("plain", dir);
    expect(secretKeys).toEqual([]);
    const { recorder, error } = loadProgram(config, secretKeys);
    expect(error?.message).toContain(
      "'cloudpal:sshPrivateKey' (not shown) is in the stack file as plain text",
    );
    expect(error?.message).not.toContain("abc");
    await new Promise((r) => setTimeout(r, 50));
    expect(recorder.registered).toEqual([]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
