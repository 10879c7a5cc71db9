/**
 * Calls policies the way the policy engine does, without the engine: builds the args object (type checks,
 * options, config with the schema's defaults applied) and collects the violations reported.
 */
import type {
  PolicyResource,
  ResourceValidationArgs,
  ResourceValidationPolicy,
  StackValidationArgs,
  StackValidationPolicy,
} from "@pulumi/policy";

type Config = Record<string, unknown>;

function withDefaults(
  policy: { configSchema?: { properties: Record<string, { default?: unknown }> } },
  config: Config,
) {
  const defaults = Object.fromEntries(
    Object.entries(policy.configSchema?.properties ?? {})
      .filter(([, s]) => s.default !== undefined)
      .map(([k, s]) => [k, s.default]),
  );
  return { ...defaults, ...config };
}

const urnOf = (type: string, name: string) => `urn:pulumi:test::cloudpal::${type}::${name}`;

export interface FakeResource {
  type: string;
  props: Record<string, unknown>;
  name?: string;
  protect?: boolean;
}

function options(protect: boolean) {
  return {
    protect,
    ignoreChanges: [],
    aliases: [],
    additionalSecretOutputs: [],
    customTimeouts: { createSeconds: 0, updateSeconds: 0, deleteSeconds: 0 },
  };
}

export function resourceArgs(r: FakeResource, config: Config = {}): ResourceValidationArgs {
  const name = r.name ?? "subject";
  const isType = (cls: unknown) => (cls as { __pulumiType?: string }).__pulumiType === r.type;
  return {
    type: r.type,
    props: r.props,
    urn: urnOf(r.type, name),
    name,
    opts: options(r.protect ?? false),
    stackTags: new Map(),
    isType: isType as ResourceValidationArgs["isType"],
    asType: ((cls: unknown) => (isType(cls) ? r.props : undefined)) as ResourceValidationArgs["asType"],
    getConfig: <T extends object>() => config as T,
    notApplicable: (reason?: string): never => {
      throw new Error(`notApplicable: ${reason ?? ""}`);
    },
  };
}

/** Runs one resource policy on one resource; returns the violation messages. */
export function violations(policy: ResourceValidationPolicy, r: FakeResource, config: Config = {}): string[] {
  const out: string[] = [];
  const v0 = policy.validateResource;
  const validations = Array.isArray(v0) ? v0 : v0 ? [v0] : [];
  for (const v of validations) void v(resourceArgs(r, withDefaults(policy, config)), (m) => out.push(m));
  return out;
}

export interface FakeStackResource extends FakeResource {
  /** Property name → names of the resources that property's value came from. */
  propertyDependencies?: Record<string, string[]>;
}

export function stackViolations(policy: StackValidationPolicy, resources: FakeStackResource[]): string[] {
  const built = new Map<string, PolicyResource>();
  for (const r of resources) {
    const name = r.name ?? "subject";
    built.set(name, {
      type: r.type,
      props: r.props,
      urn: urnOf(r.type, name),
      name,
      opts: options(r.protect ?? false),
      dependencies: [],
      propertyDependencies: {},
      isType: ((cls: unknown) =>
        (cls as { __pulumiType?: string }).__pulumiType === r.type) as PolicyResource["isType"],
      asType: (() => undefined) as PolicyResource["asType"],
    });
  }
  for (const r of resources) {
    const self = built.get(r.name ?? "subject");
    for (const [prop, names] of Object.entries(r.propertyDependencies ?? {})) {
      if (self)
        self.propertyDependencies[prop] = names
          .map((n) => built.get(n))
          .filter((x): x is PolicyResource => !!x);
    }
  }
  const args: StackValidationArgs = {
    resources: [...built.values()],
    stackTags: new Map(),
    getConfig: <T extends object>() => withDefaults(policy, {}) as T,
    notApplicable: (reason?: string): never => {
      throw new Error(`notApplicable: ${reason ?? ""}`);
    },
  };
  const out: string[] = [];
  void policy.validateStack(args, (m) => out.push(m));
  return out;
}
