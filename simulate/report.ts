/**
 * `npm run plan -- --stack home --change region=ams3 [--replace hub-droplet]`: what `pulumi up` would replace,
 * create, update, delete and keep for a change to the stack, before the operator runs it, checked against the
 * providers' rules. Offline: the same mocks and engine model as the scenario tests.
 */
import { parse } from "yaml";
import type { Plan, Step, StepKind } from "./engine";
import { type Outcome, type RawConfig, runChange } from "./scenarios";

export class ChangeError extends Error {}

/** `KEY=VALUE` pairs onto the stack config; VALUE is YAML, so `region=ams3` and `peers=[{name: a}]` both work. */
export function applyChanges(raw: RawConfig, changes: readonly string[]): RawConfig {
  const next: RawConfig = { ...raw };
  for (const change of changes) {
    const eq = change.indexOf("=");
    if (eq <= 0) {
      throw new ChangeError(
        `'--change' (${JSON.stringify(change)}) is not KEY=VALUE: write e.g. --change region=ams3.`,
      );
    }
    const key = change.slice(0, eq).replace(/^cloudpal:/, "");
    const text = change.slice(eq + 1);
    let value: unknown;
    try {
      value = parse(text);
    } catch {
      value = text;
    }
    if (value === null || value === "") delete next[key];
    else next[key] = value;
  }
  return next;
}

/** A resource named by its short name (`hub-droplet`) or by `type::name`. */
export function resolveReplace(names: readonly string[], urns: readonly string[]): string[] {
  return names.map((n) => {
    const found = urns.filter((u) => u === n || u.endsWith(`::${n}`));
    if (found.length !== 1) {
      const known = urns.map((u) => u.split("::")[1]).join(", ");
      throw new ChangeError(
        `'--replace' (${JSON.stringify(n)}) names no resource of this stack: use one of ${known}.`,
      );
    }
    return found[0];
  });
}

const HEADINGS: readonly [StepKind, string][] = [
  ["replace-create", "Replaced (a new one is made)"],
  ["create", "Created"],
  ["update", "Updated in place"],
  ["delete", "Deleted"],
  ["retain", "Left in your account, dropped from the state (retainOnDelete): release it by hand when done"],
];

function lines(steps: readonly Step[], kind: StepKind): string[] {
  return steps.filter((s) => s.kind === kind).map((s) => `  ${s.urn.replace("::", "  ")}\n      ${s.why}`);
}

export function renderOutcome(
  stack: string,
  changes: readonly string[],
  replace: readonly string[],
  o: Outcome,
): string {
  const plan: Plan = o.plan;
  const out: string[] = [
    `Change for stack ${stack}: ${[...changes, ...replace.map((r) => `--replace ${r}`)].join(" ") || "(none)"}`,
    "(offline: the program under mocks, each step checked against the providers' rules in simulate/rules.ts)",
    "",
  ];
  for (const [kind, heading] of HEADINGS) {
    const found = lines(plan.steps, kind);
    if (found.length > 0) out.push(`${heading}:`, ...found, "");
  }
  const touched = new Set(plan.steps.map((s) => s.urn));
  const kept = o.after.snapshot.resources.filter((r) => !touched.has(r.urn)).length;
  out.push(`Kept as they are: ${kept} resources.`, "");
  const devices = Object.keys(o.after.outputs.clientConfigs).sort();
  if (o.before.outputs.endpoint !== o.after.outputs.endpoint) {
    out.push(
      `Endpoint: ${o.before.outputs.endpoint} -> ${o.after.outputs.endpoint} (placeholder addresses): devices need the new Endpoint line unless they use 'endpointHostname'.`,
    );
  }
  if (o.problems.length === 0) {
    out.push(
      `Devices (${devices.join(", ") || "none"}) keep their keys and addresses. No step clashes with a provider rule.`,
    );
  } else {
    out.push("Problems: `pulumi up` would fail or break devices:", ...o.problems.map((p) => `  - ${p}`));
  }
  return `${out.join("\n")}\n`;
}

export async function planChange(
  stack: string,
  raw: RawConfig,
  changes: readonly string[],
  replaceNames: readonly string[],
): Promise<{ code: number; text: string }> {
  const next = applyChanges(raw, changes);
  let targets: string[] = [];
  const outcome = await runChange(raw, next, (before) => {
    targets = resolveReplace(
      replaceNames,
      before.resources.map((r) => r.urn),
    );
    return targets;
  });
  return {
    code: outcome.problems.length === 0 ? 0 : 1,
    text: renderOutcome(stack, changes, targets, outcome),
  };
}
