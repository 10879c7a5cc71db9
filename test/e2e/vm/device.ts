/**
 * A "device" for the VM test: a network namespace on the host running wireguard-go with the client config the
 * program produced. It reaches the VM through a veth pair and a QEMU UDP forward bound to the host end of that
 * pair, because a namespace cannot reach the main namespace's 127.0.0.1.
 *
 * Every name carries the test's PID, and the addresses come from 198.18.0.0/15 (RFC 2544, reserved for network
 * tests) so that nothing the test creates collides with the host's networks or another test run. wireguard-go
 * control sockets in /var/run/wireguard are shared by all namespaces: only the interface created here is touched.
 */
import { existsSync } from "fs";
import { mkdtemp, rename, rm, writeFile } from "fs/promises";
import { tmpdir } from "os";
import { join } from "path";
import { run, sleep, start, stopPid, type Background } from "./exec";

export interface DeviceNames {
  readonly namespace: string;
  readonly hostVeth: string;
  readonly deviceVeth: string;
  readonly wgInterface: string;
  /** Host end of the veth pair: QEMU binds the device's UDP forward here. */
  readonly hostAddress: string;
  readonly deviceAddress: string;
}

export function deviceNames(pid = process.pid): DeviceNames {
  // A /30 per PID inside 198.18.0.0/15: 2^15 PIDs map to distinct subnets.
  const block = pid % 32768;
  const second = 18 + (block >> 14);
  const third = (block >> 6) & 255;
  const fourth = (block & 63) * 4;
  return {
    namespace: `cpdev${pid}`,
    hostVeth: `cpvh${pid}`,
    deviceVeth: `cpvd${pid}`,
    wgInterface: `cpwg${pid}`,
    hostAddress: `198.${second}.${third}.${fourth + 1}`,
    deviceAddress: `198.${second}.${third}.${fourth + 2}`,
  };
}

/** The parts of a wg-quick config that `wg setconf` and `ip` need. */
export interface ParsedClientConfig {
  readonly privateKey: string;
  readonly addresses: readonly string[];
  readonly peerPublicKey: string;
  readonly presharedKey?: string;
  readonly allowedIps: readonly string[];
  readonly endpoint: string;
  readonly persistentKeepalive?: number;
}

export function parseClientConfig(text: string): ParsedClientConfig {
  const sections: Record<string, Record<string, string>> = {};
  let current = "";
  for (const raw of text.split("\n")) {
    const line = raw.replace(/#.*$/, "").trim();
    if (!line) continue;
    const header = /^\[(\w+)\]$/.exec(line);
    if (header) {
      current = header[1];
      sections[current] = {};
      continue;
    }
    const eq = line.indexOf("=");
    if (eq < 0 || !current) throw new Error(`client config line ${JSON.stringify(raw)} is not "Key = value"`);
    sections[current][line.slice(0, eq).trim()] = line.slice(eq + 1).trim();
  }
  const iface = sections.Interface ?? {};
  const peer = sections.Peer ?? {};
  const need = (s: Record<string, string>, k: string, where: string): string => {
    const v = s[k];
    if (!v) throw new Error(`client config has no '${k}' in [${where}]`);
    return v;
  };
  const list = (v: string): string[] =>
    v
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean);
  return {
    privateKey: need(iface, "PrivateKey", "Interface"),
    addresses: list(need(iface, "Address", "Interface")),
    peerPublicKey: need(peer, "PublicKey", "Peer"),
    presharedKey: peer.PresharedKey,
    allowedIps: list(need(peer, "AllowedIPs", "Peer")),
    endpoint: need(peer, "Endpoint", "Peer"),
    persistentKeepalive: peer.PersistentKeepalive ? Number(peer.PersistentKeepalive) : undefined,
  };
}

/** `wg setconf` syntax: wg-quick-only keys (Address, DNS) dropped, the endpoint replaced by the test's forward. */
export function setconfText(config: ParsedClientConfig, endpoint: string): string {
  const lines = [
    "[Interface]",
    `PrivateKey = ${config.privateKey}`,
    "",
    "[Peer]",
    `PublicKey = ${config.peerPublicKey}`,
  ];
  if (config.presharedKey) lines.push(`PresharedKey = ${config.presharedKey}`);
  lines.push(`AllowedIPs = ${config.allowedIps.join(", ")}`, `Endpoint = ${endpoint}`);
  if (config.persistentKeepalive) lines.push(`PersistentKeepalive = ${config.persistentKeepalive}`);
  return lines.join("\n") + "\n";
}

export class Device {
  private wireguard?: Background;
  private created = false;

  constructor(readonly names: DeviceNames = deviceNames()) {}

  /** Runs a command inside the device namespace. */
  exec(file: string, args: readonly string[], options: Parameters<typeof run>[2] = {}) {
    return run("ip", ["netns", "exec", this.names.namespace, file, ...args], options);
  }

  async create(): Promise<void> {
    const n = this.names;
    await run("ip", ["netns", "add", n.namespace]);
    this.created = true;
    await run("ip", ["link", "add", n.hostVeth, "type", "veth", "peer", "name", n.deviceVeth]);
    await run("ip", ["link", "set", n.deviceVeth, "netns", n.namespace]);
    await run("ip", ["addr", "add", `${n.hostAddress}/30`, "dev", n.hostVeth]);
    await run("ip", ["link", "set", n.hostVeth, "up"]);
    await this.exec("ip", ["addr", "add", `${n.deviceAddress}/30`, "dev", n.deviceVeth]);
    await this.exec("ip", ["link", "set", n.deviceVeth, "up"]);
    await this.exec("ip", ["link", "set", "lo", "up"]);
  }

  /** Brings the device's tunnel up with the given client config, pointed at `endpoint` (host:port). */
  async connect(clientConfig: string, endpoint: string): Promise<ParsedClientConfig> {
    const n = this.names;
    const config = parseClientConfig(clientConfig);
    if (!this.wireguard) {
      // Foreground, so the PID is wireguard-go's own and the test can stop exactly that process.
      this.wireguard = start("ip", ["netns", "exec", n.namespace, "wireguard-go", "-f", n.wgInterface], {
        WG_PROCESS_FOREGROUND: "1",
      });
      const socket = `/var/run/wireguard/${n.wgInterface}.sock`;
      const deadline = Date.now() + 10_000;
      while (!existsSync(socket)) {
        if (Date.now() > deadline)
          throw new Error(`wireguard-go made no ${socket}: ${this.wireguard.output()}`);
        await sleep(100);
      }
      for (const address of config.addresses) {
        await this.exec("ip", [
          address.includes(":") ? "-6" : "-4",
          "addr",
          "add",
          address,
          "dev",
          n.wgInterface,
        ]);
      }
      await this.exec("ip", ["link", "set", n.wgInterface, "up"]);
      for (const prefix of config.allowedIps) {
        await this.exec("ip", [
          prefix.includes(":") ? "-6" : "-4",
          "route",
          "add",
          prefix,
          "dev",
          n.wgInterface,
        ]);
      }
    }
    // The private key never goes into argv. Not on stdin either: node's stdio pipes are sockets, which wg
    // cannot fopen as /dev/stdin (ENXIO). So a 0600 file in a 0700 directory of our own, removed right after.
    const keyDir = await mkdtemp(join(tmpdir(), `cloudpal-device-${process.pid}-`));
    try {
      const file = join(keyDir, "setconf.conf");
      await writeFile(`${file}.tmp`, setconfText(config, endpoint), { mode: 0o600 });
      await rename(`${file}.tmp`, file);
      await this.exec("wg", ["setconf", n.wgInterface, file]);
    } finally {
      await rm(keyDir, { recursive: true, force: true });
    }
    return config;
  }

  /** Seconds since the epoch of the last handshake with the hub (0: none yet). */
  async lastHandshake(): Promise<number> {
    const r = await this.exec("wg", ["show", this.names.wgInterface, "latest-handshakes"], { quiet: true });
    const fields = r.stdout.trim().split(/\s+/);
    return fields.length >= 2 ? Number(fields[1]) : 0;
  }

  /** Sends traffic into the tunnel until a handshake newer than `after` (epoch seconds) shows up. */
  async waitForHandshake(hubAddress: string, after: number, timeoutMs: number): Promise<number> {
    const started = Date.now();
    while (Date.now() - started < timeoutMs) {
      await this.exec("ping", ["-c", "1", "-W", "2", hubAddress], { allowFailure: true, quiet: true });
      const t = await this.lastHandshake();
      if (t > after) return t;
      await sleep(1000);
    }
    const show = await this.exec("wg", ["show", this.names.wgInterface], { allowFailure: true });
    throw new Error(
      `no WireGuard handshake with the hub within ${timeoutMs} ms:\n${show.stdout}${show.stderr}`,
    );
  }

  async destroy(): Promise<void> {
    const n = this.names;
    if (this.wireguard) await stopPid(this.wireguard.pid);
    if (this.created) await run("ip", ["netns", "del", n.namespace], { allowFailure: true });
    // Deleting the namespace deletes the device end, which takes the host end with it; this is a backstop.
    const host = await run("ip", ["link", "show", n.hostVeth], { allowFailure: true, quiet: true });
    if (host.code === 0) await run("ip", ["link", "del", n.hostVeth], { allowFailure: true });
  }
}
