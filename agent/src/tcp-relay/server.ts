/**
 * The TCP path's server: Shadowsocks AEAD (aead.ts) with one key per device, all on one TCP port, in the
 * hub's own Node.js, as its own unprivileged user (cloud-init/units.ts). Debian's shadowsocks-libev cannot do
 * this: ss-server takes one password, and ss-manager runs one ss-server per port (README, DESIGN.md).
 *
 * - A connection's device is found by trying each device's key on its first bytes (aead.ts findKey).
 * - Probes learn nothing: a connection whose first bytes open no key, or that replays a salt already seen, is
 *   read and discarded, never answered, and closed exactly as a client that went quiet before finishing its
 *   first chunk: at the handshake deadline, or when the client closes first.
 * - The keys and rules come only from the agent, over a unix socket only root and this user can open
 *   (control.ts); they live in memory. A load that removes or changes a device destroys that device's live
 *   sessions before it answers, so the agent's apply returns after the cut.
 * - Destinations are decided by policy.ts, names resolved by the hub's own filtering resolver. Nothing about a
 *   destination or a client address is logged.
 */
import { createHash, randomBytes } from "crypto";
import { Resolver } from "dns/promises";
import { DNS_FILTER_PORT } from "../../../model/layout";
import { chmodSync, rmSync } from "fs";
import * as net from "net";
import { networkInterfaces } from "os";
import * as ipaddr from "ipaddr.js";
import {
  AuthError,
  Decryptor,
  Encryptor,
  findKey,
  FIRST_BYTES,
  masterKey,
  parseTarget,
  SALT_BYTES,
  type Target,
  type TrialKey,
} from "./aead";
import { decide, type RelayConfig, type RelayDevice } from "./policy";

export interface RelayOptions {
  /** Deadline for a connection to send its first chunk and target; probes are held to the same. */
  readonly handshakeTimeoutMs: number;
  /** A session with no traffic either way for this long is closed. */
  readonly idleTimeoutMs: number;
  /** Salts remembered per generation (two generations): the replay window, in connections. */
  readonly saltCacheSize: number;
  readonly log: (line: string) => void;
}

export const DEFAULT_RELAY_OPTIONS: Omit<RelayOptions, "log"> = {
  handshakeTimeoutMs: 60_000,
  idleTimeoutMs: 5 * 60_000,
  saltCacheSize: 50_000,
};

/** Salts seen, in two generations so memory stays bounded: at most 2 × size entries of 32 bytes. */
export class SaltCache {
  private current = new Set<string>();
  private previous = new Set<string>();
  constructor(private readonly size: number) {}

  /** true when the salt was new (and is now remembered), false for a replay. */
  add(salt: Buffer): boolean {
    const k = salt.toString("base64");
    if (this.current.has(k) || this.previous.has(k)) return false;
    if (this.current.size >= this.size) {
      this.previous = this.current;
      this.current = new Set();
    }
    this.current.add(k);
    return true;
  }
}

interface Session {
  readonly device: string;
  destroy(): void;
}

export function configDigest(config: RelayConfig): string {
  return createHash("sha256").update(JSON.stringify(config)).digest("hex");
}

export class RelayServer {
  private config: RelayConfig | undefined;
  private digest = "";
  private keys: TrialKey<RelayDevice>[] = [];
  private readonly sessions = new Set<Session>();
  private listener: net.Server | undefined;
  private listenPort: number | null = null;
  private readonly salts: SaltCache;
  private resolver = new Resolver({ timeout: 2000, tries: 2 });
  private local: { at: number; set: Set<string> } = { at: 0, set: new Set() };

  constructor(private readonly options: RelayOptions) {
    this.salts = new SaltCache(options.saltCacheSize);
  }

  get currentDigest(): string {
    return this.digest;
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  /**
   * Makes `config` the one in force: sessions of devices removed or changed are destroyed first, then the
   * listener follows the port. Returns how many sessions were cut.
   */
  async load(config: RelayConfig): Promise<{ changed: boolean; cut: number }> {
    const digest = configDigest(config);
    if (digest === this.digest) return { changed: false, cut: 0 };
    const next = new Map(config.devices.map((d) => [d.name, d]));
    const before = new Map((this.config?.devices ?? []).map((d) => [d.name, d]));
    const stale = new Set(
      [...before.entries()]
        .filter(([name, d]) => JSON.stringify(next.get(name)) !== JSON.stringify(d))
        .map(([name]) => name),
    );
    this.config = config;
    this.digest = digest;
    this.keys = config.devices.map((d) => ({ method: d.method, master: masterKey(d.password), owner: d }));
    this.resolver = new Resolver({ timeout: 2000, tries: 2 });
    // The DNS filter first, unbound when the filter does not answer (a dead filter's port refuses at once): the
    // same answers a device gets through the tunnel. Straight to the filter's port rather than through the
    // redirect of port 53 (dns-filter.ts renderRedirect), because this resolver keeps one UDP socket, and
    // conntrack would keep that flow bound to whatever the redirect said when it began.
    this.resolver.setServers([`${config.hubIpv4}:${DNS_FILTER_PORT}`, config.hubIpv4]);
    let cut = 0;
    for (const s of [...this.sessions])
      if (stale.has(s.device)) {
        s.destroy();
        cut++;
      }
    try {
      await this.listen(config.port);
    } catch (e) {
      // Keys are in force (revocations too); the port is retried by the next push of the same config.
      this.digest = "";
      throw new Error(`cannot listen on TCP port ${config.port}: ${(e as Error).message}`);
    }
    this.options.log(
      `[#] tcp relay: ${config.devices.length} device key(s), port ${config.port ?? "off"}, ${cut} session(s) cut`,
    );
    return { changed: true, cut };
  }

  private async listen(port: number | null): Promise<void> {
    if (port === this.listenPort && this.listener !== undefined) return;
    if (this.listener !== undefined) {
      const old = this.listener;
      this.listener = undefined;
      await new Promise<void>((resolve) => old.close(() => resolve()));
    }
    this.listenPort = null;
    if (port === null) return;
    // allowHalfOpen: a client's FIN is passed on to its destination, whose answer may still come back.
    const server = net.createServer({ allowHalfOpen: true }, (sock) => this.accept(sock));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      // "::" with dual-stack sockets takes IPv4 and IPv6 clients alike.
      server.listen({ port, host: "::", ipv6Only: false }, () => resolve());
    });
    server.on("error", (e) => this.options.log(`[!] tcp relay listener: ${e.message}`));
    this.listener = server;
    this.listenPort = port;
  }

  async close(): Promise<void> {
    for (const s of [...this.sessions]) s.destroy();
    await this.listen(null);
  }

  private localAddresses(): Set<string> {
    if (Date.now() - this.local.at > 5000) {
      const set = new Set<string>();
      for (const list of Object.values(networkInterfaces()))
        for (const a of list ?? []) set.add(ipaddr.parse(a.address.split("%")[0]).toString());
      this.local = { at: Date.now(), set };
    }
    return this.local.set;
  }

  private accept(sock: net.Socket): void {
    sock.setNoDelay(true);
    let pending: Buffer = Buffer.alloc(0);
    let decryptor: Decryptor | undefined;
    let device: RelayDevice | undefined;
    let plain: Buffer = Buffer.alloc(0);
    let session: Session | undefined;
    // One deadline for everyone who has not finished a first chunk, probe or client alike.
    const deadline = setTimeout(() => sock.destroy(), this.options.handshakeTimeoutMs);
    sock.on("error", () => sock.destroy());
    sock.on("close", () => {
      clearTimeout(deadline);
      if (session) this.sessions.delete(session);
    });
    // Read and discard until the client closes or the deadline: never an answer, never an early close.
    const drain = () => {
      sock.removeListener("data", onData);
      sock.on("data", () => undefined);
    };
    // Before a destination is chosen, a FIN is answered with a FIN, whatever the client sent.
    const onEnd = () => sock.end();
    sock.on("end", onEnd);
    const onData = (data: Buffer) => {
      try {
        if (decryptor === undefined) {
          pending = Buffer.concat([pending, data]);
          if (pending.length < FIRST_BYTES) return;
          const found = findKey(pending.subarray(0, FIRST_BYTES), this.keys);
          if (found === undefined || !this.salts.add(pending.subarray(0, SALT_BYTES))) {
            pending = Buffer.alloc(0);
            drain();
            return;
          }
          decryptor = found.decryptor;
          device = found.owner;
          const dev = device.name;
          session = { device: dev, destroy: () => sock.destroy() };
          this.sessions.add(session);
          data = pending.subarray(SALT_BYTES);
          pending = Buffer.alloc(0);
        }
        plain = Buffer.concat([plain, ...decryptor.push(data)]);
        const parsed = parseTarget(plain);
        if (parsed === undefined) return;
        sock.removeListener("data", onData);
        sock.removeListener("end", onEnd);
        sock.pause();
        clearTimeout(deadline);
        void this.connect(sock, found(device), decryptor, parsed.target, parsed.rest, (s) => {
          if (session) this.sessions.delete(session);
          session = s;
          this.sessions.add(s);
        });
      } catch (e) {
        if (!(e instanceof AuthError)) throw e;
        // A key opened the first length but the rest is not that client's: treat like any probe.
        if (session) this.sessions.delete(session);
        session = undefined;
        drain();
      }
    };
    sock.on("data", onData);
  }

  private async resolve(target: Target): Promise<string | undefined> {
    if (target.kind === "ip" || ipaddr.isValid(target.host)) return target.host;
    try {
      const v4 = await this.resolver.resolve4(target.host);
      if (v4.length > 0) return v4[0];
    } catch {
      // fall through to AAAA
    }
    try {
      const v6 = await this.resolver.resolve6(target.host);
      return v6[0];
    } catch {
      return undefined;
    }
  }

  private async connect(
    client: net.Socket,
    device: RelayDevice,
    decryptor: Decryptor,
    target: Target,
    first: Buffer,
    track: (s: Session) => void,
  ): Promise<void> {
    const link: { up?: net.Socket } = {};
    const destroy = () => {
      client.destroy();
      link.up?.destroy();
    };
    track({ device: device.name, destroy });
    const ip = await this.resolve(target);
    // A load that revoked or changed the device while its name was being resolved destroyed this session.
    if (client.destroyed) return;
    const config = this.config;
    if (ip === undefined || config === undefined) return destroy();
    const verdict = decide(config, device, ip, target.port, this.localAddresses());
    if (!verdict.ok) return destroy();
    const up = net.connect({ host: verdict.host, port: verdict.port });
    link.up = up;
    const encryptor = new Encryptor(device.method, masterKey(device.password), randomBytes(SALT_BYTES));
    this.salts.add(encryptor.salt);
    up.setNoDelay(true);
    up.setTimeout(10_000, () => up.destroy());
    up.on("error", destroy);
    up.on("close", destroy);
    client.on("close", destroy);
    up.once("connect", () => {
      up.setTimeout(0);
      client.setTimeout(this.options.idleTimeoutMs, destroy);
      if (first.length > 0) up.write(first);
      client.on("data", (data: Buffer) => {
        let chunks: Buffer[];
        try {
          chunks = decryptor.push(data);
        } catch {
          return destroy();
        }
        for (const c of chunks) if (!up.write(c)) client.pause();
      });
      up.on("drain", () => client.resume());
      up.on("data", (data: Buffer) => {
        client.setTimeout(this.options.idleTimeoutMs, destroy);
        if (!client.write(encryptor.frame(data))) up.pause();
      });
      client.on("drain", () => up.resume());
      client.on("end", () => up.end());
      up.on("end", () => client.end());
      client.resume();
    });
  }
}

function found(device: RelayDevice | undefined): RelayDevice {
  if (device === undefined) throw new Error("tcp relay: session without a device");
  return device;
}

/**
 * The relay's control socket: one JSON request per line from the agent, one JSON answer per line.
 * `{"op":"load","config":RelayConfig}` → `{"ok":true,"changed":bool,"cut":n,"digest":"…"}`;
 * `{"op":"digest"}` → `{"ok":true,"digest":"…"}`. The socket file is 0600 in the service's runtime directory.
 */
export async function serveControl(socketPath: string, relay: RelayServer): Promise<net.Server> {
  rmSync(socketPath, { force: true });
  const server = net.createServer((conn) => {
    let buf = "";
    conn.setEncoding("utf8");
    conn.on("error", () => conn.destroy());
    conn.on("data", (text: string) => {
      buf += text;
      if (buf.length > 64 * 1024 * 1024) {
        conn.destroy();
        return;
      }
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        void answer(line).then((reply) => conn.write(JSON.stringify(reply) + "\n"));
      }
    });
  });
  const answer = async (line: string): Promise<object> => {
    try {
      const req = JSON.parse(line) as { op?: string; config?: RelayConfig };
      if (req.op === "digest") return { ok: true, digest: relay.currentDigest };
      if (req.op === "load" && req.config !== undefined && req.config.version === 1) {
        const r = await relay.load(req.config);
        return { ok: true, ...r, digest: relay.currentDigest };
      }
      return { ok: false, error: "unknown request" };
    } catch (e) {
      return { ok: false, error: (e as Error).message };
    }
  };
  const old = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(socketPath, () => resolve());
    });
  } finally {
    process.umask(old);
  }
  chmodSync(socketPath, 0o600);
  return server;
}
