/**
 * How every message names a field and shows a value: the field in quotes, then the bad value, then the fix,
 * in one sentence. The stack config, the bootstrap spec and the hub state all word their problems with these,
 * and translate ajv's errors with the one translator below, never showing them raw.
 */
import type { ErrorObject } from "ajv";

/** '/peers/2/publicKey' → 'peers[2].publicKey' ('' for the document itself). */
export function fieldPath(instancePath: string, child?: string): string {
  const parts = instancePath.split("/").slice(1);
  if (child !== undefined) parts.push(child);
  return parts
    .map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"))
    .reduce((acc, p) => (/^\d+$/.test(p) ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), "");
}

/** A value as shown in messages: JSON, shortened. Never called with secrets. */
export function show(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/**
 * Schema annotations the translator reads (registered as ajv vocabulary):
 * `fix`: the sentence's tail after the value, e.g. "is not a port: use a number from 1 to 65535";
 * `missing`: what to do when a required property is absent, e.g. "set it to ...".
 */
export const MESSAGE_KEYWORDS = ["fix", "missing"] as const;

interface Annotated {
  fix?: string;
  missing?: string;
  properties?: Record<string, Annotated>;
}

export interface AjvWording {
  /** What the document's keys are called: "setting" (stack config), "field" (hub state). */
  readonly noun: string;
  /** The hint for a missing property without its own `missing` annotation. */
  readonly missing: string;
  /** The value as shown between the parentheses; the place to hide secrets. */
  readonly shown: (field: string, value: unknown) => string;
}

/** One ajv error as one sentence, or "" when another error of the same run already says it. */
export function describeAjvError(e: ErrorObject, wording: AjvWording): string {
  const schema = (e.parentSchema ?? {}) as Annotated;
  const field = fieldPath(e.instancePath);
  const name = field || "(document)";
  switch (e.keyword) {
    case "required": {
      const missing = (e.params as { missingProperty: string }).missingProperty;
      const hint = schema.properties?.[missing]?.missing ?? wording.missing;
      return `'${fieldPath(e.instancePath, missing)}' is missing: ${hint}.`;
    }
    case "additionalProperties": {
      const extra = (e.params as { additionalProperty: string }).additionalProperty;
      const known = Object.keys(schema.properties ?? {});
      const guess = closest(extra, known);
      const where = fieldPath(e.instancePath, extra);
      const value = wording.shown(where, (e.data as Record<string, unknown>)[extra]);
      return `'${where}' (${value}) is not a known ${wording.noun}: ${guess ? `did you mean '${fieldPath(e.instancePath, guess)}'?` : `remove it (known ${wording.noun}s: ${known.join(", ")}).`}`;
    }
    case "propertyNames": {
      const key = (e.params as { propertyName: string }).propertyName;
      return `'${fieldPath(e.instancePath, key)}' (${show(key)}) ${schema.fix ?? "is not a valid name"}.`;
    }
    case "minItems":
      return `'${name}' (${wording.shown(field, e.data)}) ${schema.fix ?? `needs at least ${(e.params as { limit: number }).limit} entries`}.`;
    case "if":
      return ""; // the failing branch's own error says what is wrong
    default:
      if (e.propertyName !== undefined) return ""; // reported by its propertyNames error
      return `'${name}' (${wording.shown(field, e.data)}) ${schema.fix ?? fallback(e)}.`;
  }
}

function fallback(e: ErrorObject): string {
  if (e.keyword === "type") return `must be of type ${(e.params as { type: string }).type}`;
  return `is not valid: ${e.message ?? e.keyword}`;
}

/** The known key closest to a misspelt one, if it is close enough to be a typo. */
function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return bestDistance <= Math.max(2, Math.floor(word.length / 4)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length];
}
