/**
 * `npm run device -- NAME [--qr] [--out FILE] [--port PORT] [--stack STACK]`: a device's WireGuard config from
 * the stack's outputs, as text, as a QR code in the terminal (scan it with the WireGuard app), or as a 0600 file.
 * `npm run device -- --list` names the devices. `--port 443` gives the same config (same keys, same addresses)
 * dialling one of the hub's extra WireGuard ports (the `wireguardPorts` output), for networks that let only UDP
 * 443 or 53 out. `--tcp` prints the device's `ss://` access key for the TCP path instead (the `tcpAccessKeys`
 * output), for networks that let only TCP 443 out: paste it, or scan it with `--qr`, in an Outline client app.
 * `--helper --out FILE` writes the device's installer for the direct-connection helper (device/installer.ts).
 *
 * The configs are secret stack outputs; they are read with `pulumi stack output --show-secrets` through the
 * project's one process runner, so the keys only ever pass through a pipe, never argv or a log.
 */
import { parseArgs } from "util";
import * as QRCode from "qrcode";
import { buildHelperBundle } from "../components/helper-bundle";
import { InstallerError, renderInstaller } from "../device/installer";
import { writeFileAtomic } from "../lib/atomic-file";
import { CommandError, realRunner, type Runner } from "../lib/runner";
import { clientConfigWithPort } from "../model/client-config";
import { devicePortProblem, parsePortOption } from "../model/public-ports";

export class DeviceError extends Error {}

/** Parses `pulumi stack output clientConfigs --json` and picks one device, with a helpful error. */
export function pickConfig(outputJson: string, name: string): string {
  const configs = parseConfigs(outputJson);
  const config = configs[name];
  if (config === undefined) {
    const known = Object.keys(configs).sort();
    throw new DeviceError(
      `device ${JSON.stringify(name)} is not in this stack's 'cloudpal:peers': known devices are ${known.length ? known.join(", ") : "(none)"}. Add it under 'cloudpal:peers' and run 'pulumi up' first.`,
    );
  }
  return config;
}

export function parseConfigs(outputJson: string): Record<string, string> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(outputJson);
  } catch {
    throw new DeviceError(
      "'pulumi stack output clientConfigs --json' did not print JSON: has 'pulumi up' run?",
    );
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new DeviceError(
      "the stack output 'clientConfigs' is not a map of device name to config: has 'pulumi up' run?",
    );
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(parsed)) if (typeof v === "string") out[k] = v;
  return out;
}

/** The device's `ss://` key from `pulumi stack output tcpAccessKeys --json`, with a helpful error. */
export function pickTcpKey(outputJson: string, name: string): string {
  let keys: Record<string, string>;
  try {
    keys = parseConfigs(outputJson);
  } catch {
    keys = {};
  }
  const key = keys[name];
  if (key === undefined)
    throw new DeviceError(
      `device ${JSON.stringify(name)} has no TCP-path key in this stack: the path is off ('cloudpal:tcpPath' is false) or 'pulumi up' has not run since it was turned on; set 'cloudpal:tcpPath' to true and run 'pulumi up'.`,
    );
  return key;
}

export function renderQr(config: string): Promise<string> {
  return QRCode.toString(config, { type: "terminal", small: true, errorCorrectionLevel: "M" });
}

const USAGE =
  "'npm run device -- laptop [--qr] [--out laptop.conf] [--port 443 | --tcp] [--stack STACK]', or '--list'";
const INSTALL_PULUMI = "https://www.pulumi.com/docs/install/";

function parse(argv: readonly string[]) {
  try {
    return parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        qr: { type: "boolean", default: false },
        list: { type: "boolean", default: false },
        out: { type: "string" },
        port: { type: "string" },
        tcp: { type: "boolean", default: false },
        helper: { type: "boolean", default: false },
        stack: { type: "string" },
      },
    });
  } catch (e) {
    // node's own words ("Unknown option '--qrr'") name the argument; the usage says what works.
    throw new DeviceError(`${(e as Error).message.split(/\.( |$)/)[0]}: use ${USAGE}.`);
  }
}

/** A stack output as JSON text, with the Pulumi CLI's failures said in one line each. */
async function readOutputs(
  runner: Runner,
  stack: string | undefined,
  output = "clientConfigs",
): Promise<string> {
  const args = [
    "stack",
    "output",
    output,
    "--json",
    ...(output === "clientConfigs" || output === "tcpAccessKeys" ? ["--show-secrets"] : []),
  ];
  if (stack) args.push("--stack", stack);
  try {
    return (await runner.run("pulumi", args)).stdout;
  } catch (e) {
    if (!(e instanceof CommandError)) throw e;
    if (/\bENOENT\b/.test(e.result.stderr))
      throw new DeviceError(
        `the Pulumi CLI ('pulumi') is not installed or not on PATH: install it (${INSTALL_PULUMI}), run 'pulumi login', then run this again.`,
      );
    const said = e.result.stderr.trim().split("\n")[0] || `exit ${e.result.code}`;
    throw new DeviceError(
      `'pulumi stack output ${output}' failed (${said}): pick the stack with '--stack NAME' (see 'pulumi stack ls'), and run 'pulumi up' on it first.`,
    );
  }
}

function parsePort(text: string): number {
  try {
    return parsePortOption(text);
  } catch (e) {
    throw new DeviceError((e as Error).message);
  }
}

/** The ports the stack's hub answers WireGuard on (the `wireguardPorts` output), as a list of numbers. */
export function parsePorts(outputJson: string): number[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(outputJson);
  } catch {
    parsed = undefined;
  }
  if (!Array.isArray(parsed) || parsed.length === 0 || !parsed.every((p) => Number.isInteger(p)))
    throw new DeviceError(
      "the stack output 'wireguardPorts' is not a list of ports: run 'pulumi up' with this version of CloudPal first.",
    );
  return parsed as number[];
}

/** The config dialling `port`, if the hub answers WireGuard there; otherwise the ports it does answer on. */
async function withPort(config: string, port: number, runner: Runner, stack: string | undefined) {
  const ports = parsePorts(await readOutputs(runner, stack, "wireguardPorts"));
  const problem = devicePortProblem(port, ports);
  if (problem !== undefined) throw new DeviceError(`'--port' (${port}) ${problem}.`);
  return clientConfigWithPort(config, port);
}

export async function main(argv: readonly string[], runner: Runner): Promise<void> {
  const { values, positionals } = parse(argv);
  const stdout = await readOutputs(runner, values.stack);
  if (values.list) {
    process.stdout.write(Object.keys(parseConfigs(stdout)).sort().join("\n") + "\n");
    return;
  }
  const name = positionals[0];
  if (!name) throw new DeviceError(`name a device: ${USAGE}.`);
  const port = values.port !== undefined ? parsePort(values.port) : undefined;
  let config = pickConfig(stdout, name);
  if (values.tcp) {
    if (port !== undefined)
      throw new DeviceError(
        "'--port' and '--tcp' do not go together: '--port' picks a WireGuard port, '--tcp' prints the TCP-path key (its port is 'cloudpal:tcpPort').",
      );
    const key = pickTcpKey(await readOutputs(runner, values.stack, "tcpAccessKeys"), name);
    // The QR code holds the bare URI (an app would take a newline as part of it); text and files end in one.
    config = values.qr && !values.out ? key : key + "\n";
  }
  if (values.helper) {
    if (!values.out)
      throw new DeviceError(
        `'--helper' writes an installer that holds the device's private key: name the file, e.g. '--helper --out ${name}-install.sh'.`,
      );
    if (values.qr || port !== undefined)
      throw new DeviceError("'--helper' goes with '--out FILE' only (not with '--qr' or '--port').");
    try {
      config = renderInstaller(name, config, buildHelperBundle().code);
    } catch (e) {
      if (e instanceof InstallerError) throw new DeviceError(e.message);
      throw e;
    }
  }
  if (port !== undefined) config = await withPort(config, port, runner, values.stack);
  if (values.out) {
    try {
      writeFileAtomic(values.out, config, 0o600);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
      throw new DeviceError(
        `'--out' (${JSON.stringify(values.out)}) cannot be written (${code}): name a file in a directory that exists and you can write to.`,
      );
    }
    process.stderr.write(`wrote ${values.out} (mode 0600)\n`);
  } else if (values.qr) {
    process.stdout.write(await renderQr(config));
  } else {
    process.stdout.write(config);
  }
}

if (require.main === module) {
  // Quiet runner: the one line below is all the user needs; no stack trace for a user's mistake.
  main(
    process.argv.slice(2),
    realRunner(() => undefined),
  ).catch((e: unknown) => {
    const message = e instanceof Error ? e.message : String(e);
    process.stderr.write(`${e instanceof DeviceError ? message : message.split("\n")[0]}\n`);
    process.exit(1);
  });
}
