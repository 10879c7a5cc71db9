/**
 * Probes of the hub from outside the tunnel, through QEMU's loopback forwards. A forward always accepts on
 * the host side (QEMU's user network answers the host's connect itself), so "open" is judged by whether the
 * guest sends anything back to a request that a listening service would answer, never by connect() alone.
 */
import { Socket } from "net";
import { createSocket } from "dgram";

/** A DNS query for "." NS, as sent over UDP; over TCP it gets a two-byte length prefix (RFC 1035 4.2.2). */
const DNS_QUERY = Buffer.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1]);

export function dnsOverTcp(): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(DNS_QUERY.length);
  return Buffer.concat([len, DNS_QUERY]);
}

export const HTTP_REQUEST = Buffer.from("GET / HTTP/1.0\r\n\r\n");

/** Connects to 127.0.0.1:port, sends `payload` (if any) and returns what came back within `waitMs`. */
export function probeTcp(port: number, payload: Buffer | undefined, waitMs = 4000): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = new Socket();
    const finish = () => {
      socket.destroy();
      resolve(Buffer.concat(chunks));
    };
    const timer = setTimeout(finish, waitMs);
    socket.on("data", (d: Buffer) => chunks.push(d));
    socket.on("error", () => undefined);
    socket.on("close", () => {
      clearTimeout(timer);
      finish();
    });
    socket.connect(port, "127.0.0.1", () => {
      if (payload) socket.write(payload);
    });
  });
}

/** Sends a DNS query to 127.0.0.1:port over UDP; resolves to the reply, or an empty buffer after `waitMs`. */
export function probeUdpDns(port: number, waitMs = 4000): Promise<Buffer> {
  return new Promise((resolve) => {
    const socket = createSocket("udp4");
    const finish = (reply: Buffer) => {
      clearTimeout(timer);
      socket.close();
      resolve(reply);
    };
    const timer = setTimeout(() => finish(Buffer.alloc(0)), waitMs);
    socket.on("message", (msg) => finish(msg));
    socket.on("error", () => finish(Buffer.alloc(0)));
    socket.send(DNS_QUERY, port, "127.0.0.1");
  });
}

/**
 * The ports the program's state (the `state` payload the hub's agent applies) makes public, as "port/proto":
 * every `…Port` number and `…Ports` list under `hub`, TCP when the key names tcp or ssh, else UDP (WireGuard).
 * The exposure check leaves these out of the ports that must stay silent, so a public port added to the
 * program (another WireGuard port, a TCP path) is followed here rather than hard-coded.
 */
export function publicPortsOfState(stateJson: string | Buffer | undefined): Set<string> {
  if (stateJson === undefined) throw new Error("the program sent no state");
  const hub = (JSON.parse(stateJson.toString()) as { hub?: Record<string, unknown> }).hub ?? {};
  const out = new Set<string>();
  for (const [key, value] of Object.entries(hub)) {
    const proto = /tcp|ssh/i.test(key) ? "tcp" : "udp";
    const ports = /Ports$/.test(key) && Array.isArray(value) ? value : /Port$/.test(key) ? [value] : [];
    for (const p of ports) if (typeof p === "number") out.add(`${p}/${proto}`);
  }
  if (!out.has(`${hub.listenPort as number}/udp`))
    throw new Error("the state names no WireGuard listen port");
  return out;
}
