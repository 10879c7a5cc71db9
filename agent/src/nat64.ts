/**
 * NAT64 + DNS64 on the hub (model/nat64.ts): while some device has `nat64`, the agent writes tayga's and the
 * DNS64 resolver's configs and keeps their units (cloud-init/units.ts) enabled and running; when the last
 * nat64 device goes, it stops and disables them and removes the configs. Idempotent: the same state changes
 * nothing and runs nothing. The firewall side (the DNS redirect, the translator's forward and NAT rules) is in
 * the ruleset (agent/src/nftables-ruleset.ts), applied in the same reconcile.
 */
import { rmSync } from "fs";
import { readIfExists, writeFileAtomic } from "../../lib/atomic-file";
import { NAT64, nat64Wanted, renderDns64Config, renderTaygaConfig } from "../../model/nat64";
import type { HubState } from "../../model/state";
import type { Logger, Runner } from "../../lib/runner";
import type { AgentOptions } from "./options";

/** reconcile.ts AgentContext, restated: reconcile imports this module. */
interface Nat64Context {
  readonly options: AgentOptions;
  readonly runner: Runner;
  readonly log: Logger;
}

const UNITS = [NAT64.units.translator, NAT64.units.dns64];

/** Returns whether anything changed. */
export async function reconcileNat64(ctx: Nat64Context, state: HubState): Promise<boolean> {
  const { taygaConfig, dns64Config } = ctx.options.paths;
  const control = ctx.options.serviceControl;
  const run = (args: string[]) => ctx.runner.run(control[0], [...control.slice(1), ...args]);
  if (!nat64Wanted(state)) {
    if (readIfExists(taygaConfig) === undefined && readIfExists(dns64Config) === undefined) return false;
    await run(["disable", "--now", ...UNITS]);
    rmSync(taygaConfig, { force: true });
    rmSync(dns64Config, { force: true });
    ctx.log("nat64: no device uses NAT64 any more; translator and DNS64 stopped");
    return true;
  }
  const files: [string, string][] = [
    [taygaConfig, renderTaygaConfig(ctx.options.paths.nat64DataDir)],
    // Port 53 on the hub's tunnel address: the DNS filter's output redirect sends the hub's own queries there to
    // the filter while it runs, and unbound answers them (unfiltered) while it is down, as for every device.
    [dns64Config, renderDns64Config(state.hub, 53)],
  ];
  const changed = files.filter(([file, text]) => readIfExists(file) !== text);
  if (changed.length === 0) return false;
  // Readable by the unbound user the DNS64 resolver drops to; nothing secret in either file.
  for (const [file, text] of changed) writeFileAtomic(file, text, 0o644, 0o755);
  try {
    await run(["enable", ...UNITS]);
    await run(["restart", ...UNITS]);
  } catch (e) {
    // Taken back, so the next apply sees the files changed and tries again: the same files with units that
    // never started would otherwise look done forever.
    for (const [file] of changed) rmSync(file, { force: true });
    throw e;
  }
  ctx.log(`nat64: translator and DNS64 ${changed.length === files.length ? "started" : "restarted"}`);
  return true;
}
