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
  // Cross-field checks run on every part the schema accepted, down to one element of a list, so a duplicate
  // name is reported even when a sibling element (or another key of the same element) is wrong: the user
  // sees every problem in one run, without echoes of the schema's complaints.
  const { raw, clean, sound } = usable;
  const resolved = withDefaults(raw);
  problems.push(...checkConfig(raw, resolved, clean, sound));
  let peers: PeerConfig[] = [];
  // Allocation needs valid subnets and unique names; otherwise it would only repeat those problems. Peers the
  // schema faulted are left out of it (their pin or name may be what is wrong), the others keep their index.
  const subnetsValid = !problems.some((p) => p.startsWith("'ipv4Subnet'") || p.startsWith("'ipv6Prefix'"));
  const whole = resolved.peers.map((_, i) => i).filter((i) => clean(`peers/${i}`));
  const namesUnique = new Set(whole.map((i) => resolved.peers[i].name)).size === whole.length;
  if (subnetsValid && namesUnique && sound("peers") && clean("ipv4Subnet", "ipv6Prefix")) {
    try {
      const addresses = allocateAddresses(
        resolved,
        whole.map((i) => resolved.peers[i]),
        (j) => `peers[${whole[j]}]`,
      );
      if (whole.length === resolved.peers.length)
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
 * Where each schema error leaves the input unusable, as a path like "peers/1/name": the value there cannot be
 * judged, everything beside it can. An unknown or missing key taints only that key; an element of a list or
 * map that is not even an object taints the list (nothing could read the element's fields). Undefined: the
 * error says nothing about any one place (its if/then branch reports the field itself).
 */
function taintOf(e: ErrorObject): { path: string; keep: boolean } | undefined {
  const at = e.instancePath.split("/").slice(1);
  const param = e.params as {
    additionalProperty?: string;
    missingProperty?: string;
    propertyName?: string;
    type?: string;
  };
  if (e.keyword === "if") return undefined;
  if (e.keyword === "additionalProperties")
    return { path: [...at, param.additionalProperty].join("/"), keep: false };
  if (e.keyword === "required") return { path: [...at, param.missingProperty].join("/"), keep: false };
  // A map key the schema refuses (a group's name): the entry stays so references to it are not reported again.
  const name = param.propertyName ?? e.propertyName;
  if (name !== undefined) return { path: [...at, name].join("/"), keep: true };
  if (e.keyword === "type" && param.type === "object" && at.length >= 2)
    return { path: at.slice(0, -1).join("/"), keep: false };
  return { path: at.join("/"), keep: false };
}

/**
 * The input without what the schema rejected (unknown keys and wrong values dropped, rejected required lists
 * emptied; list elements keep their place so messages keep their index), and two questions the checks ask:
 * `clean(...paths)`: is everything at and under those paths valid; `sound(path)`: is the value at the path (and
 * every level above it) valid, whatever is wrong further down. Undefined when the provider itself is unusable:
 * then nothing else can be judged.
 */
function usablePart(
  input: unknown,
  errors: readonly ErrorObject[],
): { raw: RawConfig; clean: (...paths: string[]) => boolean; sound: (path: string) => boolean } | undefined {
  if (typeof input !== "object" || input === null || Array.isArray(input)) return undefined;
  const taints: { path: string; keep: boolean }[] = [];
  for (const e of errors) {
    const taint = taintOf(e);
    if (taint === undefined) continue;
    if (taint.path === "") return undefined;
    taints.push(taint);
  }
  if (taints.some((t) => t.path === "provider")) return undefined;
  const dropped = new Set(taints.filter((t) => !t.keep).map((t) => t.path));
  const raw = withoutPaths(input, "", dropped) as Record<string, unknown>;
  for (const required of ["sshPublicKeys", "sshAllowedCidrs"]) raw[required] ??= [];
  const under = (t: string, path: string) => t === path || t.startsWith(`${path}/`);
  return {
    raw: raw as unknown as RawConfig,
    clean: (...paths) => paths.every((p) => !taints.some((t) => under(t.path, p))),
    sound: (path) => !taints.some((t) => under(path, t.path)),
  };
}

/** A copy of `value` without the object keys at `dropped` paths; list elements are never removed. */
function withoutPaths(value: unknown, path: string, dropped: ReadonlySet<string>): unknown {
  const child = (key: string) => (path === "" ? key : `${path}/${key}`);
  if (Array.isArray(value)) return value.map((v, i) => withoutPaths(v, child(String(i)), dropped));
  if (typeof value !== "object" || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    if (!dropped.has(child(key))) out[key] = withoutPaths(v, child(key), dropped);
  }
  return out;
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
