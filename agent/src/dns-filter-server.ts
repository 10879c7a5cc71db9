/**
 * The DNS filter: a small front-end before unbound. It reads each query's name, refuses it when the table
 * (dns-filter-table.ts) says so, and forwards everything else unchanged to unbound, which stays the validating,
 * DNS-over-TLS forwarding resolver. It sits before unbound, not inside it, because unbound answers from its cache
 * before any module runs (README "DNS filter"), and because it sees which device asks.
 *
 * Never without DNS: the filter is reached only through a redirect of the tunnel's port 53 that its unit adds
 * when it has started and removes when it stops or dies (dns-filter-redirect.ts), so a dead filter leaves DNS
 * answered by unbound directly, unfiltered, until systemd has started it again.
 *
 * The table is swapped whole: the agent writes a new file beside the old one and renames it in; the filter
 * sees the new inode (polled once a second, or at once on SIGHUP), parses it and replaces its one reference.
 * Queries meanwhile are judged by the old table; a file that does not parse leaves the old one in use.
 *
 * UDP: each forwarded query gets a fresh 16-bit ID towards unbound; the answer is matched by that ID, its ID
 * restored and sent back to the asking address. TCP: one connection to unbound per client connection, messages
 * relayed whole (2-byte length framing) in both directions, refused ones answered in between.
 */
import * as dgram from "dgram";
import { statSync, watchFile, unwatchFile } from "fs";
import * as net from "net";
import { decide, type FilterPolicy } from "./dns-filter-policy";
import type { Clients } from "./filter-clients";
import { FilterTable } from "./dns-filter-table";
import type { GroupSitePolicy, SitePolicyRuntime } from "./site-policy";

export interface FilterServerOptions {
  /** Where to listen (the redirect's target): address and port, UDP and TCP. */
  readonly listen: readonly { readonly address: string; readonly port: number }[];
  /** unbound. */
  readonly upstream: { readonly address: string; readonly port: number };
  readonly tableFile: string;
  readonly log: (line: string) => void;
  /** Per-group site policies: addresses learned from answers, denied names resolved (site-policy.ts). */
  readonly sites?: SitePolicyRuntime;
}

const RCODE_REFUSED = 5;
const RCODE_FORMERR = 1;
const UDP_TIMEOUT_MS = 5000;

/** The question name of a DNS message, or undefined when it is not one plain query with one question. */
export function questionName(msg: Buffer): { name: string; qtype: number; end: number } | undefined {
  if (msg.length < 12) return undefined;
  if ((msg[2] & 0x80) !== 0) return undefined; // a response
  if (msg.readUInt16BE(4) !== 1) return undefined;
  const labels: string[] = [];
  let at = 12;
  for (;;) {
    if (at >= msg.length) return undefined;
    const len = msg[at];
    if (len === 0) break;
    if (len > 63) return undefined; // compression pointers have no place in a question
    if (at + 1 + len > msg.length) return undefined;
    labels.push(msg.toString("latin1", at + 1, at + 1 + len));
    at += 1 + len;
  }
  if (at + 5 > msg.length) return undefined;
  return { name: labels.join("."), qtype: msg.readUInt16BE(at + 1), end: at + 5 };
}

/** An answer to `query` with no records and `rcode`, the question copied. */
export function errorAnswer(query: Buffer, rcode: number, questionEnd?: number): Buffer {
  const end = questionEnd ?? 12;
  const out = Buffer.alloc(end);
  query.copy(out, 0, 0, end);
  out[2] = 0x80 | (query[2] & 0x79); // QR, the opcode and RD kept
  out[3] = 0x80 | rcode; // RA
  out.writeUInt16BE(questionEnd === undefined ? 0 : 1, 4);
  out.writeUInt16BE(0, 6);
  out.writeUInt16BE(0, 8);
  out.writeUInt16BE(0, 10);
  return out;
}

export class DnsFilterServer {
  private policy: FilterPolicy = { table: FilterTable.empty(), clients: new Map() };
  private tableIno = -1;
  private tableMtime = -1;
  private readonly udp: dgram.Socket[] = [];
  private readonly tcp: net.Server[] = [];
  private upstreamUdp!: dgram.Socket;
  private nextId = 0;
  /**
   * Forwarded UDP queries by their ID towards unbound; `at` is when they left, on the monotonic clock
   * (performance.now(): a wall clock stepped back at boot would leave old entries looking young).
   */
  private readonly pending = new Map<number, { id: number; reply: (b: Buffer) => void; at: number }>();
  /**
   * Drops queries unbound has not answered within UDP_TIMEOUT_MS, once a second: one timer for all of them, not
   * one per query (thousands of timers a second were garbage the hot path made for nothing).
   */
  private sweeper?: NodeJS.Timeout;
  readonly stats = { queries: 0, refused: 0, forwarded: 0, dropped: 0, reloads: 0 };

  constructor(private readonly o: FilterServerOptions) {}

  /**
   * Queries to unbound leave from loopback, not from the tunnel address the kernel would pick: the hub masquerades
   * the tunnel subnet leaving by any interface but wg0, loopback included, and unbound refused the rewritten
   * source (seen in the namespace test). unbound allows localhost by default.
   */
  private localSource(): string {
    return net.isIPv6(this.o.upstream.address) ? "::1" : "127.0.0.1";
  }

  /** Loads the table file if it is a new one; keeps the current table when the file is missing or bad. */
  reload(): void {
    let st;
    try {
      st = statSync(this.o.tableFile);
    } catch {
      return;
    }
    if (st.ino === this.tableIno && st.mtimeMs === this.tableMtime) return;
    try {
      const t = FilterTable.readFile(this.o.tableFile);
      this.policy = { ...this.policy, table: t };
      this.tableIno = st.ino;
      this.tableMtime = st.mtimeMs;
      this.stats.reloads++;
      const c = t.counts;
      this.o.log(`table loaded: ${c.block} blocked, ${c.allow} allowed, ${c.deny} denied`);
    } catch (e) {
      this.o.log(`[!] kept the table in use: ${this.o.tableFile}: ${(e as Error).message}`);
    }
  }

  /** Which device (and group) asks from which tunnel address: from the state, replaced whole when it changes. */
  setClients(clients: Clients): void {
    this.policy = { ...this.policy, clients };
  }

  /** The groups' own lists and site modes (site-policy.ts), replaced whole. */
  setGroups(groups: ReadonlyMap<string, GroupSitePolicy>): void {
    this.policy = { ...this.policy, groups };
  }

  /**
   * The answer to send at once (refused, malformed), or undefined to forward the query. `client` is the asking
   * address as the socket saw it (the redirect keeps the source: dns-filter-policy.ts).
   */
  judge(msg: Buffer, client: string): Buffer | undefined {
    this.stats.queries++;
    const opcode = (msg[2] >> 3) & 0x0f;
    const q = questionName(msg);
    if (q === undefined || opcode !== 0) {
      if (msg.length < 12) return undefined;
      return errorAnswer(msg, RCODE_FORMERR);
    }
    if (decide(this.policy, q.name, q.qtype, client) === "refuse") {
      this.stats.refused++;
      this.o.sites?.refused(client, q.name);
      return errorAnswer(msg, RCODE_REFUSED, q.end);
    }
    this.stats.forwarded++;
    return undefined;
  }

  async start(): Promise<void> {
    this.reload();
    watchFile(this.o.tableFile, { interval: 1000 }, () => this.reload());
    this.sweeper = setInterval(() => this.sweep(performance.now()), 1000);
    this.sweeper.unref();
    const { upstream } = this.o;
    this.upstreamUdp = dgram.createSocket(net.isIPv6(upstream.address) ? "udp6" : "udp4");
    this.upstreamUdp.on("message", (msg) => this.fromUpstream(msg));
    await new Promise<void>((resolve) => this.upstreamUdp.bind(0, this.localSource(), resolve));
    for (const l of this.o.listen) {
      const v6 = net.isIPv6(l.address);
      const s = dgram.createSocket(v6 ? { type: "udp6", ipv6Only: true } : { type: "udp4" });
      s.on("message", (msg, rinfo) => this.fromClient(s, msg, rinfo));
      s.on("error", (e) => this.o.log(`[!] udp ${l.address}: ${e.message}`));
      await new Promise<void>((resolve, reject) => {
        s.once("error", reject);
        s.bind(l.port, l.address, () => resolve());
      });
      this.udp.push(s);
      const t = net.createServer((c) => this.tcpClient(c));
      await new Promise<void>((resolve, reject) => {
        t.once("error", reject);
        t.listen({ port: l.port, host: l.address, ipv6Only: v6 }, () => resolve());
      });
      this.tcp.push(t);
    }
  }

  close(): void {
    unwatchFile(this.o.tableFile);
    for (const s of this.udp) s.close();
    for (const t of this.tcp) t.close();
    this.upstreamUdp?.close();
    clearInterval(this.sweeper);
    this.pending.clear();
  }

  /** Forgets forwarded queries older than UDP_TIMEOUT_MS at `now` (performance.now(); their IDs free again). */
  sweep(now: number): void {
    // A Map iterates in insertion order, so the oldest come first.
    for (const [id, p] of this.pending) {
      if (now - p.at < UDP_TIMEOUT_MS) break;
      this.pending.delete(id);
    }
  }

  /** How many forwarded queries wait for unbound. */
  get inFlight(): number {
    return this.pending.size;
  }

  private fromClient(s: dgram.Socket, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const answer = this.judge(msg, rinfo.address);
    const send = (b: Buffer) => s.send(b, rinfo.port, rinfo.address);
    // An allow-list group's answer goes on only once its addresses are in the group's set (site-policy.ts).
    const learn = this.o.sites?.learnerFor(rinfo.address);
    const reply = learn === undefined ? send : (b: Buffer) => void learn(b).then(() => send(b));
    if (answer !== undefined) {
      reply(answer);
      return;
    }
    if (msg.length < 12) return;
    // A fresh ID towards unbound; an ID still in flight (65,536 outstanding) drops the query, as a full
    // resolver would.
    let id = -1;
    for (let tries = 0; tries < 0x10000; tries++) {
      const candidate = (this.nextId = (this.nextId + 1) & 0xffff);
      if (!this.pending.has(candidate)) {
        id = candidate;
        break;
      }
    }
    if (id === -1) {
      this.stats.dropped++;
      return;
    }
    const original = msg.readUInt16BE(0);
    this.pending.set(id, { id: original, reply, at: performance.now() });
    const out = Buffer.from(msg);
    out.writeUInt16BE(id, 0);
    this.upstreamUdp.send(out, this.o.upstream.port, this.o.upstream.address);
  }

  private fromUpstream(msg: Buffer): void {
    if (msg.length < 12) return;
    const p = this.pending.get(msg.readUInt16BE(0));
    if (!p) return;
    this.pending.delete(msg.readUInt16BE(0));
    msg.writeUInt16BE(p.id, 0);
    p.reply(msg);
  }

  private tcpClient(client: net.Socket): void {
    let upstream: net.Socket | undefined;
    const toUpstream: Buffer[] = [];
    const end = () => {
      client.destroy();
      upstream?.destroy();
    };
    client.setTimeout(30_000, end);
    client.on("error", end);
    client.on("close", end);
    const learn = this.o.sites?.learnerFor(client.remoteAddress ?? "");
    const send = (m: Buffer) => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(m.length);
      client.write(Buffer.concat([len, m]));
    };
    const openUpstream = (): net.Socket => {
      const u = net.connect({
        host: this.o.upstream.address,
        port: this.o.upstream.port,
        localAddress: this.localSource(),
      });
      u.on("error", end);
      u.on("close", end);
      frames(u, learn === undefined ? send : (m) => void learn(m).then(() => send(m)));
      u.on("connect", () => {
        for (const b of toUpstream.splice(0)) u.write(b);
      });
      return u;
    };
    const from = client.remoteAddress ?? "";
    frames(client, (m) => {
      const answer = this.judge(m, from);
      if (answer !== undefined) {
        send(answer);
        return;
      }
      const len = Buffer.alloc(2);
      len.writeUInt16BE(m.length);
      upstream ??= openUpstream();
      if (upstream.connecting) toUpstream.push(len, m);
      else upstream.write(Buffer.concat([len, m]));
    });
  }
}

/** Calls `fn` with each whole message of a 2-byte-length-framed stream. */
function frames(s: net.Socket, fn: (m: Buffer) => void): void {
  let buf: Buffer = Buffer.alloc(0);
  s.on("data", (d: Buffer) => {
    buf = buf.length === 0 ? d : Buffer.concat([buf, d]);
    while (buf.length >= 2) {
      const len = buf.readUInt16BE(0);
      if (buf.length < 2 + len) break;
      fn(buf.subarray(2, 2 + len));
      buf = buf.subarray(2 + len);
    }
  });
}
