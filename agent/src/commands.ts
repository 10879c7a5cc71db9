/**
 * The agent's command line, as a function of its inputs (argv, stdin, environment-derived options, runner),
 * so unit tests drive every command with a fake runner and temporary paths. cli.ts only wires process.*.
 */
import { parseArgs } from "util";
import * as QRCode from "qrcode";
import { refreshOne } from "./blocklist-fetch";
import { peerClientConfig } from "./peer-config";
import { type AgentContext, reconcile, reconcileUnbound } from "./reconcile";
import { loadPersistedState, persistState } from "./state-store";
import { parseHubState, StateError } from "../../model/state-schema";
import { collectStatus, formatStatus } from "./status";

export interface CliIo {
  readonly stdin: () => Promise<string>;
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

const USAGE = `usage:
  cloudpal-agent apply                  read the hub state (JSON) on stdin, persist it, make the hub match it
  cloudpal-agent reconcile              make the hub match the persisted state (run at boot)
  cloudpal-agent blocklists refresh     download the DNS blocklists and apply them (keeps the last good copy)
  cloudpal-agent status                 peers (handshake, transfer, endpoint) and service health
  cloudpal-agent peer config NAME [--qr] [--endpoint HOST:PORT]
                                        a device's WireGuard config (PrivateKey left for the device to fill)
`;

export async function runCli(argv: readonly string[], ctx: AgentContext, io: CliIo): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        qr: { type: "boolean" },
        endpoint: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (e) {
    io.stderr(`${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  const [command, sub, name, ...rest] = parsed.positionals;
  if (parsed.values.help) {
    io.stdout(USAGE);
    return 0;
  }
  try {
    switch (command) {
      case "apply": {
        if (sub !== undefined) break;
        const state = parseHubState(await io.stdin());
        persistState(ctx, state);
        const changes = await reconcile(ctx, state);
        io.stdout(changes.length > 0 ? `applied: ${changes.join(", ")}\n` : "applied: nothing changed\n");
        return 0;
      }
      case "reconcile": {
        if (sub !== undefined) break;
        const state = parseHubState(loadPersistedState(ctx));
        const changes = await reconcile(ctx, state);
        io.stdout(
          changes.length > 0 ? `reconciled: ${changes.join(", ")}\n` : "reconciled: nothing changed\n",
        );
        return 0;
      }
      case "blocklists": {
        if (sub !== "refresh" || name !== undefined) break;
        const state = parseHubState(loadPersistedState(ctx));
        const bounds = { maxBytes: ctx.options.blocklistMaxBytes, timeoutMs: ctx.options.blocklistTimeoutMs };
        const results = [];
        for (const url of state.dns.blocklists)
          results.push(await refreshOne(ctx.options.paths.blocklistDir, url, bounds));
        for (const r of results) (r.ok ? io.stdout : io.stderr)(`${r.ok ? "" : "[!] "}${r.message}\n`);
        const changes = await reconcileUnbound(ctx, state);
        io.stdout(changes.length > 0 ? `applied: ${changes.join(", ")}\n` : "applied: nothing changed\n");
        // Failing the unit makes a dead source visible in `systemctl status`; the filter itself stays on.
        return results.every((r) => r.ok) ? 0 : 1;
      }
      case "status": {
        if (sub !== undefined) break;
        const state = parseHubState(loadPersistedState(ctx));
        const status = await collectStatus(ctx, state);
        io.stdout(formatStatus(status, Math.floor(Date.now() / 1000)));
        return status.services.every((s) => s.healthy) ? 0 : 1;
      }
      case "peer": {
        if (sub !== "config" || name === undefined || rest.length > 0) break;
        const state = parseHubState(loadPersistedState(ctx));
        const text = peerClientConfig(state, name, parsed.values.endpoint);
        io.stdout(text);
        if (parsed.values.qr) io.stdout(await QRCode.toString(text, { type: "terminal", small: true }));
        return 0;
      }
    }
  } catch (e) {
    if (e instanceof StateError)
      io.stderr(
        `the hub state is invalid; nothing was changed:\n${e.problems.map((p) => `  ${p}`).join("\n")}\n`,
      );
    else io.stderr(`${(e as Error).message}\n`);
    return 1;
  }
  io.stderr(`unknown command ${JSON.stringify(parsed.positionals.join(" "))}\n${USAGE}`);
  return 2;
}
