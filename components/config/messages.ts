/**
 * ajv's errors on the stack config as sentences (model/messages.ts translates; the schema's `fix` and `missing`
 * annotations in schema.ts give the words). A private key pasted by mistake is never shown.
 */
import type { ErrorObject } from "ajv";
import { describeAjvError, fieldPath, show } from "../../model/messages";

const WORDING = {
  noun: "setting",
  missing: "set it",
  shown: (_field: string, value: unknown) =>
    looksLikePrivateKey(value) ? "(a private key, not shown)" : show(value),
};

export function describeSchemaError(e: ErrorObject): string {
  if (looksLikePrivateKey(e.data) && !["required", "additionalProperties", "if"].includes(e.keyword))
    return `'${fieldPath(e.instancePath)}' (a private key, not shown) must never be in the stack config: paste the public key ('~/.ssh/id_ed25519.pub') instead.`;
  return describeAjvError(e, WORDING);
}

function looksLikePrivateKey(value: unknown): boolean {
  return typeof value === "string" && /PRIVATE KEY/.test(value);
}
