/**
 * A hub in a network namespace for the agent benchmarks: wireguard-go, unbound (with a control socket), the
 * real agent bundle, and optionally an "internet" namespace with an authoritative server for lab.example.
 * The same hub set-up as the end-to-end test (test/e2e/netns/hub.ts), on its Lab, so cleanup is by PID and name.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import * as path from "path";
import { buildAgentBundle } from "../components/agent-bundle";
import type { HubState } from "../model/state";
import { agentEnv, startInternet, writeHubUnboundConfig } from "../test/e2e/netns/hub";
import { Lab, waitFor } from "../test/e2e/netns/lab";

export { INTERNET, INTERNET_HUB, LAB_UPSTREAM } from "../test/e2e/netns/hub";

export class HubLab {
  readonly lab = new Lab();
  readonly dir = mkdtempSync(path.join(tmpdir(), `cloudpal-bench-${process.pid}-`));
  readonly bundle = path.join(this.dir, "cloudpal-agent.js");
  readonly hubIf = `wgb${this.lab.tag}`;
  hubNs = "";
  internetNs = "";
  private readonly unboundDir = path.join(this.dir, "unbound-hub");

  async start(options: { internet: boolean }): Promise<void> {
    writeFileSync(this.bundle, buildAgentBundle().code);
    this.hubNs = await this.lab.namespace("bhub");
    await this.lab.wireguard(this.hubNs, this.hubIf);
    writeHubUnboundConfig(this.dir);
    if (options.internet) {
      this.internetNs = await startInternet(this.lab, this.hubNs, this.dir, {
        "www.lab.example": "198.51.100.80",
      });
    }
  }

  env(): string[] {
    return agentEnv(this.dir, this.hubIf);
  }

  /** Runs the agent under GNU time: wall seconds and the agent's peak RSS. */
  async agent(
    args: string[],
    input?: string,
    extraEnv: readonly string[] = [],
  ): Promise<{ seconds: number; cpuSeconds: number; rssKiB: number; stdout: string; stderr: string }> {
    const started = process.hrtime.bigint();
    const r = await this.lab.exec(
      this.hubNs,
      "env",
      [
        ...this.env(),
        ...extraEnv,
        "/usr/bin/time",
        "-f",
        "@@rss=%M cpu=%U+%S",
        process.execPath,
        this.bundle,
        ...args,
      ],
      {
        input,
        allowFailure: true,
        timeoutMs: 900_000,
      },
    );
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const rss = /@@rss=(\d+) cpu=([\d.]+)\+([\d.]+)/.exec(r.stderr);
    if (r.code !== 0) throw new Error(`agent ${args.join(" ")} failed: ${r.stderr.slice(-2000)}`);
    // CPU seconds (user + system) of the agent process: steadier than wall time on a shared machine.
    const cpuSeconds = Number(rss?.[2] ?? 0) + Number(rss?.[3] ?? 0);
    return { seconds, cpuSeconds, rssKiB: Number(rss?.[1] ?? 0), stdout: r.stdout, stderr: r.stderr };
  }

  apply(state: HubState) {
    return this.agent(["apply"], JSON.stringify(state));
  }

  /** Start the hub's unbound (as systemd would) and wait until it answers its control socket. */
  async startUnbound(): Promise<number> {
    const started = Date.now();
    this.lab.daemon(`hub-dns-${started}`, this.hubNs, "unbound", [
      "-d",
      "-c",
      path.join(this.unboundDir, "unbound.conf"),
    ]);
    await waitFor(
      async () =>
        (
          await this.lab.exec(
            this.hubNs,
            "unbound-control",
            ["-c", path.join(this.unboundDir, "unbound.conf"), "status"],
            { allowFailure: true },
          )
        ).code === 0,
      600_000,
      "hub unbound",
    );
    return Date.now() - started;
  }

  /** Until unbound answers its control socket again (after a reload it is busy re-reading its zones). */
  async waitUnbound(): Promise<void> {
    const conf = path.join(this.unboundDir, "unbound.conf");
    await waitFor(
      async () =>
        (await this.lab.exec(this.hubNs, "unbound-control", ["-c", conf, "status"], { allowFailure: true }))
          .code === 0,
      600_000,
      "hub unbound",
    );
  }

  async stopUnbound(): Promise<void> {
    for (const name of this.lab.daemonNames().filter((n) => n.startsWith("hub-dns-")))
      await this.lab.stopDaemon(name);
  }

  unboundPid(): number {
    return Number(readFileSync(path.join(this.unboundDir, "unbound.pid"), "utf8").trim());
  }

  unboundControl(args: string[]) {
    return this.lab.exec(this.hubNs, "unbound-control", [
      "-c",
      path.join(this.unboundDir, "unbound.conf"),
      ...args,
    ]);
  }

  async cleanup(): Promise<void> {
    try {
      await this.lab.cleanup();
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}

/** Resident memory of a process in KiB (VmRSS), read from /proc. */
export function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1] ?? 0);
}

export function mib(kib: number): string {
  return `${(kib / 1024).toFixed(1)} MiB`;
}
