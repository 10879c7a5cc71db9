/**
 * The layers, as a test. Every .ts file's imports are read with the compiler's own pre-processor
 * (`ts.preProcessFile`: imports, `import type`, re-exports and `require` calls alike) and checked against:
 * - no import circle among source files (tests excluded: they may import whatever they test);
 * - nothing outside agent/ imports agent/ (bench/ and test/ may: they drive the agent);
 * - model/ and lib/ stand on nothing of the project but themselves (npm and node modules only).
 * So an edit inside the agent can never change user-data, and the model never grows a dependency on a layer
 * above it.
 */
import { readdirSync, readFileSync, statSync } from "fs";
import * as path from "path";
import * as ts from "typescript";

const ROOT = path.join(__dirname, "..");
const SKIP = new Set(["node_modules", "build", ".git", ".ci"]);

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(path.join(ROOT, dir))) {
    if (SKIP.has(entry) || entry.startsWith(".")) continue;
    const rel = dir === "." ? entry : `${dir}/${entry}`;
    if (statSync(path.join(ROOT, rel)).isDirectory()) out.push(...tsFiles(rel));
    else if (rel.endsWith(".ts") && !rel.endsWith(".d.ts")) out.push(rel);
  }
  return out;
}

/** A relative specifier resolved the way Node and tsc resolve it: FILE.ts, then DIR/index.ts. */
function resolve(from: string, specifier: string): string | undefined {
  const base = path.posix.normalize(path.posix.join(path.posix.dirname(from), specifier));
  for (const candidate of [`${base}.ts`, `${base}/index.ts`, base]) {
    try {
      if (statSync(path.join(ROOT, candidate)).isFile()) return candidate;
    } catch {
      // not this one
    }
  }
  return undefined;
}

/** file → the project files it imports (packages and node modules left out). */
export function importGraph(files: readonly string[]): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const info = ts.preProcessFile(readFileSync(path.join(ROOT, file), "utf8"), true, true);
    const targets = info.importedFiles
      .map((f) => f.fileName)
      .filter((s) => s.startsWith("."))
      .map((s) => resolve(file, s) ?? `${file}: unresolved ${s}`);
    graph.set(file, [...new Set(targets)]);
  }
  return graph;
}

/** Every import circle, each as the files along it (Tarjan's strongly connected components of size > 1). */
export function circles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(component.sort());
    }
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  return found;
}

const isTest = (f: string) => f.startsWith("test/") || f.endsWith(".test.ts");
/** Layers that may not reach into the agent: the program, the bootstrap, the model, the shared helpers. */
const NOT_AGENT = ["components/", "cloud-init/", "scripts/", "policies/", "model/", "lib/"];
const layerOf = (f: string) => f.split("/")[0];

const graph = importGraph(tsFiles("."));

describe("architecture", () => {
  it("reads the imports of the whole project", () => {
    // Guards the checks below against passing because they saw nothing.
    expect(graph.get("index.ts")).toEqual(
      expect.arrayContaining(["components/hub.ts", "components/config/index.ts"]),
    );
    expect(graph.get("agent/src/commands.ts")).toEqual(expect.arrayContaining(["model/state-schema.ts"]));
    const unresolved = [...graph.values()].flat().filter((t) => t.includes(": unresolved "));
    expect(unresolved).toEqual([]);
  });

  it("has no import circle among source files", () => {
    const source = new Map([...graph].filter(([f]) => !isTest(f)));
    expect(circles(source)).toEqual([]);
  });

  it("keeps agent/ to itself: only bench/ and tests import it", () => {
    const bad = [...graph]
      .filter(([f]) => f === "index.ts" || NOT_AGENT.some((p) => f.startsWith(p)))
      .flatMap(([f, targets]) => targets.filter((t) => t.startsWith("agent/")).map((t) => `${f} → ${t}`));
    expect(bad).toEqual([]);
  });

  it("lets model/ and lib/ import only themselves (and npm or node modules)", () => {
    const bad = [...graph]
      .filter(([f]) => ["model", "lib"].includes(layerOf(f)))
      .flatMap(([f, targets]) => targets.filter((t) => layerOf(t) !== layerOf(f)).map((t) => `${f} → ${t}`));
    expect(bad).toEqual([]);
  });

  it("finds a circle when there is one, however long", () => {
    expect(
      circles(
        new Map([
          ["a.ts", ["b.ts"]],
          ["b.ts", ["c.ts"]],
          ["c.ts", ["a.ts"]],
          ["d.ts", ["a.ts"]],
        ]),
      ),
    ).toEqual([["a.ts", "b.ts", "c.ts"]]);
    expect(
      circles(
        new Map([
          ["a.ts", ["b.ts"]],
          ["b.ts", []],
        ]),
      ),
    ).toEqual([]);
  });
});
