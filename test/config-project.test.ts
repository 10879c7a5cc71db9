/**
 * Pulumi.yaml declares the config keys (the Pulumi CLI checks types, and requires a default for each optional
 * key). These tests keep it in step with components/config/defaults.ts, where the defaults really live.
 */
import { readFileSync } from "fs";
import * as path from "path";
import { parse } from "yaml";
import { CONFIG_KEYS, loadConfig, readStackConfig } from "../components/config";
import { CONFIG_SCHEMA } from "../components/config/schema";
import { minimalConfig } from "./helpers/fixtures";

interface Declared {
  type?: string;
  items?: { type: string };
  description?: string;
  default?: unknown;
  secret?: boolean;
}

const project = parse(readFileSync(path.join(__dirname, "..", "Pulumi.yaml"), "utf8")) as {
  name: string;
  stackConfigDir: string;
  config: Record<string, Declared>;
};

it("names the project cloudpal and keeps stack files in stacks/", () => {
  expect(project.name).toBe("cloudpal");
  expect(project.stackConfigDir).toBe("stacks");
});

it("declares exactly the keys the program reads, plus the secret SSH private key", () => {
  expect(Object.keys(project.config).sort()).toEqual([...CONFIG_KEYS, "sshPrivateKey"].sort());
  expect(project.config.sshPrivateKey).toMatchObject({ type: "string", secret: true });
  expect(project.config.sshPrivateKey.default).toBeUndefined();
});

it("describes every key", () => {
  for (const [key, d] of Object.entries(project.config)) {
    expect([key, typeof d.description === "string" && d.description.length > 10]).toEqual([key, true]);
  }
});

it("requires (gives no default to) exactly the keys the schema requires", () => {
  const required = Object.entries(project.config)
    .filter(([k, d]) => d.default === undefined && k !== "sshPrivateKey")
    .map(([k]) => k);
  expect(required.sort()).toEqual([...CONFIG_SCHEMA.required].sort());
});

it("declares the same type as the schema for every typed key", () => {
  const schemaType = (k: string) => {
    const s = (CONFIG_SCHEMA.properties as Record<string, { type?: string; enum?: unknown }>)[k];
    return s.type ?? (s.enum ? "string" : undefined);
  };
  for (const [key, d] of Object.entries(project.config)) {
    if (key === "sshPrivateKey" || d.type === undefined) continue;
    expect([key, d.type]).toEqual([key, schemaType(key)]);
  }
});

it.each(["digitalocean", "linode", "vultr", "existing"])(
  "%s: the defaults Pulumi.yaml hands the program change nothing (defaults.ts applies the same ones)",
  (provider) => {
    const flat: Record<string, string> = {};
    for (const [key, d] of Object.entries(project.config)) {
      if (d.default === undefined) continue;
      flat[`cloudpal:${key}`] = typeof d.default === "string" ? d.default : JSON.stringify(d.default);
    }
    const withProjectDefaults = { ...readStackConfig(flat), ...minimalConfig(provider) };
    expect(loadConfig(withProjectDefaults)).toEqual(loadConfig(minimalConfig(provider)));
  },
);
