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
import { DEVICE_KEY_PLACEHOLDER } from "../model/client-config";
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

/** `cloudpal-agent peer config NAME` against a persisted state, as the hub runs it. */
async function agentPeerConfig(state: HubState, name: string): Promise<string> {
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
    const code = await runCli(["peer", "config", name], ctx, {
      stdin: async () => "",
      stdout: (t) => (out += t),
      stderr: (t) => (err += t),
    });
    expect({ code, err }).toEqual({ code: 0, err: "" });
    return out;
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
