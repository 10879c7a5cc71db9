/**
 * The delivery steps: their order, their payloads, that no command can carry a secret, and the cloud-init
 * wait's behaviour, run for real by /bin/sh against a stand-in `cloud-init` on PATH (the VM test runs the
 * same commands against the real one).
 */
import { spawnSync } from "child_process"; // eslint-disable-line no-restricted-imports -- runs the step's sh command under test.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import { join } from "path";
import {
  AGENT_UPLOAD_PATH,
  COMMAND_OPTIONS,
  DIAL,
  deliverySteps,
  type RemoteStep,
} from "../components/delivery";
import { LAYOUT } from "../model/layout";

const cloud = { bootstrapOverSsh: false, cloudInitTimeoutSeconds: 600 };
const existing = { bootstrapOverSsh: true, cloudInitTimeoutSeconds: 600 };

function step(steps: RemoteStep[], name: string): RemoteStep {
  const s = steps.find((x) => x.name === name);
  if (!s) throw new Error(`no step ${name} in ${steps.map((x) => x.name).join(", ")}`);
  return s;
}

describe("deliverySteps", () => {
  it("waits for cloud-init, installs the agent, then applies the state on a cloud VM", () => {
    const steps = deliverySteps(cloud);
    expect(steps.map((s) => [s.name, s.stdin ?? s.upload?.payload])).toEqual([
      ["wait-cloud-init", undefined],
      ["agent-bundle", "agentBundle"],
      ["state", "state"],
    ]);
  });

  it("runs the bootstrap after the cloud-init wait and before the agent on an existing server", () => {
    const steps = deliverySteps(existing);
    expect(steps.map((s) => [s.name, s.stdin ?? s.upload?.payload])).toEqual([
      ["wait-cloud-init", undefined],
      ["bootstrap", "bootstrapScript"],
      ["agent-bundle", "agentBundle"],
      ["state", "state"],
    ]);
  });

  it("re-runs the state step when the agent changes, not only when the state does", () => {
    expect(step(deliverySteps(cloud), "state").triggers).toEqual(["agentBundle"]);
  });

  it("uses kebab-case names that are unique (they become Pulumi resource names)", () => {
    const names = deliverySteps(existing).map((s) => s.name);
    expect(new Set(names).size).toBe(names.length);
    for (const n of names) expect(n).toMatch(/^[a-z]+(-[a-z]+)*$/);
  });

  it("puts the timeout into the wait command and nothing else varies with the options", () => {
    const a = deliverySteps({ bootstrapOverSsh: false, cloudInitTimeoutSeconds: 123 });
    expect(step(a, "wait-cloud-init").command).toContain("timeout 123 cloud-init status --wait");
    const b = deliverySteps({ bootstrapOverSsh: false, cloudInitTimeoutSeconds: 456 });
    expect(a.slice(1)).toEqual(b.slice(1));
  });

  it("never puts a payload into a command: commands are fixed strings whatever the state holds", () => {
    // Commands are built from constants only; a WireGuard key or a token can only reach the host on stdin.
    for (const options of [cloud, existing]) {
      for (const s of deliverySteps(options)) {
        expect(s.command).not.toMatch(/[A-Za-z0-9+/]{42,}[AEIMQUYcgkosw048]=/);
        expect(s.command).not.toMatch(/PRIVATE KEY|PrivateKey|privateKey/);
      }
    }
    expect(step(deliverySteps(cloud), "state").command).toBe(
      `sudo '${LAYOUT.agentBin}' apply && sudo systemctl start '${LAYOUT.tcpRelay.unit}' '${LAYOUT.units.dnsFilter}'`,
    );
  });

  it("uploads the agent bundle as a file to the operator's home, never on stdin, and installs that file", () => {
    const s = step(deliverySteps(cloud), "agent-bundle");
    expect(s.stdin).toBeUndefined();
    expect(s.upload).toEqual({ payload: "agentBundle", remotePath: AGENT_UPLOAD_PATH });
    // Relative: the SFTP server resolves it against the login user's home, where "$HOME/" points the install.
    expect(AGENT_UPLOAD_PATH).not.toMatch(/^\//);
    expect(s.command.endsWith(` cloudpal-install "$HOME/"'${AGENT_UPLOAD_PATH}'`)).toBe(true);
    expect(s.command).toContain(`cat -- "$1" >"$tmp"`);
  });

  it("passes the upload's path to root's shell as $1, expanded from the operator's $HOME by /bin/sh", () => {
    const s = step(deliverySteps(cloud), "agent-bundle");
    const bin = mkdtempSync(join(tmpdir(), `cloudpal-sudo-${process.pid}-`));
    try {
      // A stand-in sudo that reports the argument vector it was given instead of running it.
      writeFileSync(join(bin, "sudo"), '#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n');
      chmodSync(join(bin, "sudo"), 0o755);
      const r = spawnSync("/bin/sh", ["-c", s.command], {
        encoding: "utf8",
        env: { PATH: `${bin}:/usr/bin:/bin`, HOME: "/home/op" },
      });
      const args = r.stdout.split("\n");
      expect(args.slice(0, 2)).toEqual(["sh", "-c"]);
      expect(args.slice(3, 5)).toEqual(["cloudpal-install", `/home/op/${AGENT_UPLOAD_PATH}`]);
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });

  it("sets logging off and no previous output in the environment, and bounded dialling", () => {
    expect(COMMAND_OPTIONS).toEqual({ logging: "none", addPreviousOutputInEnv: false });
    // Refused connections: attempts sleep 0.1·1.5^k s capped at 5 s (command.md §Dialling).
    const wait = (attempts: number) => {
      let total = 0;
      for (let k = 0; k < attempts - 1; k++) total += Math.min(5, 0.1 * 1.5 ** k);
      return total;
    };
    expect(wait(DIAL.firstBootDialErrorLimit + 1)).toBeGreaterThan(9 * 60);
    expect(wait(DIAL.firstBootDialErrorLimit + 1)).toBeLessThan(11 * 60);
    expect(wait(DIAL.dialErrorLimit + 1)).toBeLessThan(90);
    expect(DIAL.perDialTimeoutSeconds).toBeLessThanOrEqual(15);
  });

  it("installs the bundle through a temp file in the target directory, renamed into place", () => {
    const c = step(deliverySteps(cloud), "agent-bundle").command;
    const dir = LAYOUT.agentBundle.slice(0, LAYOUT.agentBundle.lastIndexOf("/"));
    expect(c).toContain(`mktemp --suffix=.js '\\''${dir}/.cloudpal-agent.XXXXXX'\\''`);
    expect(c.indexOf("chmod 0755")).toBeLessThan(c.indexOf("mv -f"));
    expect(c.indexOf("node --check")).toBeLessThan(c.indexOf("mv -f"));
    expect(c).toContain(`mv -f "$tmp" '\\''${LAYOUT.agentBundle}'\\''`);
  });
});

describe("the wait-cloud-init command, run by /bin/sh", () => {
  let bin: string;
  beforeEach(() => {
    bin = mkdtempSync(join(tmpdir(), `cloudpal-delivery-${process.pid}-`));
    // `sudo` here only runs its arguments: the step calls it for root-only logs, not for behaviour.
    writeFileSync(join(bin, "sudo"), '#!/bin/sh\nexec "$@"\n');
    chmodSync(join(bin, "sudo"), 0o755);
  });
  afterEach(() => rmSync(bin, { recursive: true, force: true }));

  /** A stand-in cloud-init whose `status --wait` exits with `rc` after `sleep` seconds. */
  function fakeCloudInit(rc: number, sleepSeconds = 0): void {
    writeFileSync(
      join(bin, "cloud-init"),
      `#!/bin/sh
case "$*" in
  "status --wait") sleep ${sleepSeconds}; exit ${rc} ;;
  "status --long") echo "status: error"; echo "errors: module package_update_upgrade_install failed" ;;
esac
`,
    );
    chmodSync(join(bin, "cloud-init"), 0o755);
  }

  function runWait(timeoutSeconds = 600) {
    const command = step(
      deliverySteps({ bootstrapOverSsh: false, cloudInitTimeoutSeconds: timeoutSeconds }),
      "wait-cloud-init",
    ).command;
    // PATH keeps the system tools (timeout, tail) but finds the stand-ins first; no real cloud-init is reached.
    return spawnSync("/bin/sh", ["-c", command], {
      encoding: "utf8",
      env: { PATH: `${bin}:/usr/bin:/bin` },
      timeout: 60_000,
    });
  }

  it("succeeds when cloud-init is done", () => {
    fakeCloudInit(0);
    const r = runWait();
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("cloud-init: done");
  });

  it("fails with the long status and a sentence saying what to do when cloud-init reports an error", () => {
    fakeCloudInit(1);
    const r = runWait();
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("errors: module package_update_upgrade_install failed");
    expect(r.stderr).toContain("last 60 lines of /var/log/cloud-init-output.log");
    expect(r.stderr).toMatch(
      /cloud-init failed \(exit 1\): see the status and log tail above; fix the cause/,
    );
  });

  it("continues, with a warning, when cloud-init is done with recoverable errors (exit 2)", () => {
    fakeCloudInit(2);
    const r = runWait();
    expect(r.status).toBe(0);
    expect(r.stderr).toContain("recoverable errors");
  });

  it("gives up after the bound with a message that says what to do", () => {
    fakeCloudInit(0, 30);
    const started = Date.now();
    const r = runWait(10);
    expect(Date.now() - started).toBeLessThan(25_000);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/cloud-init did not finish within 10 s: .*run 'pulumi up' again/);
  }, 40_000);

  it("has nothing to wait for on a server without cloud-init", () => {
    const r = spawnSync(
      "/bin/sh",
      ["-c", step(deliverySteps(existing), "wait-cloud-init").command],
      // No cloud-init anywhere on this PATH (the host has one in /usr/bin).
      { encoding: "utf8", env: { PATH: bin } },
    );
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("cloud-init is not installed on this host");
  });
});
