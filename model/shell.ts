/**
 * Quoting for POSIX sh and bash: the bootstrap script (cloud-init/script.ts) and the delivery commands
 * (components/delivery.ts) put every interpolated word through this one function.
 */

/** One word in single quotes; an embedded quote is closed, escaped and reopened (POSIX sh, 2.2.2). */
export function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}
