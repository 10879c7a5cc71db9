/**
 * `npm run plan [-- --stack NAME]`: what `pulumi up` would create for a stack, offline. It reads
 * stacks/Pulumi.<stack>.yaml, runs the real program (index.ts) under deterministic mocks, and prints the
 * resources as a tree with their key properties. No cloud account, no Pulumi CLI, no network.
 *
 * Secrets are never printed: every value Pulumi marks secret shows as [secret]. The SSH private key is not
 * needed offline; when the stack has none (or only its encrypted form), a placeholder stands in.
 */
import { readdirSync, readFileSync } from "fs";
import * as path from "path";
import { parseArgs } from "util";
import * as pulumi from "@pulumi/pulumi";
import { parse, YAMLError } from "yaml";
import { ConfigError, readStackConfig } from "../components/config";
import { ChangeError, planChange } from "../simulate/report";
import { installMocks, type Registered, settle, valueOf } from "./mocks";

const ROOT = path.join(__dirname, "..");
const STACKS = path.join(ROOT, "stacks");
const DEFAULT_STACK = "example-digitalocean";
const NAMESPACE = "cloudpal";
/** Shaped like a key so the program's check passes; never used to log in anywhere. */
const PRIVATE_KEY_PLACEHOLDER =
  "-----BEGIN PRIVATE KEY-----\n(offline plan placeholder: no SSH private key is needed)\n-----END PRIVATE KEY-----\n";

export class PlanError extends Error {}

function availableStacks(dir: string): string[] {
  return readdirSync(dir)
    .map((f) => /^Pulumi\.(.+)\.ya?ml$/.exec(f)?.[1])
    .filter((s): s is string => s !== undefined)
    .sort();
}

/** The stack file's `config:` as Pulumi passes it to a program: flat keys, structured values as JSON. */
export function readStackFile(
  stack: string,
  dir: string = STACKS,
): { config: Record<string, string>; secretKeys: string[] } {
  const file = path.join(dir, `Pulumi.${stack}.yaml`);
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    throw new PlanError(
      `'--stack' (${JSON.stringify(stack)}) has no stack file ${path.relative(ROOT, file)}: use one of ${availableStacks(dir).join(", ")}.`,
    );
  }
  let doc: { config?: Record<string, unknown> };
  try {
    doc = (parse(text) ?? {}) as { config?: Record<string, unknown> };
  } catch (e) {
    // One line naming the file and the line: the YAML library's own message says what it expected there.
    if (e instanceof YAMLError) {
      const at = e.linePos?.[0];
      const where = at ? `:${at.line}:${at.col}` : "";
      throw new PlanError(
        `${path.relative(process.cwd(), file)}${where}: not valid YAML: ${e.message.split("\n")[0].replace(/:$/, "")}. Fix that line, then run the plan again.`,
      );
    }
    throw e;
  }
  const config: Record<string, string> = {};
  for (const [key, value] of Object.entries(doc.config ?? {})) {
    config[key] = typeof value === "string" ? value : JSON.stringify(value);
  }
  const privateKey = `${NAMESPACE}:sshPrivateKey`;
  const stored = doc.config?.[privateKey];
  // An encrypted value ({secure: ...}) cannot be read without the passphrase, and is not needed here.
  if (typeof stored !== "string") config[privateKey] = PRIVATE_KEY_PLACEHOLDER;
  // A key written in plain text stays plain here, so the program refuses it exactly as `pulumi up` would.
  return { config, secretKeys: typeof stored === "string" ? [] : [privateKey] };
}

function summarise(key: string, value: unknown): string {
  if (value === "[secret]") return "[secret]";
  if (typeof value === "string") {
    if (key === "userData" || value.length > 90) {
      const firstLine = value.split("\n")[0];
      return `${JSON.stringify(firstLine.length > 60 ? `${firstLine.slice(0, 57)}...` : firstLine)} (${value.length} bytes)`;
    }
    return JSON.stringify(value);
  }
  const text = JSON.stringify(value);
  return text.length > 100 ? `${text.slice(0, 97)}...` : text;
}

function describe(r: Registered, indent: string): string[] {
  const lines: string[] = [];
  for (const [key, value] of Object.entries(r.masked).sort(([a], [b]) => a.localeCompare(b))) {
    if (Array.isArray(value) && value.some((v) => typeof v === "object" && v !== null)) {
      lines.push(`${indent}${key}:`);
      for (const item of value) lines.push(`${indent}  - ${summarise(key, item)}`);
    } else {
      lines.push(`${indent}${key}: ${summarise(key, value)}`);
    }
  }
  return lines;
}

/** Components own the resources named after them ("hub" owns "hub-droplet"). */
function renderTree(resources: readonly Registered[]): string {
  const components = resources.filter((r) => r.type.startsWith(`${NAMESPACE}:`));
  const ownerOf = (r: Registered) =>
    components
      .filter((c) => c !== r && r.name.startsWith(`${c.name}-`))
      .sort((a, b) => b.name.length - a.name.length)[0];
  const lines: string[] = [];
  const print = (r: Registered, prefix: string, last: boolean, top: boolean) => {
    const branch = top ? "" : last ? "└─ " : "├─ ";
    lines.push(`${prefix}${branch}${r.type}  ${r.name}`);
    const childPrefix = top ? "" : prefix + (last ? "   " : "│  ");
    const children = resources.filter((c) => ownerOf(c) === r);
    const propsPrefix = childPrefix + (children.length > 0 ? "│    " : "     ");
    if (!top) lines.push(...describe(r, propsPrefix));
    children.forEach((c, i) => print(c, childPrefix, i === children.length - 1, false));
  };
  for (const r of resources.filter((x) => ownerOf(x) === undefined)) print(r, "", true, true);
  return lines.join("\n");
}

async function outputsOf(program: Record<string, unknown>): Promise<string[]> {
  const lines: string[] = [];
  for (const [name, value] of Object.entries(program)) {
    if (!pulumi.Output.isInstance(value)) {
      lines.push(`  ${name}: ${JSON.stringify(value)}`);
      continue;
    }
    const output = value as pulumi.Output<unknown>;
    const resolved = await valueOf(output);
    if (await pulumi.isSecret(output)) {
      const keys =
        resolved && typeof resolved === "object" ? ` (${Object.keys(resolved).join(", ") || "none"})` : "";
      lines.push(`  ${name}: [secret]${keys}`);
    } else {
      lines.push(`  ${name}: ${resolved === undefined ? "(none)" : JSON.stringify(resolved)}`);
    }
  }
  return lines;
}

/** Plans one stack: the text to print and the exit code. Loads index.ts, so call it once per process. */
export async function plan(stack: string, dir: string = STACKS): Promise<{ code: number; text: string }> {
  const { config, secretKeys } = readStackFile(stack, dir);
  const recorder = installMocks(pulumi, { project: NAMESPACE, stack, preview: false });
  pulumi.runtime.setAllConfig(config, secretKeys);
  let program: Record<string, unknown>;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- the program must load after the mocks
    program = require("../index") as Record<string, unknown>;
  } catch (e) {
    if (e instanceof Error && (e.name === "ConfigError" || pulumi.RunError.isInstance(e))) {
      return { code: 1, text: `Stack ${stack}: nothing would be created.\n${e.message}\n` };
    }
    throw e;
  }
  const outputs = await outputsOf(program);
  await settle(recorder);
  return {
    code: 0,
    text:
      `Plan for stack ${stack} (offline, under mocks: ids and addresses are placeholders from documentation ranges)\n\n` +
      `${renderTree(recorder.registered)}\n\n` +
      `${recorder.registered.length} resources\n\nOutputs:\n${outputs.join("\n")}\n`,
  };
}

const USAGE =
  "usage: npm run plan -- [--stack NAME] [--change KEY=VALUE ...] [--replace RESOURCE ...]  (or: npm run plan NAME)";

/** The stack to plan: `--stack NAME`, a bare `NAME` (`npm run plan example-linode`), or npm's own `--stack`. */
export function parseCli(argv: readonly string[]): { stack: string; change: string[]; replace: string[] } {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        stack: { type: "string" },
        change: { type: "string", multiple: true },
        replace: { type: "string", multiple: true },
      },
    });
  } catch (e) {
    throw new PlanError(`${e instanceof Error ? e.message : String(e)}\n${USAGE}`);
  }
  const { values, positionals } = parsed;
  if (positionals.length > 1 || (positionals.length === 1 && values.stack !== undefined)) {
    throw new PlanError(
      `name one stack, not ${JSON.stringify([values.stack, ...positionals].filter(Boolean))}.\n${USAGE}`,
    );
  }
  // `npm run plan --stack x` (no `--`) hands --stack to npm, which exports it as npm_config_stack.
  const stack = values.stack ?? positionals[0] ?? process.env.npm_config_stack ?? DEFAULT_STACK;
  return { stack, change: values.change ?? [], replace: values.replace ?? [] };
}

async function main(): Promise<number> {
  const cli = parseCli(process.argv.slice(2));
  if (cli.change.length > 0 || cli.replace.length > 0) {
    const { config } = readStackFile(cli.stack);
    try {
      const { code, text } = await planChange(cli.stack, readStackConfig(config), cli.change, cli.replace);
      (code === 0 ? process.stdout : process.stderr).write(text);
      return code;
    } catch (e) {
      if (e instanceof ConfigError || e instanceof ChangeError) {
        process.stderr.write(`Stack ${cli.stack}: the change cannot be planned.\n${e.message}\n`);
        return 1;
      }
      throw e;
    }
  }
  const { code, text } = await plan(cli.stack);
  (code === 0 ? process.stdout : process.stderr).write(text);
  return code;
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(
        `${e instanceof PlanError ? e.message : e instanceof Error ? e.stack : String(e)}\n`,
      );
      process.exit(1);
    },
  );
}
