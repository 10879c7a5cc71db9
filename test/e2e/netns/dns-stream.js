// A steady stream of DNS queries over UDP for the DNS filter's e2e test: `rate` queries a second for `seconds`,
// cycling through the names given, each with its own ID; prints one JSON line with how many were sent and
// answered (by RCODE) and the IDs that never got an answer within 2 s. Plain JS so it starts without ts-node.
const dgram = require("dgram");
const [server, port, rate, seconds, ...names] = process.argv.slice(2);
const socket = dgram.createSocket("udp4");
const pending = new Map();
const rcodes = {};
let sent = 0;
let answered = 0;
function query(id, name) {
  const head = Buffer.alloc(12);
  head.writeUInt16BE(id, 0);
  head[2] = 0x01;
  head.writeUInt16BE(1, 4);
  const labels = name.split(".").map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
  return Buffer.concat([head, ...labels, Buffer.from([0, 0, 1, 0, 1])]);
}
socket.on("message", (m) => {
  const id = m.readUInt16BE(0);
  if (!pending.has(id)) return;
  pending.delete(id);
  answered++;
  const rcode = m[3] & 0x0f;
  rcodes[rcode] = (rcodes[rcode] || 0) + 1;
});
const total = Number(rate) * Number(seconds);
const timer = setInterval(() => {
  for (let i = 0; i < Number(rate) / 20 && sent < total; i++) {
    const id = sent % 65536;
    pending.set(id, Date.now());
    socket.send(query(id, names[sent % names.length]), Number(port), server);
    sent++;
  }
  if (sent >= total) {
    clearInterval(timer);
    setTimeout(() => {
      process.stdout.write(
        JSON.stringify({ sent, answered, rcodes, lost: [...pending.keys()].slice(0, 20) }) + "\n",
      );
      socket.close();
    }, 2000);
  }
}, 50);
