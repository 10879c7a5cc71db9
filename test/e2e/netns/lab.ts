/**
 * A small network lab for the agent's end-to-end test: namespaces, veth links, long-running daemons
 * (wireguard-go, unbound, a fixture HTTP server) — all created by this run, named with its PID, and torn down
 * by PID and by name. Short commands go through the agent's real runner; only daemons that must outlive a
 * command are spawned here.
 */
// eslint-disable-next-line no-restricted-imports -- daemons (wireguard-go, unbound) must be spawned and kept by PID; short commands use the agent's runner.
import { spawn, type ChildProcess } from "child_process";
import { existsSync } from "fs";
import { realRunner, type RunOptions, type RunResult } from "../../../lib/runner";

export class Lab {
  readonly tag = String(process.pid);
  readonly log: string[] = [];
  private readonly runner = realRunner((line) => this.log.push(line));
  private readonly namespaces: string[] = [];
  private readonly daemons: { name: string; child: ChildProcess; output: string[] }[] = [];

  run(command: string, args: readonly string[], options?: RunOptions): Promise<RunResult> {
    return this.runner.run(command, args, options);
  }

  /** Run a command inside a namespace. */
  exec(ns: string, command: string, args: readonly string[], options?: RunOptions): Promise<RunResult> {
    return this.run("ip", ["netns", "exec", ns, command, ...args], options);
  }

  async namespace(role: string): Promise<string> {
    const name = `cp-${role}-${this.tag}`;
    await this.run("ip", ["netns", "add", name]);
    this.namespaces.push(name);
    await this.exec(name, "ip", ["link", "set", "lo", "up"]);
    return name;
  }

  /** A veth pair between two namespaces with one address on each end. */
  async link(
    a: { ns: string; ifname: string; cidr: string },
    b: { ns: string; ifname: string; cidr: string },
  ): Promise<void> {
    await this.run("ip", [
      "link",
      "add",
      a.ifname,
      "netns",
      a.ns,
      "type",
      "veth",
      "peer",
      "name",
      b.ifname,
      "netns",
      b.ns,
    ]);
    for (const end of [a, b]) {
      await this.exec(end.ns, "ip", ["addr", "add", end.cidr, "dev", end.ifname]);
      await this.exec(end.ns, "ip", ["link", "set", end.ifname, "up"]);
    }
  }

  /** A bridge (an L2 switch: a LAN, or the lab's internet) in a namespace, up, without an address. */
  async bridge(ns: string, name: string): Promise<void> {
    await this.exec(ns, "ip", ["link", "add", name, "type", "bridge"]);
    await this.exec(ns, "ip", ["link", "set", name, "up"]);
  }

  /** A veth pair from a bridge in `bridgeNs` to `b` (which gets the address). */
  async plug(
    bridgeNs: string,
    bridge: string,
    portName: string,
    b: { ns: string; ifname: string; cidr: string },
  ): Promise<void> {
    await this.run("ip", [
      "link",
      "add",
      portName,
      "netns",
      bridgeNs,
      "type",
      "veth",
      "peer",
      "name",
      b.ifname,
      "netns",
      b.ns,
    ]);
    await this.exec(bridgeNs, "ip", ["link", "set", portName, "master", bridge]);
    await this.exec(bridgeNs, "ip", ["link", "set", portName, "up"]);
    await this.exec(b.ns, "ip", ["addr", "add", b.cidr, "dev", b.ifname]);
    await this.exec(b.ns, "ip", ["link", "set", b.ifname, "up"]);
  }

  /**
   * A NAT router namespace: forwards, and masquerades what leaves by `wanIf` (`random`: a new public port for
   * every new flow, i.e. per destination, as a "symmetric" NAT does). Unsolicited packets to the router itself
   * are dropped in the input hook, as a home router's firewall does; dropped before conntrack confirms them,
   * they leave no entry behind (a kept entry would clash with the router's own later mapping to that peer and
   * make it pick another port).
   */
  async natRouter(ns: string, wanIf: string, random = false): Promise<void> {
    await this.exec(ns, "sysctl", ["-qw", "net.ipv4.ip_forward=1"]);
    await this.exec(ns, "nft", ["-f", "-"], {
      input: `table ip lab_nat {\n  chain post {\n    type nat hook postrouting priority srcnat; policy accept;\n    oifname "${wanIf}" masquerade${random ? " random" : ""}\n  }\n  chain in {\n    type filter hook input priority filter; policy accept;\n    iifname "${wanIf}" ct state new drop\n  }\n}\n`,
    });
  }

  /** Start a daemon in a namespace; it is killed (by PID) in cleanup. */
  daemon(
    name: string,
    ns: string,
    command: string,
    args: readonly string[],
    env: NodeJS.ProcessEnv = {},
  ): ChildProcess {
    // `ip netns exec` execs the command, so the PID is the daemon's own.
    const child = spawn("ip", ["netns", "exec", ns, command, ...args], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const output: string[] = [];
    child.stdout?.on("data", (d: Buffer) => output.push(d.toString()));
    child.stderr?.on("data", (d: Buffer) => output.push(d.toString()));
    this.daemons.push({ name, child, output });
    this.log.push(`[#] (daemon ${name}, pid ${child.pid}) ip netns exec ${ns} ${command} ${args.join(" ")}`);
    return child;
  }

  daemonOutput(name: string): string {
    return this.daemons.find((d) => d.name === name)?.output.join("") ?? "";
  }

  daemonNames(): string[] {
    return this.daemons.map((d) => d.name);
  }

  async stopDaemon(name: string): Promise<void> {
    const d = this.daemons.find((x) => x.name === name);
    if (d) await stop(d.child);
  }

  /** Start wireguard-go in the foreground (so its PID is known) and wait for its control socket. */
  async wireguard(ns: string, ifname: string): Promise<void> {
    this.daemon(`wireguard-go ${ifname}`, ns, "wireguard-go", [ifname], { WG_PROCESS_FOREGROUND: "1" });
    await waitFor(
      async () => existsSync(`/var/run/wireguard/${ifname}.sock`),
      5000,
      `wireguard-go ${ifname} socket`,
    );
  }

  async cleanup(): Promise<void> {
    for (const d of [...this.daemons].reverse()) await stop(d.child);
    for (const ns of [...this.namespaces].reverse()) {
      await this.run("ip", ["netns", "del", ns], { allowFailure: true });
    }
  }
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
  await exited;
  clearTimeout(timer);
}

export async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
