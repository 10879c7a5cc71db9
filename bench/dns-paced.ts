/**
 * A paced DNS load: `rate` A queries a second over UDP for `seconds`, to SERVER:PORT, the names taken in turn
 * from NAMES (a name containing '%' gets a unique number there for each query: always a cache miss). Reports
 * latency p50/p99 of every answered query, how many were answered, lost (no answer in 2 s), and by RCODE.
 *   npx ts-node --transpile-only bench/dns-paced.ts SERVER PORT RATE SECONDS NAME...
 */
import { createSocket } from "dgram";

function query(id: number, name: string): Buffer {
  const labels = name.split(".").filter((l) => l.length > 0);
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0x0100, 2);
  header.writeUInt16BE(1, 4);
  return Buffer.concat([
    header,
    ...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, "ascii")])),
    Buffer.from([0, 0, 1, 0, 1]),
  ]);
}

export interface PacedResult {
  readonly sent: number;
  readonly answered: number;
  readonly lost: number;
  readonly rcodes: Record<string, number>;
  readonly p50us: number;
  readonly p99us: number;
  readonly qps: number;
}

export function paced(server: string, port: number, rate: number, seconds: number, names: string[]) {
  return new Promise<PacedResult>((resolve) => {
    const socket = createSocket(server.includes(":") ? "udp6" : "udp4");
    const pending = new Map<number, bigint>();
    const latencies: number[] = [];
    const rcodes: Record<string, number> = {};
    socket.on("message", (m) => {
      const sent = pending.get(m.readUInt16BE(0));
      if (sent === undefined) return;
      pending.delete(m.readUInt16BE(0));
      latencies.push(Number(process.hrtime.bigint() - sent) / 1000);
      rcodes[m[3] & 0x0f] = (rcodes[m[3] & 0x0f] ?? 0) + 1;
    });
    const total = rate * seconds;
    let sent = 0;
    const start = process.hrtime.bigint();
    const tick = () => {
      // Catch up to where the clock says we should be: an even rate, whatever the timer's jitter.
      const due = Math.min(total, Math.floor((Number(process.hrtime.bigint() - start) / 1e9) * rate));
      while (sent < due) {
        const id = sent & 0xffff;
        const name = names[sent % names.length].replace("%", String(sent));
        pending.set(id, process.hrtime.bigint());
        socket.send(query(id, name), port, server);
        sent++;
      }
      if (sent < total) setTimeout(tick, 1);
      else
        setTimeout(() => {
          socket.close();
          const elapsed = Number(process.hrtime.bigint() - start) / 1e9 - 2;
          latencies.sort((a, b) => a - b);
          resolve({
            sent,
            answered: latencies.length,
            lost: sent - latencies.length,
            rcodes,
            p50us: Math.round(latencies[Math.floor(latencies.length * 0.5)] ?? 0),
            p99us: Math.round(latencies[Math.floor(latencies.length * 0.99)] ?? 0),
            qps: Math.round(latencies.length / elapsed),
          });
        }, 2000);
    };
    tick();
  });
}

if (require.main === module) {
  const [server, port, rate, seconds, ...names] = process.argv.slice(2);
  void paced(server, Number(port), Number(rate), Number(seconds), names).then((r) =>
    process.stdout.write(JSON.stringify(r) + "\n"),
  );
}
