// Fixture web server for the "internet" namespace: serves files from a directory, and /whoami answers with
// the client's source address (how the test sees masquerading). Plain JS so it starts without ts-node.
const http = require("http");
const fs = require("fs");
const path = require("path");
const [host, port, dir] = process.argv.slice(2);
http
  .createServer((req, res) => {
    if (req.url === "/whoami") {
      res.end(req.socket.remoteAddress);
      return;
    }
    const file = path.join(dir, path.basename(req.url || ""));
    fs.readFile(file, (err, data) => {
      res.writeHead(err ? 404 : 200, { "content-type": "text/plain" });
      res.end(err ? "not found" : data);
    });
  })
  .listen(Number(port), host, () => process.stdout.write("listening\n"));
