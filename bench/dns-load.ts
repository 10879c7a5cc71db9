/**
 * A bounded DNS load generator (no dnsperf on these machines): sends A queries over UDP to one server and
 * reports latency percentiles (one query at a time) and throughput (a fixed window of queries in flight).
 * Used by bench/dns-blocklist.ts inside the hub's network namespace; also runnable alone:
 *   npx ts-node --transpile-only bench/dns-load.ts SERVER NAME [SEQUENTIAL] [TOTAL] [WINDOW]
 */
import { createSocket } from "dgram";

function query(id: number, name: string): Buffer {
  const labels = name.split(".").filter((l) => l.length > 0);
  const qname = Buffer.concat([
    ...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, "ascii")])),
    Buffer.from([0]),
  ]);
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0x0100, 2); // recursion desired
  header.writeUInt16BE(1, 4);
  return Buffer.concat([header, qname, Buffer.from([0, 1, 0, 1])]);
}

const RCODES = ["NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"];

export interface LoadResult {
  readonly rcode: string;
  readonly p50us: number;
  readonly p99us: number;
  readonly qps: number;
  readonly lost: number;
}

export async function load(
  server: string,
  name: string,
  sequential = 2000,
  total = 20000,
  window = 32,
): Promise<LoadResult> {
  const socket = createSocket(server.includes(":") ? "udp6" : "udp4");
  const pending = new Map<number, { sent: bigint; resolve: (rcode: string) => void }>();
  socket.on("message", (msg) => {
    const p = pending.get(msg.readUInt16BE(0));
    if (!p) return;
    pending.delete(msg.readUInt16BE(0));
    p.resolve(RCODES[msg[3] & 0x0f] ?? String(msg[3] & 0x0f));
  });
  let nextId = 1;
  let lost = 0;
  const ask = () =>
    new Promise<{ rcode: string; us: number }>((resolve) => {
      const id = nextId++ & 0xffff;
      const sent = process.hrtime.bigint();
      const timer = setTimeout(() => {
        pending.delete(id);
        lost++;
        resolve({ rcode: "TIMEOUT", us: 1_000_000 });
      }, 1000);
      pending.set(id, {
        sent,
        resolve: (rcode) => {
          clearTimeout(timer);
          resolve({ rcode, us: Number(process.hrtime.bigint() - sent) / 1000 });
        },
      });
      socket.send(query(id, name), 53, server);
    });
  const latencies: number[] = [];
  let rcode = "";
  for (let i = 0; i < sequential; i++) {
    const r = await ask();
    latencies.push(r.us);
    rcode = r.rcode;
  }
  latencies.sort((a, b) => a - b);
  const started = process.hrtime.bigint();
  let sent = 0;
  const worker = async () => {
    while (sent < total) {
      sent++;
      await ask();
    }
  };
  await Promise.all(Array.from({ length: window }, worker));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  socket.close();
  return {
    rcode,
    p50us: latencies[Math.floor(latencies.length * 0.5)],
    p99us: latencies[Math.floor(latencies.length * 0.99)],
    qps: total / seconds,
    lost,
  };
}

if (require.main === module) {
  const [server, name, sequential, total, window] = process.argv.slice(2);
  load(server, name, Number(sequential ?? 2000), Number(total ?? 20000), Number(window ?? 32)).then((r) =>
    process.stdout.write(JSON.stringify(r) + "\n"),
  );
}
