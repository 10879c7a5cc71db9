/**
 * The agent writes key material only where the hub says it belongs: with the state volume's mount unit
 * present, the state directory must be a mount point, or `apply` and `reconcile` write nothing at all.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import * as path from "path";
import { runCli } from "../agent/src/commands";
import { defaultOptions, pathsUnder, type AgentOptions } from "../agent/src/options";
import type { AgentContext } from "../agent/src/reconcile";
import { assertSecretStorage, mountPoints } from "../agent/src/secret-storage";
import { FakeHub } from "../agent/test-support/fake-hub";
import { testState } from "../agent/test-support/state-fixtures";
import { LAYOUT } from "../model/layout";

let root: string;

beforeEach(() => {
  root = mkdtempSync(path.join(tmpdir(), "cloudpal-storage-"));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

/** Options under `root`, with a mountinfo fixture that lists `mounted` (and the root filesystem). */
function optionsWith(mounted: string[], unit: boolean): AgentOptions {
  const sysctl = path.join(root, "proc-sys");
  for (const rel of ["net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"]) {
    mkdirSync(path.dirname(path.join(sysctl, rel)), { recursive: true });
    writeFileSync(path.join(sysctl, rel), "0\n");
  }
  const mountInfo = path.join(root, "mountinfo");
  const lines = ["22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw"];
  mounted.forEach((dir, i) =>
    lines.push(`${30 + i} 22 8:${i} / ${dir} rw,nosuid,nodev,noexec shared:9 - ext4 /dev/sda rw`),
  );
  writeFileSync(mountInfo, lines.join("\n") + "\n");
  const paths = { ...pathsUnder(root, sysctl), mountInfo };
  if (unit) {
    mkdirSync(path.dirname(paths.stateMountUnit), { recursive: true });
    writeFileSync(paths.stateMountUnit, "[Mount]\n");
  }
  return defaultOptions(paths);
}

async function agent(options: AgentOptions, args: string[], stdin = "") {
  let out = "";
  let err = "";
  const hub = new FakeHub({ zones: options.paths.unboundZones, blocklist: options.paths.unboundBlocklist });
  const ctx: AgentContext = { options, runner: hub, log: () => undefined };
  const code = await runCli(args, ctx, {
    stdin: async () => stdin,
    stdout: (t) => (out += t),
    stderr: (t) => (err += t),
  });
  return { code, out, err, hub };
}

describe("mountPoints", () => {
  it("reads the fifth field of each mountinfo line and undoes the kernel's octal escapes", () => {
    const text = [
      "22 1 254:1 / / rw - ext4 /dev/vda1 rw",
      "40 22 8:0 / /var/lib/cloud\\040pal rw - ext4 /dev/sda rw",
      "41 22 8:1 / /mnt/a\\134b rw - ext4 /dev/sdb rw",
      "",
    ].join("\n");
    expect([...mountPoints(text)]).toEqual(["/", "/var/lib/cloud pal", "/mnt/a\\b"]);
  });
});

describe("keys only on the state volume", () => {
  it("refuses apply when the mount unit exists but the state directory is not mounted, writing nothing", async () => {
    const options = optionsWith([], true);
    const r = await agent(options, ["apply"], JSON.stringify(testState()));
    expect(r.code).toBe(1);
    expect(r.err).toBe(
      `'${options.paths.stateDir}' is not mounted, and this hub keeps its keys only on the provider's encrypted volume: ` +
        `nothing was written; attach the volume labelled '${LAYOUT.stateVolume.label}', run ` +
        `'systemctl start ${LAYOUT.stateVolume.mountUnit}', then apply again.\n`,
    );
    expect(r.err.split("\n").filter(Boolean)).toHaveLength(1);
    expect(existsSync(options.paths.stateFile)).toBe(false);
    expect(existsSync(options.paths.wireguardConfig)).toBe(false);
    expect(r.hub.wg.peers).toEqual([]);
  });

  it("refuses the boot-time reconcile too, before the WireGuard config (which holds the keys) is written", async () => {
    const mounted = optionsWith([], false);
    const stateDir = mounted.paths.stateDir;
    expect((await agent(optionsWith([stateDir], true), ["apply"], JSON.stringify(testState()))).code).toBe(0);
    rmSync(mounted.paths.wireguardConfig);
    // Same hub after a reboot where the volume did not come back: the unit is there, the mount is not.
    const r = await agent(optionsWith([], true), ["reconcile"]);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`'${stateDir}' is not mounted`);
    expect(existsSync(mounted.paths.wireguardConfig)).toBe(false);
  });

  it("applies normally once the state directory is a mount point", async () => {
    const options = optionsWith([], true);
    const ready = optionsWith([options.paths.stateDir], true);
    const r = await agent(ready, ["apply"], JSON.stringify(testState()));
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(existsSync(ready.paths.stateFile)).toBe(true);
    expect(path.dirname(ready.paths.wireguardConfig)).toBe(ready.paths.stateDir);
  });

  it("does not check hubs without the mount unit (Linode's encrypted disk, an existing server)", async () => {
    const options = optionsWith([], false);
    expect(() => assertSecretStorage(options.paths)).not.toThrow();
    const r = await agent(options, ["apply"], JSON.stringify(testState()));
    expect(r.code).toBe(0);
    expect(readdirSync(options.paths.stateDir)).toContain("state.json");
  });

  it("keeps every file that holds a key in the state directory", () => {
    for (const file of [LAYOUT.stateFile, LAYOUT.wireguardConfig])
      expect(path.dirname(file)).toBe(LAYOUT.stateDir);
  });
});
