/**
 * cloud-init's own timing of a boot, read from inside the VM: the per-stage start/finish times in
 * /run/cloud-init/status.json and the per-module durations of `cloud-init analyze blame`. The VM test prints
 * them and bench/boot.ts reports them; on TCG only their proportions mean anything.
 */
import type { Ssh } from "./ssh";

export interface StageTiming {
  readonly stage: string;
  readonly seconds: number;
}

export interface ModuleTiming {
  /** e.g. "modules-final/config-package-update-upgrade-install" */
  readonly module: string;
  readonly seconds: number;
}

export interface CloudInitTimings {
  readonly stages: readonly StageTiming[];
  readonly modules: readonly ModuleTiming[];
  /** `systemd-analyze` summary line: kernel and userspace time to reach the default target. */
  readonly systemd: string;
}

interface StatusJson {
  v1: Record<string, { start?: number | null; finished?: number | null } | unknown>;
}

/** Parses the `v1` stage records of /run/cloud-init/status.json (epoch seconds). */
export function parseStatusJson(text: string): StageTiming[] {
  const status = JSON.parse(text) as StatusJson;
  const out: StageTiming[] = [];
  for (const stage of ["init-local", "init", "modules-config", "modules-final"]) {
    const s = status.v1[stage] as { start?: number | null; finished?: number | null } | undefined;
    if (s && typeof s.start === "number" && typeof s.finished === "number") {
      out.push({ stage, seconds: s.finished - s.start });
    }
  }
  return out;
}

/** Parses `cloud-init analyze blame` lines such as "     51.20300s (modules-final/config-scripts-user)". */
export function parseBlame(text: string): ModuleTiming[] {
  const out: ModuleTiming[] = [];
  for (const line of text.split("\n")) {
    const m = /^\s*([\d.]+)s \(([^)]+)\)/.exec(line);
    if (m) out.push({ module: m[2], seconds: Number(m[1]) });
  }
  return out;
}

export async function readCloudInitTimings(ssh: Ssh): Promise<CloudInitTimings> {
  const status = await ssh.exec("sudo cat /run/cloud-init/status.json", { quiet: true });
  // Only the first boot record: later records belong to reboots, where cloud-init has little to do.
  const blame = await ssh.exec("sudo cloud-init analyze blame -i /var/log/cloud-init.log", { quiet: true });
  const firstRecord = blame.stdout.split(/-- Boot Record \d+ --/)[1] ?? blame.stdout;
  const systemd = await ssh.exec("systemd-analyze", { quiet: true, allowFailure: true });
  return {
    stages: parseStatusJson(status.stdout),
    modules: parseBlame(firstRecord),
    systemd: systemd.stdout.split("\n")[0] ?? "",
  };
}

/** The module that installs the hub's packages, and the one that runs the bootstrap commands (runcmd). */
export const PACKAGE_MODULE = "package_update_upgrade_install";
export const RUNCMD_MODULE = "scripts_user";

/** Seconds spent in one module, 0 if it did not run. cloud-init 22.4 spells module names with dashes here. */
export function moduleSeconds(t: CloudInitTimings, name: string): number {
  const dashed = (x: string) => x.replace(/_/g, "-");
  return t.modules
    .filter((m) => dashed(m.module).endsWith(dashed(name)))
    .reduce((sum, m) => sum + m.seconds, 0);
}

export function formatTimings(t: CloudInitTimings, top = 8): string {
  const lines = [`systemd: ${t.systemd}`, "cloud-init stages:"];
  for (const s of t.stages) lines.push(`  ${s.stage.padEnd(16)} ${s.seconds.toFixed(1).padStart(7)} s`);
  lines.push(`cloud-init modules (top ${top}):`);
  for (const m of [...t.modules].sort((a, b) => b.seconds - a.seconds).slice(0, top)) {
    lines.push(`  ${m.seconds.toFixed(1).padStart(7)} s  ${m.module}`);
  }
  return lines.join("\n");
}
