import { mkdtempSync, rmSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import * as path from "path";
import { buildAgentBundle } from "../components/agent-bundle";
import { realRunner } from "../lib/runner";

// Tests here start node as a child process (device.test: with ts-node): seconds each on a loaded 2-core machine.
jest.setTimeout(30_000);

describe("agent bundle", () => {
  it("is one deterministic file that runs with plain node", async () => {
    const a = buildAgentBundle();
    const b = buildAgentBundle();
    expect(a.sha256).toBe(b.sha256);
    expect(a.code.startsWith("#!/usr/bin/env node\n")).toBe(true);
    expect(a.code).not.toMatch(/require\("(ajv|qrcode|ipaddr\.js)"\)/);
    const dir = mkdtempSync(path.join(tmpdir(), "cloudpal-bundle-"));
    try {
      const file = path.join(dir, "cloudpal-agent.js");
      writeFileSync(file, a.code);
      const r = await realRunner(() => undefined).run(process.execPath, [file, "--help"]);
      expect(r.stdout).toContain("cloudpal-agent apply");
      const bad = await realRunner(() => undefined).run(process.execPath, [file, "apply"], {
        input: '{"version":2}',
        allowFailure: true,
        timeoutMs: 20_000,
      });
      expect(bad.code).toBe(1);
      expect(bad.stderr).toContain("'version' (2) is not a state version this agent reads");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
