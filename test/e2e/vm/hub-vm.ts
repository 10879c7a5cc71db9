/**
 * One hub VM as the tests and the benchmark use it: booted from the stack's user-data with forwards for SSH,
 * for WireGuard (bound to the device namespace's veth address) and for the ports the firewall must keep
 * closed, then brought to "hub ready" by the real delivery steps.
 */
import { join } from "path";
import type { RemoteStep } from "../../../components/delivery";
import { LAYOUT } from "../../../model/layout";
import { NAT64 } from "../../../model/nat64";
import { runStepsOverSsh, type Payloads, type StepTiming } from "./delivery-runner";
import { run } from "./exec";
import { Ssh } from "./ssh";
import { bootVm, freePort, type Forward, type VmImage, type Vm } from "./vm";

/** Guest ports probed from outside the tunnel; each gets its own loopback forward. */
export const PROBED_TCP_PORTS = [53, 80, 8953] as const;
export const PROBED_UDP_PORTS = [53] as const;
/** A port nothing in the image or the hub uses: the test starts a listener there to prove the firewall drops it. */
export const CONTROL_PORT = 8080;

export interface HubVmOptions {
  readonly image: VmImage;
  readonly dir: string;
  readonly name: string;
  readonly userData: string;
  readonly instanceId: string;
  readonly operatorUser: string;
  readonly identityFile: string;
  /** The SSH host key the program pins on every Command (connection.hostKey); ssh checks it strictly. */
  readonly hostKey?: string;
  readonly sshGuestPort: number;
  readonly wireguardGuestPort: number;
  /** Host end of the device namespace's veth pair. */
  readonly deviceHostAddress: string;
  /** Attach a state volume as DigitalOcean does (default true); an `existing` server has none. */
  readonly stateVolume?: boolean;
}

export interface HubVm {
  readonly vm: Vm;
  readonly ssh: Ssh;
  /** host:port the device dials: QEMU's UDP forward to the hub's WireGuard port. */
  readonly wireguardEndpoint: string;
  /** Loopback host ports forwarding to the given guest ports. */
  readonly tcpProbe: ReadonlyMap<number, number>;
  readonly udpProbe: ReadonlyMap<number, number>;
}

export async function bootHubVm(o: HubVmOptions): Promise<HubVm> {
  // Each probe socket closes before the next opens, so the kernel may hand out the same port twice (seen: two
  // forwards on one port, and QEMU refused to start): take a port only once.
  const taken = new Set<number>();
  const unique = async (pick: () => Promise<number>): Promise<number> => {
    for (;;) {
      const port = await pick();
      if (!taken.has(port)) {
        taken.add(port);
        return port;
      }
    }
  };
  const sshPort = await unique(() => freePort());
  const wgPort = await unique(() => freePort(o.deviceHostAddress, "udp"));
  const tcpProbe = new Map<number, number>();
  const udpProbe = new Map<number, number>();
  for (const p of [...PROBED_TCP_PORTS, CONTROL_PORT]) tcpProbe.set(p, await unique(() => freePort()));
  for (const p of PROBED_UDP_PORTS) udpProbe.set(p, await unique(() => freePort("127.0.0.1", "udp")));
  const forwards: Forward[] = [
    { proto: "tcp", hostAddress: "127.0.0.1", hostPort: sshPort, guestPort: o.sshGuestPort },
    { proto: "udp", hostAddress: o.deviceHostAddress, hostPort: wgPort, guestPort: o.wireguardGuestPort },
    ...[...tcpProbe].map(([guestPort, hostPort]): Forward => ({
      proto: "tcp",
      hostAddress: "127.0.0.1",
      hostPort,
      guestPort,
    })),
    ...[...udpProbe].map(([guestPort, hostPort]): Forward => ({
      proto: "udp",
      hostAddress: "127.0.0.1",
      hostPort,
      guestPort,
    })),
  ];
  // What DigitalOcean attaches with the droplet: a volume it formatted ext4 with our label
  // (components/hosts/digitalocean.ts). One per boot: a rebuild gets a fresh one, as it need not survive.
  const extraDisks: string[] = [];
  if (o.stateVolume !== false) {
    const stateDisk = join(o.dir, `${o.name}-state-volume.img`);
    await run("truncate", ["-s", "64M", stateDisk]);
    await run("mkfs.ext4", ["-q", "-F", "-L", LAYOUT.stateVolume.label, stateDisk]);
    extraDisks.push(stateDisk);
  }
  const vm = await bootVm({
    image: o.image,
    dir: o.dir,
    name: o.name,
    userData: o.userData,
    instanceId: o.instanceId,
    forwards,
    extraDisks,
  });
  const ssh = new Ssh({
    host: "127.0.0.1",
    port: sshPort,
    user: o.operatorUser,
    identityFile: o.identityFile,
    ...(o.hostKey !== undefined ? { hostKey: o.hostKey } : {}),
  });
  return { vm, ssh, wireguardEndpoint: `${o.deviceHostAddress}:${wgPort}`, tcpProbe, udpProbe };
}

/** The same VM, with ssh now pinning `hostKey` (read from the machine's console after it booted). */
export function pinHostKey(hub: HubVm, hostKey: string): HubVm {
  return { ...hub, ssh: new Ssh({ ...hub.ssh.target, hostKey }) };
}

export interface Delivery {
  /** From QEMU start until ssh answered. */
  readonly sshMs: number;
  readonly steps: readonly StepTiming[];
  /** From QEMU start until the last step finished. */
  readonly totalMs: number;
}

/** Waits for ssh, then runs the program's delivery steps; the first (cloud-init wait) bounds the first boot. */
export async function deliver(
  hub: HubVm,
  steps: readonly RemoteStep[],
  payloads: Payloads,
): Promise<Delivery> {
  await hub.ssh.waitUntilReachable(10 * 60_000, hub.vm.running);
  const sshMs = Date.now() - hub.vm.bootedAt;
  const timings = await runStepsOverSsh(steps, payloads, hub.ssh);
  return { sshMs, steps: timings, totalMs: Date.now() - hub.vm.bootedAt };
}

export function stepMs(d: Delivery, name: string): number {
  return d.steps.find((s) => s.name === name)?.ms ?? 0;
}

export interface HubServices {
  /** `systemctl is-active` per unit. */
  readonly active: Readonly<Record<string, string>>;
  readonly agentEnabled: string;
  readonly wireguardListenPort: number;
  readonly wireguardPeers: number;
  /** Flags of wg0 from `ip -br link`, e.g. "UP" among them. */
  readonly wireguardLink: string;
  readonly nftTableLoaded: boolean;
}

export const HUB_UNITS = [
  "unbound.service",
  "nftables.service",
  "cloudpal-agent.service",
  "ssh.service",
  // The DNS filter before unbound, and (the phone has nat64) the translator and the DNS64 resolver: each
  // must start under real systemd with its unit's sandbox, which only this test runs.
  LAYOUT.units.dnsFilter,
  NAT64.units.translator,
  NAT64.units.dns64,
] as const;

/** What is running on the hub, read with one command each so a failure names the part. */
export async function hubServices(ssh: Ssh): Promise<HubServices> {
  const active: Record<string, string> = {};
  for (const unit of HUB_UNITS) {
    const r = await ssh.exec(`systemctl is-active ${unit}`, { allowFailure: true, quiet: true });
    active[unit] = r.stdout.trim();
  }
  const enabled = await ssh.exec("systemctl is-enabled cloudpal-agent.service", {
    allowFailure: true,
    quiet: true,
  });
  const port = await ssh.exec("sudo wg show wg0 listen-port", { allowFailure: true, quiet: true });
  const peers = await ssh.exec("sudo wg show wg0 peers", { allowFailure: true, quiet: true });
  const link = await ssh.exec("ip -br link show wg0", { allowFailure: true, quiet: true });
  const nft = await ssh.exec("sudo nft list table inet cloudpal", { allowFailure: true, quiet: true });
  return {
    active,
    agentEnabled: enabled.stdout.trim(),
    wireguardListenPort: Number(port.stdout.trim()) || 0,
    wireguardPeers: peers.stdout.split("\n").filter((l) => l.trim()).length,
    wireguardLink: link.stdout.trim().split(/\s+/).slice(2).join(" "),
    nftTableLoaded: nft.code === 0 && nft.stdout.includes("chain input"),
  };
}
