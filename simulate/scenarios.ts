/**
 * The operator runbook's scenarios (README "Runbook"), each as a change from one stack state to the next, and
 * the promises every one of them must keep: the engine and the providers accept every step, nothing
 * protected is replaced or deleted, and every device keeps its keys and its addresses. `npm test` runs them
 * for every provider (test/scenarios.test.ts); `npm run plan -- --change KEY=VALUE` runs the user's own.
 */
import { loadConfig } from "../components/config";
import { capture, type Capture } from "./capture";
import { type Plan, simulate, type Snapshot, urnOf } from "./engine";

export type RawConfig = Record<string, unknown>;

export interface Scenario {
  readonly name: string;
  /** The stack config after the change (the operator's edit of the stack file). */
  readonly change: (raw: RawConfig) => RawConfig;
  /** Resources the operator names with `pulumi up --replace`, given the stack as it is. */
  readonly replace?: (before: Snapshot) => string[];
  /** The hub's WireGuard key changes on purpose (rotation): devices then need their configs again. */
  readonly rotatesHubKey?: boolean;
}

export interface Outcome {
  readonly before: Capture;
  readonly after: Capture;
  readonly plan: Plan;
  /** Promises broken, one sentence each; empty when the scenario is safe. */
  readonly problems: readonly string[];
}

const RANDOM_BYTES = "random:index/randomBytes:RandomBytes";

/** The resource that is the machine itself, for `--replace` (none for an existing server). */
export function machineUrn(snapshot: Snapshot): string[] {
  const machines = new Set([
    "digitalocean:index/droplet:Droplet",
    "linode:index/instance:Instance",
    "vultr:index/instance:Instance",
  ]);
  return snapshot.resources.filter((r) => machines.has(r.type)).map((r) => r.urn);
}

/** A client config without the lines a move may change: the endpoint (and the hub key on rotation). */
function stableLines(config: string, rotatesHubKey: boolean): string {
  return config
    .split("\n")
    .filter((l) => !/^Endpoint\s*=/.test(l) && !(rotatesHubKey && /^PublicKey\s*=/.test(l)))
    .join("\n");
}

/** Checks the promises of a runbook step: what the engine would do and what devices would see. */
export function problemsOf(
  before: Capture,
  after: Capture,
  plan: Plan,
  options: { rotatesHubKey?: boolean } = {},
): string[] {
  const problems = plan.violations.map((v) => v.message);
  const touched = new Map(plan.steps.map((s) => [s.urn, s.kind]));
  for (const r of before.snapshot.resources) {
    const kind = touched.get(r.urn);
    const deviceKey = r.type === RANDOM_BYTES && r.name.startsWith("hub-peer-");
    const hubKey = r.type === RANDOM_BYTES && r.name === "hub-wireguard-key";
    const removedDevice = plan.removed.includes(r.urn);
    if (deviceKey && kind !== undefined && !removedDevice) {
      problems.push(`${r.urn} (a device's key) would be ${kind}d: that device's config would stop working`);
    }
    if (hubKey && kind !== undefined && !options.rotatesHubKey) {
      problems.push(`${r.urn} (the hub's key) would be ${kind}d: every device's config would stop working`);
    }
  }
  for (const [device, config] of Object.entries(before.outputs.clientConfigs)) {
    const next = after.outputs.clientConfigs[device];
    if (next === undefined) continue; // the device was removed on purpose
    if (
      stableLines(next, options.rotatesHubKey === true) !==
      stableLines(config, options.rotatesHubKey === true)
    ) {
      problems.push(`device ${JSON.stringify(device)}: its config would change beyond the Endpoint line`);
    }
  }
  return problems;
}

/** Runs one change from `raw` through the capture and the engine. */
export async function runChange(
  raw: RawConfig,
  next: RawConfig,
  replace: (before: Snapshot) => string[] = () => [],
  options: { rotatesHubKey?: boolean; from?: Capture } = {},
): Promise<Outcome> {
  const before = options.from ?? (await capture(loadConfig(raw)));
  const targets = replace(before.snapshot);
  const after = await capture(loadConfig(next), before.snapshot, targets);
  const plan = simulate(before.snapshot, after.snapshot, targets);
  return { before, after, plan, problems: problemsOf(before, after, plan, options) };
}

/** A first `pulumi up`: from an empty stack. */
export async function firstUp(raw: RawConfig): Promise<Outcome> {
  const empty: Capture = {
    snapshot: { resources: [] },
    outputs: { endpoint: "", hubPublicKey: "", clientConfigs: {} },
  };
  const after = await capture(loadConfig(raw), empty.snapshot);
  const plan = simulate(empty.snapshot, after.snapshot);
  return { before: empty, after, plan, problems: problemsOf(empty, after, plan) };
}

export const HUB_KEY_URN = urnOf(RANDOM_BYTES, "hub-wireguard-key");
