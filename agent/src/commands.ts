/**
 * The agent's command line, as a function of its inputs (argv, stdin, environment-derived options, runner),
 * so unit tests drive every command with a fake runner and temporary paths. cli.ts only wires process.*.
 */
import { parseArgs } from "util";
import * as QRCode from "qrcode";
import { refreshOne } from "./blocklist-fetch";
import { allBlocklistUrls } from "./site-policy";
import { peerClientConfig } from "./peer-config";
import { readIfExists } from "../../lib/atomic-file";
import { acquireHubLock } from "./lock";
import { type AgentContext, prevalidate, reconcile, reconcileUnbound, renderAll } from "./reconcile";
import { assertSecretStorage } from "./secret-storage";
import { loadPersistedState, persistState } from "./state-store";
import {
  beginJournal,
  endJournal,
  type LockedCommand,
  readJournal,
  type Recovery,
  recoveryFor,
  removeStaleFiles,
} from "./transaction";
import { parseHubState, StateError } from "../../model/state-schema";
import { collectStatus, formatStatus } from "./status";
import { pushSaved, serveRelay } from "./tcp-relay/serve";
import { sessionsTick, watchSessions } from "./session-watch";
import { serveFilter, redirectOff, redirectOn } from "./dns-filter";
import { realRunner } from "../../lib/runner";
import { formatDirectPaths, readDirectStatus, serveDiscovery } from "./discovery";

/** How long a refresh may spend downloading, within the refresh unit's 20-minute TimeoutStartSec. */
const REFRESH_DOWNLOAD_BUDGET_MS = 15 * 60_000;

export interface CliIo {
  readonly stdin: () => Promise<string>;
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

const USAGE = `usage:
  cloudpal-agent apply                  read the hub state (JSON) on stdin, persist it, make the hub match it
  cloudpal-agent reconcile              make the hub match the persisted state (run at boot)
  cloudpal-agent blocklists refresh     download the DNS blocklists and apply them (keeps the last good copy)
  cloudpal-agent sessions watch|tick    give "session" devices a new public IPv6 at each new session
  cloudpal-agent tcp serve              run the TCP path relay (the cloudpal-tcp unit, as its own user)
  cloudpal-agent tcp push               give the running relay the saved state's keys (the unit's ExecStartPost)
  cloudpal-agent status                 peers (handshake, transfer, endpoint), service health, direct paths
  cloudpal-agent discovery              serve endpoint discovery for device helpers (runs until stopped)
  cloudpal-agent dns-filter serve       run the DNS filter (the cloudpal-dns-filter unit)
  cloudpal-agent dns-filter redirect on|off
                                        send the tunnel's DNS to the filter, or back to unbound (the unit's hooks)
  cloudpal-agent peer config NAME [--qr] [--endpoint HOST:PORT] [--port PORT]
                                        a device's WireGuard config (PrivateKey left for the device to fill);
                                        --port: dial one of the hub's extra WireGuard ports instead
`;

/**
 * Runs a command that changes the hub under the hub lock (lock.ts), after removing what interrupted writes
 * left and reading the journal an interrupted command left (transaction.ts). `body` starts the journal itself,
 * once it knows it will change something, and ends it when the hub matches the saved state.
 */
async function locked<T>(
  ctx: AgentContext,
  command: LockedCommand,
  body: (recovery: Recovery) => Promise<T>,
): Promise<T> {
  const paths = ctx.options.paths;
  const lock = await acquireHubLock(paths);
  try {
    for (const file of removeStaleFiles(paths)) ctx.log(`[!] removed ${file}, left by an interrupted write`);
    const recovery = recoveryFor(readJournal(paths), command);
    if (recovery.note) ctx.log(recovery.note);
    return await body(recovery);
  } finally {
    lock.release();
  }
}

/** The saved state made live again, comparing with what is loaded; ends the journal of an interrupted run. */
async function finishSaved(ctx: AgentContext, command: "reconcile" | "other"): Promise<string[]> {
  // An interrupted first apply that never saved its state changed nothing that a state describes.
  if (command === "other" && readIfExists(ctx.options.paths.stateFile) === undefined) {
    endJournal(ctx.options.paths);
    return [];
  }
  const state = parseHubState(loadPersistedState(ctx));
  beginJournal(ctx.options.paths, "reconcile");
  const changes = await reconcile(ctx, state, { verifyLive: true });
  endJournal(ctx.options.paths);
  return changes;
}

export async function runCli(argv: readonly string[], ctx: AgentContext, io: CliIo): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        qr: { type: "boolean" },
        endpoint: { type: "string" },
        port: { type: "string" },
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
        // Read and validated before waiting for the lock: a bad state is refused at once.
        const state = parseHubState(await io.stdin());
        const changes = await locked(ctx, "apply", async (recovery) => {
          const paths = ctx.options.paths;
          assertSecretStorage(paths);
          const renders = renderAll(ctx, state);
          try {
            await prevalidate(ctx, renders);
          } catch (e) {
            // Refused: the saved state stays, and an interrupted earlier run is still finished.
            if (recovery.note) await finishSaved(ctx, "other");
            throw e;
          }
          // The journal first: from here on, a crash leaves a trace the next command acts on.
          beginJournal(paths, "apply");
          persistState(ctx, state);
          const done = await reconcile(ctx, state, { verifyLive: recovery.verifyLive, renders });
          endJournal(paths);
          return done;
        });
        io.stdout(changes.length > 0 ? `applied: ${changes.join(", ")}\n` : "applied: nothing changed\n");
        return 0;
      }
      case "reconcile": {
        if (sub !== undefined) break;
        // Always against what is live (recoveryFor): this is the boot unit and the repair for any drift.
        const changes = await locked(ctx, "reconcile", () => finishSaved(ctx, "reconcile"));
        io.stdout(
          changes.length > 0 ? `reconciled: ${changes.join(", ")}\n` : "reconciled: nothing changed\n",
        );
        return 0;
      }
      case "blocklists": {
        if (sub !== "refresh" || name !== undefined) break;
        const before = parseHubState(loadPersistedState(ctx));
        const bounds = { maxBytes: ctx.options.blocklistMaxBytes, timeoutMs: ctx.options.blocklistTimeoutMs };
        // Downloads run outside the lock (they may take a minute); each stored copy is replaced atomically.
        const results = [];
        // The unit's TimeoutStartSec is 20 minutes (cloud-init/units.ts): downloads stop after 15, so the
        // locked load below always runs; a list not reached keeps its last good copy.
        const deadline = Date.now() + REFRESH_DOWNLOAD_BUDGET_MS;
        // The hub's lists and every group's (site-policy.ts), each once.
        for (const url of allBlocklistUrls(before)) {
          if (Date.now() > deadline) {
            results.push({
              ok: false,
              message: `${url}: not downloaded: the refresh spent its ${REFRESH_DOWNLOAD_BUDGET_MS / 60_000}-minute download budget; the last good copy stays in use`,
            });
            continue;
          }
          results.push(await refreshOne(ctx.options.paths.blocklistDir, url, bounds));
        }
        for (const r of results) (r.ok ? io.stdout : io.stderr)(`${r.ok ? "" : "[!] "}${r.message}\n`);
        let pending = false;
        const changes = await locked(ctx, "blocklists refresh", async (recovery) => {
          // Read again under the lock: an apply that landed during the download is the state to keep.
          const state = parseHubState(loadPersistedState(ctx));
          if (recovery.note) {
            // An interrupted command is pending. The refresh unit's sandbox (ProtectSystem=strict) cannot
            // write /etc/nftables.conf, so it finishes only its own part, against what unbound has live, and
            // leaves the journal for `reconcile` (the boot unit, or by hand).
            pending = true;
            return reconcileUnbound(ctx, state, { verifyLive: true });
          }
          beginJournal(ctx.options.paths, "blocklists refresh");
          const done = await reconcileUnbound(ctx, state);
          endJournal(ctx.options.paths);
          return done;
        });
        io.stdout(changes.length > 0 ? `applied: ${changes.join(", ")}\n` : "applied: nothing changed\n");
        if (pending)
          io.stderr(
            "[!] an interrupted apply is still pending: WireGuard and the firewall are finished by 'cloudpal-agent reconcile' (run it now, or it runs at the next boot).\n",
          );
        // Failing the unit makes a dead source or a pending apply visible in `systemctl status`; the filter
        // itself stays on.
        return results.every((r) => r.ok) && !pending ? 0 : 1;
      }
      case "sessions": {
        // The public-IPv6 session watcher (agent/src/session-watch.ts): `watch` runs as a service, `tick` once.
        if (sub === "tick" && name === undefined) {
          const started = await sessionsTick(ctx);
          io.stdout(started.length > 0 ? `new session: ${started.join(", ")}\n` : "no new session\n");
          return 0;
        }
        if (sub === "watch" && name === undefined) return await watchSessions(ctx, 1000, io.stdout);
        break;
      }
      case "tcp": {
        if (sub === "serve" && name === undefined) return await serveRelay(ctx);
        if (sub === "push" && name === undefined) {
          io.stdout(await pushSaved(ctx));
          return 0;
        }
        break;
      }
      case "status": {
        if (sub !== undefined) break;
        const state = parseHubState(loadPersistedState(ctx));
        const status = await collectStatus(ctx, state);
        io.stdout(formatStatus(status, Math.floor(Date.now() / 1000)));
        const paths = formatDirectPaths(state, readDirectStatus(ctx.options), Date.now());
        if (paths.length > 0) io.stdout(`direct paths:\n${paths.join("\n")}\n`);
        return status.services.every((s) => s.healthy) ? 0 : 1;
      }
      case "discovery": {
        if (sub !== undefined) break;
        // Its own quiet runner: it reads `wg show` twice a second while helpers wait, which the log need not hold.
        const server = await serveDiscovery(
          ctx.options,
          realRunner(() => undefined),
          ctx.log,
        );
        await new Promise<void>((resolve) => {
          process.once("SIGTERM", resolve);
          process.once("SIGINT", resolve);
        });
        await server.close();
        return 0;
      }
      case "dns-filter": {
        // Before the first apply there is no state: nothing to serve, nothing to redirect (no tunnel yet).
        const saved = readIfExists(ctx.options.paths.stateFile);
        if (sub === "serve" && name === undefined) {
          if (saved === undefined) {
            io.stderr("no hub state yet: the DNS filter starts after the first apply\n");
            await new Promise((r) => setTimeout(r, 5000));
            return 1;
          }
          return await serveFilter(ctx, parseHubState(saved));
        }
        if (sub === "redirect" && name === "on" && rest.length === 0) {
          if (saved !== undefined) await redirectOn(ctx, parseHubState(saved));
          return 0;
        }
        if (sub === "redirect" && name === "off" && rest.length === 0) {
          await redirectOff(ctx);
          return 0;
        }
        break;
      }
      case "peer": {
        if (sub !== "config" || name === undefined || rest.length > 0) break;
        const state = parseHubState(loadPersistedState(ctx));
        const text = peerClientConfig(state, name, parsed.values.endpoint, parsed.values.port);
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
