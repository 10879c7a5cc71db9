/**
 * Runs the Hub under Pulumi's mocks and records a snapshot: every resource in registration order with its
 * inputs, id and options, plus the stack outputs devices depend on. Given the snapshot of the stack as it is,
 * the mocks act as the providers would on `pulumi up`: a resource whose change forces a replacement (by the
 * rules in simulate/rules.ts) gets a new id and new addresses, so anything that takes that id or address sees
 * its own inputs change, exactly as dependents do in a real update.
 */
import { createHash } from "crypto";
import * as pulumi from "@pulumi/pulumi";
import { isIP } from "net";
import type { HubConfig } from "../components/config";
import { Hub } from "../components/hub";
import { createMocks, type Registered, settle, valueOf } from "../scripts/mocks";
import { decide, type ResourceRecord, type Snapshot, urnOf } from "./engine";

export interface Outputs {
  readonly endpoint: string;
  readonly hubPublicKey: string;
  /** Device name → client config text. */
  readonly clientConfigs: Readonly<Record<string, string>>;
}

export interface Capture {
  readonly snapshot: Snapshot;
  readonly outputs: Outputs;
}

/** The stand-in agent bundle: its bytes do not matter to the engine, only that they stay the same. */
const AGENT_STAND_IN = "// agent bundle stand-in\n";
const SSH_KEY_STAND_IN = "-----BEGIN OPENSSH PRIVATE KEY-----\nstand-in\n-----END OPENSSH PRIVATE KEY-----\n";

function hash(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}

/** A documentation-range address (RFC 5737 / RFC 3849) that differs for every resource and generation. */
function addressFor(kind: 4 | 6, seed: string): string {
  const h = hash(seed);
  return kind === 4
    ? `203.0.113.${1 + (h[0] % 254)}`
    : `2001:db8:${h.readUInt16BE(1).toString(16)}::${h.readUInt16BE(3).toString(16) || "1"}`;
}

function withAddresses(state: Record<string, unknown>, seed: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(state)) {
    if (typeof v === "string") {
      const bare = v.split("/")[0];
      const family = isIP(bare);
      if (family === 4 || family === 6) {
        const suffix = v.slice(bare.length);
        out[k] = addressFor(family, `${seed}:${k}`) + suffix;
        continue;
      }
    }
    out[k] = v;
  }
  return out;
}

/** Strings and numbers anywhere in a value, as strings. */
function leaves(value: unknown, out: Set<string> = new Set()): Set<string> {
  if (typeof value === "string" || typeof value === "number") out.add(String(value));
  else if (Array.isArray(value)) value.forEach((v) => leaves(v, out));
  else if (value && typeof value === "object") Object.values(value).forEach((v) => leaves(v, out));
  return out;
}

/**
 * Registers the Hub for `config` under mocks and returns its snapshot. `previous` is the stack as it stands
 * (omit for a first `pulumi up`); `replace` lists URNs forced with `--replace`.
 */
export async function capture(
  config: HubConfig,
  previous?: Snapshot,
  replace: readonly string[] = [],
): Promise<Capture> {
  const registered: Registered[] = [];
  const base = createMocks(registered);
  const before = new Map((previous?.resources ?? []).map((r) => [r.urn, r]));
  const ids = new Map<string, string>();
  const outputsOf = new Map<string, Set<string>>();
  const options = new Map<string, pulumi.CustomResourceOptions>();
  const names = new Map<pulumi.Resource, string>();

  const mocks: pulumi.runtime.Mocks = {
    newResource(args) {
      const result = base.newResource(args) as { id: string; state: Record<string, unknown> };
      const urn = urnOf(args.type, args.name);
      const recorded = registered[registered.length - 1];
      const old = before.get(urn);
      const opts = options.get(args.name) ?? {};
      const d = decide(args.type, old, recorded.inputs, opts.replaceOnChanges ?? [], replace.includes(urn));
      let id: string;
      if (old === undefined) id = result.id;
      else if (d.kind === "replace") id = /^\d+$/.test(old.id) ? String(Number(old.id) + 1) : `${old.id}'`;
      else id = old.id;
      let state = withAddresses(result.state, `${urn}#${id}`);
      if (args.type === "random:index/randomBytes:RandomBytes") {
        // New bytes exactly when the resource is new or replaced, as the provider makes them.
        const bytes = hash(`${urn}#${id}`).subarray(0, Number(recorded.inputs.length ?? 32));
        state = { ...state, base64: bytes.toString("base64"), hex: bytes.toString("hex") };
      }
      ids.set(urn, id);
      outputsOf.set(urn, new Set([id, ...[...leaves(state)].filter((v) => isIP(v.split("/")[0]) !== 0)]));
      return { id, state };
    },
    call: (args) => base.call(args),
  };
  await pulumi.runtime.setMocks(mocks, "cloudpal", "simulate", false);

  const hub = new Hub(
    "hub",
    {
      config,
      sshPrivateKey: pulumi.secret(SSH_KEY_STAND_IN),
      agentBundle: { code: AGENT_STAND_IN, sha256: hash(AGENT_STAND_IN).toString("hex") },
    },
    {
      transformations: [
        (args) => {
          options.set(args.name, args.opts as pulumi.CustomResourceOptions);
          names.set(args.resource, urnOf(args.type, args.name));
          return undefined;
        },
      ],
    },
  );
  const [endpoint, hubPublicKey, clientConfigs] = await valueOf(
    pulumi.all([hub.endpoint, hub.hubPublicKey, hub.clientConfigs, hub.state]),
  );
  await settle({ registered } as never);

  const hubUrn = urnOf("cloudpal:index:Hub", "hub");
  const resources: ResourceRecord[] = registered.map((r) => {
    const urn = urnOf(r.type, r.name);
    const opts = options.get(r.name) ?? {};
    const explicit = (Array.isArray(opts.dependsOn) ? (opts.dependsOn as pulumi.Resource[]) : [])
      .map((d) => names.get(d))
      .filter((n): n is string => n !== undefined);
    const takers = (value: unknown) => {
      const taken = leaves(value);
      return [...outputsOf]
        .filter(([other, values]) => other !== urn && [...values].some((v) => taken.has(v)))
        .map(([other]) => other);
    };
    const implicit = takers(r.inputs);
    const inputDeps = Object.fromEntries(
      Object.entries(r.inputs)
        .map(([key, value]) => [key, takers(value)] as const)
        .filter(([, from]) => from.length > 0),
    );
    return {
      urn,
      type: r.type,
      name: r.name,
      id: ids.get(urn) ?? "",
      inputs: r.inputs,
      protect: Boolean(opts.protect),
      retainOnDelete: Boolean(opts.retainOnDelete),
      deleteBeforeReplace: opts.deleteBeforeReplace,
      replaceOnChanges: [...(opts.replaceOnChanges ?? [])],
      dependsOn: [...new Set([...(urn === hubUrn ? [] : [hubUrn]), ...explicit, ...implicit])],
      inputDeps,
    };
  });
  return {
    snapshot: { resources },
    outputs: { endpoint, hubPublicKey, clientConfigs },
  };
}
