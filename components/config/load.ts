/**
 * `loadConfig`: validated with one JSON Schema (schema.ts), completed with defaults in one function
 * (defaults.ts), checked across fields (checks.ts), and returned as a typed, frozen HubConfig. Every problem is
 * collected and reported at once, one sentence per line, before the program registers a single resource.
 */
import Ajv, { type ErrorObject } from "ajv";
import { allocateAddresses, AllocationError } from "../../model/addressing";
import { checkConfig } from "./checks";
import { withDefaults } from "./defaults";
import { describeSchemaError } from "./messages";
import { CONFIG_SCHEMA } from "./schema";
import { ConfigError, type HubConfig, type PeerConfig, type RawConfig } from "./types";

// strictTypes off: the per-provider if/then branches name properties without restating `type: object`.
const ajv = new Ajv({ allErrors: true, verbose: true, strict: true, strictTypes: false });
ajv.addVocabulary(["fix", "missing"]);
const validateShape = ajv.compile(CONFIG_SCHEMA);

/**
 * Validate the user's config and return the frozen HubConfig, or throw a ConfigError listing every problem.
 * Pure: tests call it directly, and the program calls it before registering any resource.
 */
export function loadConfig(input: unknown): HubConfig {
  const shapeOk = validateShape(input);
  const errors = shapeOk ? [] : (validateShape.errors ?? []);
  const problems = errors.map(describeSchemaError).filter((l) => l !== "");
  const usable = usablePart(input, errors);
  if (!usable) throw new ConfigError(unique(problems));
  // Cross-field checks run on every top-level field the schema accepted, each only when all the fields it
  // reads are sound, so the user sees every problem in one run without echoes of the schema's complaints.
  const { raw, clean } = usable;
  const resolved = withDefaults(raw);
  problems.push(...checkConfig(raw, resolved, clean));
  let peers: PeerConfig[] = [];
  // Allocation needs valid subnets and unique names; otherwise it would only repeat those problems.
  const subnetsValid = !problems.some((p) => p.startsWith("'ipv4Subnet'") || p.startsWith("'ipv6Prefix'"));
  const namesUnique = new Set(resolved.peers.map((p) => p.name)).size === resolved.peers.length;
  if (subnetsValid && namesUnique && clean("peers", "ipv4Subnet", "ipv6Prefix")) {
    try {
      const addresses = allocateAddresses(resolved, resolved.peers);
      peers = resolved.peers.map((p) => ({ ...p, ...pick(addresses.get(p.name)) }));
    } catch (e) {
      if (!(e instanceof AllocationError)) throw e;
      problems.push(...e.problems);
    }
  }
  if (problems.length > 0) throw new ConfigError(unique(problems));
  return deepFreeze({ ...resolved, peers });
}

/**
 * The input without the top-level fields the schema rejected (unknown keys dropped, rejected required lists
 * emptied), and which fields are sound. Undefined when the provider itself is unusable: then nothing else
 * can be judged.
 */
function usablePart(
  input: unknown,
  errors: readonly ErrorObject[],
): { raw: RawConfig; clean: (...fields: string[]) => boolean } | undefined {
  if (typeof input !== "object" || input === null || Array.isArray(input)) return undefined;
  const dirty = new Set<string>();
  const unknown = new Set<string>();
  for (const e of errors) {
    const top = e.instancePath.split("/")[1];
    if (top !== undefined) dirty.add(top);
    else if (e.keyword === "required") dirty.add((e.params as { missingProperty: string }).missingProperty);
    else if (e.keyword === "if")
      continue; // its branch's own error names the field
    else if (e.keyword === "additionalProperties")
      unknown.add((e.params as { additionalProperty: string }).additionalProperty);
    else return undefined;
  }
  if (dirty.has("provider")) return undefined;
  const raw: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(input)) {
    if (!dirty.has(key) && !unknown.has(key)) raw[key] = value;
  }
  for (const required of ["sshPublicKeys", "sshAllowedCidrs"]) raw[required] ??= [];
  return { raw: raw as unknown as RawConfig, clean: (...fields) => fields.every((f) => !dirty.has(f)) };
}

function pick(a: { ipv4: string; ipv6: string } | undefined): { ipv4: string; ipv6: string } {
  if (!a) throw new Error("allocateAddresses returned no address for a peer");
  return { ipv4: a.ipv4, ipv6: a.ipv6 };
}

function unique(lines: string[]): string[] {
  return [...new Set(lines)];
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value as object)) deepFreeze(v);
  }
  return value;
}
