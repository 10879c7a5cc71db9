/**
 * ajv's errors on the stack config, translated into one sentence each: the field in quotes, the value, the fix
 * (the schema's own `fix` and `missing` annotations, schema.ts). A private key pasted by mistake is never shown.
 */
import type { ErrorObject } from "ajv";
import { fieldPath, show } from "../../model/messages";

interface Annotated {
  fix?: string;
  missing?: string;
  properties?: Record<string, Annotated>;
}

export function describeSchemaError(e: ErrorObject): string {
  const schema = (e.parentSchema ?? {}) as Annotated;
  const field = fieldPath(e.instancePath);
  const value = e.data;
  const shown = looksLikePrivateKey(value) ? "(a private key, not shown)" : show(value);
  switch (e.keyword) {
    case "required": {
      const missing = (e.params as { missingProperty: string }).missingProperty;
      const hint = schema.properties?.[missing]?.missing ?? "set it";
      return `'${fieldPath(e.instancePath, missing)}' is missing: ${hint}.`;
    }
    case "additionalProperties": {
      const extra = (e.params as { additionalProperty: string }).additionalProperty;
      const known = Object.keys(schema.properties ?? {});
      const guess = closest(extra, known);
      const where = fieldPath(e.instancePath, extra);
      const extraValue = (value as Record<string, unknown>)[extra];
      return `'${where}' (${show(extraValue)}) is not a known setting: ${guess ? `did you mean '${fieldPath(e.instancePath, guess)}'?` : `remove it (known settings: ${known.join(", ")}).`}`;
    }
    case "propertyNames": {
      const name = (e.params as { propertyName: string }).propertyName;
      return `'${fieldPath(e.instancePath, name)}' (${show(name)}) ${schema.fix ?? "is not a valid name"}.`;
    }
    case "minItems":
      return `'${field}' (${shown}) ${schema.fix ?? `needs at least ${(e.params as { limit: number }).limit} entries`}.`;
    case "if":
      return ""; // the failing branch's own error says what is wrong
    default:
      if (e.propertyName !== undefined) return ""; // reported by its propertyNames error
      if (looksLikePrivateKey(value))
        return `'${field}' ${shown} must never be in the stack config: paste the public key ('~/.ssh/id_ed25519.pub') instead.`;
      return `'${field}' (${shown}) ${schema.fix ?? fallback(e)}.`;
  }
}

function fallback(e: ErrorObject): string {
  if (e.keyword === "type") return `must be of type ${(e.params as { type: string }).type}`;
  return `is not valid: ${e.message ?? e.keyword}`;
}

function looksLikePrivateKey(value: unknown): boolean {
  return typeof value === "string" && /PRIVATE KEY/.test(value);
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
