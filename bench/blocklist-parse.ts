/**
 * Benchmark: the blocklist parser on hostile and ordinary input (issue 10). No root, no network:
 *   npx ts-node --transpile-only bench/blocklist-parse.ts
 * Each case is parsed 5 times; the figures are the median wall time of parseBlocklist alone.
 * - one line of N '#' and a '\r': the old /#.*$/ strip was quadratic on it (52 s of CPU for N = 180,000);
 * - the same with a line cap out of the way: N '#' under MAX_LINE_CHARS, repeated to the same size, to show the
 *   comment search itself is linear;
 * - a 64 MiB single line (the download bound), and an ordinary hosts file of 1,000,000 names with CRLF and
 *   inline comments.
 */
import { performance } from "perf_hooks";
import { MAX_LINE_CHARS, parseBlocklist } from "../agent/src/blocklist";

function median(text: string): number {
  const runs: number[] = [];
  for (let i = 0; i < 5; i++) {
    const start = performance.now();
    parseBlocklist(text);
    runs.push(performance.now() - start);
  }
  return runs.sort((a, b) => a - b)[2];
}

const cases: [string, () => string][] = [
  ["1 line of 180,000 '#' + CR", () => "#".repeat(180_000) + "\r"],
  ["1 line of 1,800,000 '#' + CR", () => "#".repeat(1_800_000) + "\r"],
  [
    `44 lines of ${MAX_LINE_CHARS - 2} '#' + CR (180,000 chars)`,
    () => ("#".repeat(MAX_LINE_CHARS - 2) + "\r\n").repeat(44),
  ],
  [
    `440 lines of ${MAX_LINE_CHARS - 2} '#' + CR (1,800,000 chars)`,
    () => ("#".repeat(MAX_LINE_CHARS - 2) + "\r\n").repeat(440),
  ],
  ["1 line of 64 MiB ('#')", () => "#".repeat(64 * 2 ** 20)],
  [
    "1,000,000 names, CRLF, inline comments",
    () => {
      const lines: string[] = [];
      for (let i = 0; i < 1_000_000; i++)
        lines.push(`0.0.0.0 ad${i.toString(36)}.tracker${i % 997}.example.com # seen ${i}\r`);
      return lines.join("\n");
    },
  ],
];

for (const [what, make] of cases) {
  const text = make();
  process.stdout.write(`${what}: ${median(text).toFixed(1)} ms (${text.length} chars)\n`);
}
