/**
 * Where the provider's volume holds the hub's keys (DigitalOcean, Vultr): the bootstrap writes and enables its
 * mount unit, the agent's units wait for it, and the delivery mounts it before the state is sent. Elsewhere
 * (Linode, existing) none of that appears, and their user-data is unchanged.
 */
import { writeFileSync } from "fs";
import { join } from "path";
import { deliverySteps } from "../components/delivery";
import { renderBootstrapScript, renderUserData } from "../cloud-init/render";
import { agentUnits, stateMountUnit } from "../cloud-init/units";
import { LAYOUT } from "../model/layout";
import { fileContent, parseUserData, run, spec, withTempDir } from "./cloud-init-helpers";

const UNIT_PATH = `/etc/systemd/system/${LAYOUT.stateVolume.mountUnit}`;
const ENABLE = `systemctl enable ${LAYOUT.stateVolume.mountUnit}`;

function runcmdLines(userData: string): string[] {
  return parseUserData(userData)
    .runcmd.filter((c): c is readonly string[] => Array.isArray(c))
    .map((c) => c.join(" "));
}

describe("the state volume's mount in the bootstrap", () => {
  it("writes the mount unit by label, nofail, and enables it after daemon-reload when the state is on a volume", () => {
    const config = parseUserData(renderUserData(spec({ stateOnVolume: true })));
    const unit = fileContent(config, UNIT_PATH);
    expect(unit).toContain(`What=/dev/disk/by-label/${LAYOUT.stateVolume.label}`);
    expect(unit).toContain(`Where=${LAYOUT.stateDir}`);
    expect(unit).toContain("Type=ext4");
    expect(unit).toMatch(/^Options=.*\bnofail\b/m);
    const lines = runcmdLines(renderUserData(spec({ stateOnVolume: true })));
    expect(lines.indexOf(ENABLE)).toBeGreaterThan(lines.indexOf("systemctl daemon-reload"));
    // Only enabled: the delivery formats and mounts it (a Vultr volume may not be attached yet at first boot).
    expect(lines.filter((l) => l.includes(LAYOUT.stateVolume.mountUnit))).toEqual([ENABLE]);
  });

  it("leaves the user-data without any of it when the state stays on the root disk", () => {
    const plain = renderUserData(spec());
    expect(renderUserData(spec({ stateOnVolume: false }))).toBe(plain);
    expect(plain).not.toContain(LAYOUT.stateVolume.mountUnit);
    expect(renderBootstrapScript(spec())).not.toContain(LAYOUT.stateVolume.mountUnit);
  });

  it("makes both agent units require the state directory's mounts", () => {
    for (const unit of agentUnits().filter((u) => u.path.endsWith(".service")))
      expect(unit.content).toContain(`RequiresMountsFor=${LAYOUT.stateDir}`);
  });

  it("names the unit after its mount point, as systemd requires (systemd-escape --path)", () => {
    const r = run("systemd-escape", ["--path", "--suffix=mount", LAYOUT.stateDir]);
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(LAYOUT.stateVolume.mountUnit);
  });

  it("is a unit systemd-analyze accepts", () => {
    withTempDir((dir) => {
      const file = join(dir, LAYOUT.stateVolume.mountUnit);
      writeFileSync(file, stateMountUnit().content);
      const r = run("systemd-analyze", ["verify", "--man=no", file]);
      expect(`${r.stdout}${r.stderr}`).not.toMatch(/Unknown (key|section)|Failed to parse|Invalid/i);
    });
  });

  it("passes Debian's real `cloud-init schema`", () => {
    withTempDir((dir) => {
      const file = join(dir, "user-data");
      writeFileSync(file, renderUserData(spec({ stateOnVolume: true })));
      const r = run("cloud-init", ["schema", "--config-file", file]);
      expect(`${r.stdout}${r.stderr}`).toContain("Valid cloud-config");
      expect(r.status).toBe(0);
    });
  });
});

describe("the delivery's storage step", () => {
  const options = { bootstrapOverSsh: false, cloudInitTimeoutSeconds: 600 };

  it("mounts the volume after the agent is installed and before the state (the keys) is sent", () => {
    expect(deliverySteps({ ...options, stateOnVolume: true }).map((s) => s.name)).toEqual([
      "wait-cloud-init",
      "agent-bundle",
      "storage",
      "state",
    ]);
    expect(deliverySteps(options).map((s) => s.name)).not.toContain("storage");
  });

  it("is valid sh, takes no stdin, and formats only a disk with no signature, by label", () => {
    const step = deliverySteps({ ...options, stateOnVolume: true }).find((s) => s.name === "storage")!;
    expect(step.stdin).toBeUndefined();
    const r = run("sh", ["-n", "-c", step.command]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(step.command).toContain(`mkfs.ext4 -q -L '\\''${LAYOUT.stateVolume.label}'\\''`);
    expect(step.command).toContain('blkid -p "$d"');
    expect(step.command).toContain('[ "$rc" -eq 2 ] || continue');
  });
});
