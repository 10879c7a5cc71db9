/**
 * What `pulumi up` would do to the cloud, step by step, going from one stack state to the next, and whether
 * each step is one the providers accept. Pure: it takes two snapshots of the program (every resource with its
 * inputs, id and options, in registration order) and the provider rules (simulate/rules.ts), and returns the
 * steps and every violation found.
 *
 * The engine model follows pulumi/pulumi v3.248.0 (pkg/resource/deploy/step_generator.go L1826-2038 for the
 * replace decision and order, L2159ff GenerateDeletes; step.go L584-631 for protect and retainOnDelete):
 * - resources are visited in registration order; a new one is created, a changed one updated, and one whose
 *   change touches a replace-forcing input (or that `--replace` names) is replaced;
 * - a replacement is create-before-delete unless the resource says `deleteBeforeReplace`: the new copy is
 *   created while the old one still exists, and the old one is deleted at the end of the update;
 * - a delete-before-replace first deletes the old resource and every dependent of it that is itself replaced
 *   or removed (dependents first), then creates the new one;
 * - resources the program no longer registers are deleted at the end, dependents first;
 * - a protected resource can be neither replaced (when both the state and the program say `protect`) nor
 *   deleted (the flag is read from the state): the engine stops; `retainOnDelete` removes a resource from the
 *   state but leaves it in the account, and is checked after protect.
 */
import { isDeepStrictEqual } from "util";
import { ruleFor, type ResourceRule } from "./rules";

export interface ResourceRecord {
  /** `type::name`: unique within a stack (the engine's URN, less the stack and project). */
  readonly urn: string;
  readonly type: string;
  readonly name: string;
  readonly id: string;
  /** Inputs as the provider receives them (secrets unwrapped). */
  readonly inputs: Readonly<Record<string, unknown>>;
  readonly protect: boolean;
  readonly retainOnDelete: boolean;
  /** The resource option; undefined when the program leaves it to the provider (rules.ts says what it asks). */
  readonly deleteBeforeReplace: boolean | undefined;
  readonly replaceOnChanges: readonly string[];
  /** URNs this resource depends on: parent, `dependsOn`, and every resource whose id or output it takes. */
  readonly dependsOn: readonly string[];
  /** Per input: the URNs whose id or outputs that input takes (the engine's property dependencies). */
  readonly inputDeps?: Readonly<Record<string, readonly string[]>>;
}

export interface Snapshot {
  /** In registration order. */
  readonly resources: readonly ResourceRecord[];
}

export type Decision =
  | { readonly kind: "create" }
  | { readonly kind: "same" }
  | { readonly kind: "update"; readonly changed: readonly string[] }
  | { readonly kind: "replace"; readonly changed: readonly string[]; readonly because: readonly string[] };

export type StepKind = "create" | "update" | "replace-create" | "delete" | "delete-replaced" | "retain";

export interface Step {
  readonly kind: StepKind;
  readonly urn: string;
  /** Why, in words: the inputs that changed and the rule that made a change a replacement. */
  readonly why: string;
}

export interface Violation {
  readonly urn: string;
  /** What the engine or the provider would answer, and why. */
  readonly message: string;
}

export interface Plan {
  readonly steps: readonly Step[];
  readonly violations: readonly Violation[];
  readonly decisions: ReadonlyMap<string, Decision>;
  /** In `before` and no longer in `after`. */
  readonly removed: readonly string[];
}

export const urnOf = (type: string, name: string): string => `${type}::${name}`;

/** Top-level input names whose values differ (a missing key and `undefined` are the same). */
export function changedInputs(
  before: Readonly<Record<string, unknown>>,
  after: Readonly<Record<string, unknown>>,
): string[] {
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  return [...keys].filter((k) => !isDeepStrictEqual(before[k], after[k])).sort();
}

/**
 * The engine's decision for one resource: create, leave, update in place, or replace. Used twice: by the
 * capture (so a replaced resource gets a new id, and a dependent that takes that id sees its input change, as
 * on a real `pulumi up`) and by the step generation below.
 */
export function decide(
  type: string,
  previous: { readonly inputs: Readonly<Record<string, unknown>> } | undefined,
  inputs: Readonly<Record<string, unknown>>,
  replaceOnChanges: readonly string[],
  forced: boolean,
): Decision {
  if (previous === undefined) return { kind: "create" };
  const changed = changedInputs(previous.inputs, inputs);
  const rule = ruleFor(type);
  const replacing = new Set([...rule.forceNew, ...replaceOnChanges]);
  const because = changed.filter((k) => replacing.has(k));
  if (forced) return { kind: "replace", changed, because: ["--replace", ...because] };
  if (because.length > 0) return { kind: "replace", changed, because };
  return changed.length > 0 ? { kind: "update", changed } : { kind: "same" };
}

/**
 * The dependents the engine deletes before a delete-before-replace: those it predicts must be replaced
 * because a replace-forcing input (or one named in `replaceOnChanges`) takes a value from the resource, or
 * from another dependent so doomed. The engine decides from the dependent's old inputs with those values made
 * unknown (pulumi/pulumi v3.248.0 pkg/resource/deploy/step_generator.go L3009-3115), not from the new ones: a
 * dependent that only lists the resource in a non-forcing input (a droplet's `volumeIds`) stays up.
 */
function doomedDependents(urn: string, among: readonly ResourceRecord[]): ResourceRecord[] {
  const out: ResourceRecord[] = [];
  const doomed = new Set([urn]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const r of among) {
      if (doomed.has(r.urn)) continue;
      const forcing = new Set([...ruleFor(r.type).forceNew, ...r.replaceOnChanges]);
      const hit = Object.entries(r.inputDeps ?? {}).some(
        ([input, from]) => forcing.has(input) && from.some((u) => doomed.has(u)),
      );
      if (hit) {
        doomed.add(r.urn);
        out.push(r);
        grew = true;
      }
    }
  }
  return out;
}

/** Orders resources so every dependent comes before what it depends on (the engine's delete order). */
function dependentsFirst(records: readonly ResourceRecord[]): ResourceRecord[] {
  const byUrn = new Map(records.map((r) => [r.urn, r]));
  const out: ResourceRecord[] = [];
  const done = new Set<string>();
  const visit = (r: ResourceRecord, path: Set<string>) => {
    if (done.has(r.urn) || path.has(r.urn)) return;
    path.add(r.urn);
    for (const d of records) if (d.dependsOn.includes(r.urn)) visit(d, path);
    path.delete(r.urn);
    done.add(r.urn);
    out.push(r);
  };
  // Reverse registration order first, so independent resources are deleted newest first, as the engine does.
  for (const r of [...records].reverse()) visit(r, new Set());
  return out.filter((r) => byUrn.has(r.urn));
}

function describeDecision(d: Decision, rule: ResourceRule): string {
  switch (d.kind) {
    case "create":
      return "new";
    case "same":
      return "unchanged";
    case "update":
      return `${d.changed.join(", ")} changed (in place)`;
    case "replace": {
      const forced = d.because.includes("--replace");
      const inputs = d.because.filter((b) => b !== "--replace");
      const parts = [
        ...(forced ? ["named by --replace"] : []),
        ...(inputs.length > 0
          ? [`${inputs.join(", ")} changed, which forces a new resource (${rule.source})`]
          : []),
      ];
      return parts.join("; ");
    }
    default: {
      const unknown: never = d;
      throw new Error(`unknown decision ${JSON.stringify(unknown)}`);
    }
  }
}

/**
 * The world as the providers see it while the steps run: every live resource with its inputs. Checked on each
 * create: names that must be unique, and things that attach to one resource at a time.
 */
class World {
  private readonly live = new Map<string, ResourceRecord>();
  private serial = 0;

  constructor(initial: readonly ResourceRecord[]) {
    for (const r of initial) this.live.set(this.key(r), r);
  }

  private key(r: ResourceRecord): string {
    return `${r.urn}#${r.id}`;
  }

  add(r: ResourceRecord, violations: Violation[]): void {
    const rule = ruleFor(r.type);
    for (const other of this.live.values()) {
      if (other.type !== r.type) continue;
      for (const u of rule.unique ?? []) {
        const value = r.inputs[u.input];
        if (value === undefined || !isDeepStrictEqual(value, other.inputs[u.input])) continue;
        const region = u.regionInput ?? "region";
        if (u.scope === "region" && !isDeepStrictEqual(r.inputs[region], other.inputs[region])) continue;
        violations.push({
          urn: r.urn,
          message: `creating ${r.urn} while ${other.urn} still exists with the same ${u.input} ${JSON.stringify(value)}: ${u.error} (${rule.source})`,
        });
      }
      for (const x of rule.exclusive ?? []) {
        const value = r.inputs[x.input];
        if (value === undefined || !isDeepStrictEqual(value, other.inputs[x.input])) continue;
        violations.push({
          urn: r.urn,
          message: `creating ${r.urn} while ${other.urn} still holds ${x.what} ${JSON.stringify(value)}: ${x.error} (${rule.source})`,
        });
      }
    }
    this.live.set(`${this.key(r)}+${this.serial++}`, r);
  }

  update(r: ResourceRecord, previousId: string): void {
    for (const [k, v] of this.live) if (v.urn === r.urn && v.id === previousId) this.live.set(k, r);
  }

  remove(urn: string, id: string): void {
    for (const [k, v] of this.live) if (v.urn === urn && v.id === id) this.live.delete(k);
  }

  /** Checked on a delete: a live resource still holds this one (a droplet with the volume in `volumeIds`). */
  holders(r: ResourceRecord, violations: Violation[]): void {
    const rule = ruleFor(r.type);
    for (const held of rule.heldBy ?? []) {
      for (const other of this.live.values()) {
        if (other.type !== held.type || other === r) continue;
        const value = other.inputs[held.input];
        const values = Array.isArray(value) ? value.map(String) : value === undefined ? [] : [String(value)];
        if (!values.includes(r.id)) continue;
        violations.push({
          urn: r.urn,
          message: `deleting ${r.urn} while ${other.urn} still holds it in ${held.input}: ${held.error} (${rule.source})`,
        });
      }
    }
  }
}

/**
 * The steps from `before` to `after`, checked against the provider rules. `replace` names URNs the operator
 * forces with `pulumi up --replace`.
 */
export function simulate(before: Snapshot, after: Snapshot, replace: readonly string[] = []): Plan {
  const old = new Map(before.resources.map((r) => [r.urn, r]));
  const current = new Set(after.resources.map((r) => r.urn));
  const steps: Step[] = [];
  const violations: Violation[] = [];
  const decisions = new Map<string, Decision>();
  const world = new World(before.resources);
  const deleted = new Set<string>();
  const condemned: ResourceRecord[] = [];

  const removeOld = (r: ResourceRecord, kind: "delete" | "delete-replaced", why: string) => {
    if (deleted.has(r.urn)) return;
    deleted.add(r.urn);
    if (r.protect) {
      violations.push({
        urn: r.urn,
        message:
          kind === "delete"
            ? `${r.urn} is protected: the engine stops the update ("resource … cannot be deleted because it is protected")`
            : `${r.urn} is protected: the engine stops the update ("unable to replace resource … as it is currently marked for protection")`,
      });
      return;
    }
    if (r.retainOnDelete) {
      steps.push({
        kind: "retain",
        urn: r.urn,
        why: `${why}; retainOnDelete: left in the account, dropped from the state`,
      });
      return;
    }
    world.holders(r, violations);
    world.remove(r.urn, r.id);
    steps.push({ kind, urn: r.urn, why });
  };

  for (const r of after.resources) {
    const previous = old.get(r.urn);
    const d = decide(r.type, previous, r.inputs, r.replaceOnChanges, replace.includes(r.urn));
    decisions.set(r.urn, d);
    const rule = ruleFor(r.type);
    const why = describeDecision(d, rule);
    switch (d.kind) {
      case "create":
        world.add(r, violations);
        steps.push({ kind: "create", urn: r.urn, why });
        break;
      case "same":
        break;
      case "update":
        world.update(r, previous!.id);
        steps.push({ kind: "update", urn: r.urn, why });
        break;
      case "replace":
        if (previous!.protect && r.protect) {
          violations.push({
            urn: r.urn,
            message: `${r.urn} must be replaced (${why}) but is protected: the engine stops with "unable to replace resource … as it is currently marked for protection"`,
          });
          break;
        }
        if (r.deleteBeforeReplace ?? providerAsksDeleteFirst(rule, r)) {
          const doomed = doomedDependents(r.urn, before.resources);
          for (const dep of dependentsFirst(doomed)) {
            removeOld(
              dep,
              current.has(dep.urn) ? "delete-replaced" : "delete",
              `deleted first: it depends on ${r.urn}, which is replaced delete-before-replace`,
            );
          }
          removeOld(previous!, "delete-replaced", `${why}; deleteBeforeReplace`);
          world.add(r, violations);
          steps.push({ kind: "replace-create", urn: r.urn, why: `${why}; deleteBeforeReplace` });
        } else {
          world.add(r, violations);
          steps.push({ kind: "replace-create", urn: r.urn, why: `${why}; create-before-delete` });
          condemned.push(previous!);
        }
        break;
      default: {
        const unknown: never = d;
        throw new Error(`unknown decision ${JSON.stringify(unknown)}`);
      }
    }
  }

  const removed = before.resources.filter((r) => !current.has(r.urn));
  const endDeletes = new Set([...condemned.map((r) => r.urn), ...removed.map((r) => r.urn)]);
  for (const r of dependentsFirst(before.resources.filter((x) => endDeletes.has(x.urn)))) {
    if (current.has(r.urn))
      removeOld(r, "delete-replaced", "the replaced copy, deleted at the end of the update");
    else removeOld(r, "delete", "no longer in the program");
  }
  return { steps, violations, decisions, removed: removed.map((r) => r.urn) };
}

/** Whether the provider itself asks the engine for delete-before-replace (rules.ts). */
function providerAsksDeleteFirst(rule: ResourceRule, r: ResourceRecord): boolean {
  if (rule.alwaysDeleteBeforeReplace === true) return true;
  const input = rule.deleteBeforeReplaceWhenSet;
  return input !== undefined && r.inputs[input] !== undefined;
}
