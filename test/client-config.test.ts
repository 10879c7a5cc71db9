/**
 * One client config, two callers: the program's `clientConfigs` stack output and `cloudpal-agent peer config`
 * on the hub print the same text for the same device, because both build it from the hub state the program
 * sends (model/client-config.ts). The only difference is the PrivateKey line of a device whose key CloudPal
 * made: the program holds that key, the hub never does.
 */
import { createHash } from "crypto";
import { mkdtempSync, rmSync } from "fs";
import { tmpdir } from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { installMocks, settle, valueOf } from "./helpers/pulumi-mocks";
import { minimalConfig, wireguardPublicKey } from "./helpers/fixtures";

jest.setTimeout(60_000);

const recorder = installMocks(pulumi);

// Imported after setMocks (mocks before the program); these modules register nothing at import time.
import { runCli } from "../agent/src/commands";
import { defaultOptions, pathsUnder } from "../agent/src/options";
import { persistState } from "../agent/src/state-store";
import { loadConfig } from "../components/config";
import { Hub } from "../components/hub";
import { clientConfigWithPort, DEVICE_KEY_PLACEHOLDER } from "../model/client-config";
import { endpointWithPort } from "../model/public-ports";
import type { HubState } from "../model/state";
import { parseHubState } from "../model/state-schema";

const FAKE_AGENT = "// agent bundle stand-in\n";

async function programOutputs(raw: Record<string, unknown>): Promise<{
  state: HubState;
  configs: Record<string, string>;
}> {
  recorder.reset();
  const hub = new Hub(
    "hub",
    {
      config: loadConfig(raw),
      sshPrivateKey: pulumi.secret(
        "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----\n",
      ),
      agentBundle: { code: FAKE_AGENT, sha256: createHash("sha256").update(FAKE_AGENT).digest("hex") },
    },
    { transformations: [recorder.transformation] },
  );
  const [state, configs] = await valueOf(pulumi.all([hub.state, hub.clientConfigs]));
  await settle(recorder);
  return { state: parseHubState(state), configs };
}

/** `cloudpal-agent peer config NAME [options]` against a persisted state, as the hub runs it. */
async function agentPeerConfig(state: HubState, name: string, options: string[] = []): Promise<string> {
  const r = await agentPeerConfigResult(state, name, options);
  expect({ code: r.code, err: r.err }).toEqual({ code: 0, err: "" });
  return r.out;
}

async function agentPeerConfigResult(
  state: HubState,
  name: string,
  options: string[],
): Promise<{ code: number; out: string; err: string }> {
  const root = mkdtempSync(path.join(tmpdir(), "cloudpal-peer-config-"));
  try {
    const ctx = {
      options: defaultOptions(pathsUnder(root)),
      runner: undefined as never,
      log: () => undefined,
    };
    persistState(ctx, state);
    let out = "";
    let err = "";
    const code = await runCli(["peer", "config", name, ...options], ctx, {
      stdin: async () => "",
      stdout: (t) => (out += t),
      stderr: (t) => (err += t),
    });
    return { code, out, err };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

describe("client configs: the program and the hub agree", () => {
  const raw = minimalConfig("linode", {
    endpointHostname: "vpn.example.com",
    persistentKeepalive: 40,
    firewallMode: "vpn",
    peers: [{ name: "laptop" }, { name: "phone", publicKey: wireguardPublicKey("phone"), group: "kids" }],
    groups: { family: { reaches: ["family", "kids"], internet: true }, kids: { reaches: ["kids"] } },
  });

  it("carries the endpoint and the keepalive in the state the hub receives", async () => {
    const { state } = await programOutputs(raw);
    expect(state.hub.endpoint).toBe("vpn.example.com:51820");
    expect(state.hub.persistentKeepalive).toBe(40);
  });

  it("prints the same text for a device that made its own key", async () => {
    const { state, configs } = await programOutputs(raw);
    const onHub = await agentPeerConfig(state, "phone");
    expect(onHub).toBe(configs.phone);
    expect(onHub).toContain("Endpoint = vpn.example.com:51820\n");
    expect(onHub).toContain("PersistentKeepalive = 40\n");
  });

  it("differs only in the PrivateKey line for a device whose key CloudPal made", async () => {
    const { state, configs } = await programOutputs(raw);
    const onHub = await agentPeerConfig(state, "laptop");
    const program = configs.laptop.split("\n");
    const hub = onHub.split("\n");
    const differing = program.flatMap((line, i) => (line === hub[i] ? [] : [[line.split(" = ")[0], hub[i]]]));
    expect(hub.length).toBe(program.length);
    expect(differing).toEqual([["PrivateKey", `PrivateKey = ${DEVICE_KEY_PLACEHOLDER}`]]);
  });
});

describe("--port: the same device dialling one of the hub's extra WireGuard ports", () => {
  const raw = minimalConfig("linode", {
    endpointHostname: "vpn.example.com",
    peers: [{ name: "laptop" }, { name: "phone", publicKey: wireguardPublicKey("phone") }],
  });

  it("the hub's 'peer config --port 443' and 'npm run device -- --port 443' print the same text", async () => {
    const { state, configs } = await programOutputs(raw);
    expect(state.hub.wireguardExtraPorts).toEqual([443, 53]);
    const onHub = await agentPeerConfig(state, "phone", ["--port", "443"]);
    expect(onHub).toBe(clientConfigWithPort(configs.phone, 443));
    // Same keys, same addresses: only the endpoint's port differs from the normal config.
    const normal = configs.phone.split("\n");
    const differing = onHub.split("\n").filter((line, i) => line !== normal[i]);
    expect(differing).toEqual(["Endpoint = vpn.example.com:443"]);
    // The listen port itself is allowed too, and gives the normal config back.
    expect(await agentPeerConfig(state, "phone", ["--port", "51820"])).toBe(configs.phone);
    expect(clientConfigWithPort(configs.laptop, 53)).toContain(
      configs.laptop.split("\n").find((l) => l.startsWith("PrivateKey = ")) ?? "missing",
    );
  });

  it("refuses a port the hub does not answer on, and a --port that is not a port, in one line", async () => {
    const { state } = await programOutputs(raw);
    expect(await agentPeerConfigResult(state, "phone", ["--port", "8443"])).toEqual({
      code: 1,
      out: "",
      err: "'--port' (8443) is not a port the hub's WireGuard answers on: use one of 51820, 443, 53 (add it to 'cloudpal:wireguardExtraPorts' and run 'pulumi up' to open another).\n",
    });
    expect((await agentPeerConfigResult(state, "phone", ["--port", "44x"])).err).toBe(
      `'--port' ("44x") is not a port: give a number from 1 to 65535, e.g. '--port 443'.\n`,
    );
    const { state: none } = await programOutputs({ ...raw, wireguardExtraPorts: [] });
    expect((await agentPeerConfigResult(none, "phone", ["--port", "443"])).err).toContain(
      "use one of 51820 (",
    );
  });

  it("keeps an IPv6 literal in brackets", () => {
    expect(endpointWithPort("[2001:db8::1]:51820", 443)).toBe("[2001:db8::1]:443");
    expect(endpointWithPort("203.0.113.7:51820", 53)).toBe("203.0.113.7:53");
  });
});
