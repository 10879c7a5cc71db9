import { readFileSync, writeFileSync } from "fs";
import { join } from "path";
import { parse } from "yaml";
import { renderUserData } from "../cloud-init/render";
import { CLOUD_CONFIG_MODULES } from "../cloud-init/types";
import { COMBINATIONS, run, withTempDir } from "./cloud-init-helpers";

/** Debian's cloud-init package: the schema `cloud-init schema` uses, and the module lists it runs. */
const SCHEMA_FILE = "/usr/lib/python3/dist-packages/cloudinit/config/schemas/schema-cloud-config-v1.json";
const DEBIAN_CLOUD_CFG = "/etc/cloud/cloud.cfg";

function schemaCheck(document: string): { ok: boolean; output: string } {
  return withTempDir((dir) => {
    const file = join(dir, "user-data");
    writeFileSync(file, document);
    const r = run("cloud-init", ["schema", "--config-file", file]);
    return { ok: r.status === 0, output: `${r.stdout}${r.stderr}` };
  });
}

describe("cloud-init schema (Debian's real `cloud-init schema --config-file`)", () => {
  it.each(COMBINATIONS)("accepts the user-data for $name, without deprecation warnings", ({ spec }) => {
    const { ok, output } = schemaCheck(renderUserData(spec));
    expect(output).toContain("Valid cloud-config");
    expect(ok).toBe(true);
    expect(output).not.toMatch(/deprecat/i);
  });

  it("rejects a document with a wrongly typed value (so the check can fail)", () => {
    const broken = renderUserData(COMBINATIONS[0]!.spec).replace('permissions: "0644"', "permissions: 644");
    const { ok, output } = schemaCheck(broken);
    expect(ok).toBe(false);
    expect(output).toMatch(/permissions: 644 is not of type 'string'/);
  });

  it("rejects the document without its #cloud-config header", () => {
    const { ok, output } = schemaCheck(renderUserData(COMBINATIONS[0]!.spec).replace(/^#cloud-config\n/, ""));
    expect(ok).toBe(false);
    expect(output).toMatch(/needs to begin with "#cloud-config"/);
  });
});

describe("top-level keys (`cloud-init schema` ignores unknown ones)", () => {
  const schema = JSON.parse(readFileSync(SCHEMA_FILE, "utf8")) as {
    $defs: Record<string, { properties?: Record<string, unknown> }>;
  };
  const schemaKeys = new Set(Object.values(schema.$defs).flatMap((d) => Object.keys(d.properties ?? {})));
  const cloudCfg = parse(readFileSync(DEBIAN_CLOUD_CFG, "utf8")) as Record<string, unknown>;
  const debianModules = new Set(
    ["cloud_init_modules", "cloud_config_modules", "cloud_final_modules"]
      .flatMap((stage) => (cloudCfg[stage] as (string | string[])[]) ?? [])
      .map((m) => (Array.isArray(m) ? m[0]! : m).replace(/-/g, "_")),
  );
  const keys = COMBINATIONS.flatMap(({ spec }) => Object.keys(parse(renderUserData(spec)) as object));

  it("uses only keys listed in CLOUD_CONFIG_MODULES", () => {
    expect(keys.filter((k) => !(k in CLOUD_CONFIG_MODULES))).toEqual([]);
  });

  it("uses only keys that cloud-init's schema defines", () => {
    expect(schemaKeys.size).toBeGreaterThan(50);
    expect(keys.filter((k) => !schemaKeys.has(k))).toEqual([]);
    expect(schemaKeys.has("runcmnd")).toBe(false);
  });

  it("relies only on modules Debian's default cloud.cfg runs", () => {
    expect(debianModules.has("runcmd")).toBe(true);
    const modules = [...new Set(Object.values(CLOUD_CONFIG_MODULES))];
    expect(modules.filter((m) => !debianModules.has(m))).toEqual([]);
  });
});
