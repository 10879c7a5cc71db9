/**
 * The agent's side of the relay's control socket (server.ts serveControl): the keys and rules derived from the
 * hub state (policy.ts relayConfig) go to the running relay over a unix socket, never through a file another
 * user could read, an argument list or a log. The relay answers after it has cut the sessions of every device
 * removed or changed, so an apply that returns has already revoked.
 */
import * as net from "net";
import type { RelayConfig } from "./policy";

export type PushResult =
  | { readonly state: "loaded"; readonly cut: number }
  | { readonly state: "unchanged" }
  | { readonly state: "not running"; readonly why: string };

export async function pushRelayConfig(
  socketPath: string,
  config: RelayConfig,
  timeoutMs = 10_000,
): Promise<PushResult> {
  return new Promise((resolve, reject) => {
    const conn = net.connect(socketPath);
    let buf = "";
    let connected = false;
    const timer = setTimeout(() => {
      conn.destroy();
      reject(new Error(`the TCP relay did not answer on ${socketPath} within ${timeoutMs} ms`));
    }, timeoutMs);
    conn.setEncoding("utf8");
    conn.on("connect", () => {
      connected = true;
      conn.write(JSON.stringify({ op: "load", config }) + "\n");
    });
    conn.on("data", (text: string) => {
      buf += text;
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      clearTimeout(timer);
      conn.end();
      const reply = JSON.parse(buf.slice(0, nl)) as {
        ok: boolean;
        changed?: boolean;
        cut?: number;
        error?: string;
      };
      if (!reply.ok)
        reject(new Error(`the TCP relay refused its configuration: ${reply.error ?? "no reason"}`));
      else resolve(reply.changed ? { state: "loaded", cut: reply.cut ?? 0 } : { state: "unchanged" });
    });
    conn.on("error", (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (!connected && (e.code === "ENOENT" || e.code === "ECONNREFUSED"))
        resolve({ state: "not running", why: e.code });
      else reject(new Error(`the TCP relay's control socket ${socketPath}: ${e.message}`));
    });
  });
}
