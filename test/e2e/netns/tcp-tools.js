// Small TCP tools for the TCP-path test (test/e2e/netns-tcp.test.ts), run inside the lab's namespaces.
// Plain JS so each starts with plain node:
//   stream HOST PORT                  HTTP server whose every answer is an endless body (16 KiB per 10 ms)
//   record PORT TO_HOST TO_PORT FILE  forwards TCP to TO_HOST:TO_PORT, appending what the client sends to FILE
//   probe HOST PORT FILE WAIT_MS      sends FILE's bytes, then prints what came back and when the server closed
const http = require("http");
const net = require("net");
const fs = require("fs");
const [mode, ...args] = process.argv.slice(2);

if (mode === "stream") {
  const [host, port] = args;
  const chunk = Buffer.alloc(16 * 1024, 0x61);
  http
    .createServer((req, res) => {
      res.writeHead(200, { "content-type": "application/octet-stream" });
      const timer = setInterval(() => res.write(chunk), 10);
      res.on("close", () => clearInterval(timer));
    })
    .listen(Number(port), host, () => process.stdout.write("listening\n"));
} else if (mode === "record") {
  const [port, toHost, toPort, file] = args;
  net
    .createServer((client) => {
      const up = net.connect(Number(toPort), toHost);
      client.on("data", (d) => fs.appendFileSync(file, d));
      client.pipe(up);
      up.pipe(client);
      const done = () => {
        client.destroy();
        up.destroy();
      };
      client.on("error", done);
      up.on("error", done);
    })
    .listen(Number(port), "127.0.0.1", () => process.stdout.write("listening\n"));
} else if (mode === "probe") {
  const [host, port, file, waitMs] = args;
  const start = Date.now();
  let received = 0;
  let closed;
  const sock = net.connect(Number(port), host, () => sock.write(fs.readFileSync(file)));
  const report = () => {
    process.stdout.write(
      JSON.stringify({ received, closedBy: closed ?? "client", afterMs: Date.now() - start }) + "\n",
    );
    process.exit(0);
  };
  sock.on("data", (d) => (received += d.length));
  sock.on("end", () => {
    closed = "server";
    report();
  });
  sock.on("error", (e) => {
    closed = `error ${e.code}`;
    report();
  });
  setTimeout(report, Number(waitMs));
} else {
  process.stderr.write(`unknown mode ${mode}\n`);
  process.exit(2);
}
