/**
 * Runs the CloudPal program itself (index.ts) under Pulumi's mocks for a test stack and captures what
 * `pulumi up` would hand to the cloud and to the hub: the machine's user-data, the delivery Commands (their
 * command strings and stdin) and the `clientConfigs` stack output. The VM test boots exactly that user-data
 * and runs exactly those commands, so what it proves is what the program ships.
 *
 * The mocks' random bytes are a function of the resource name (test/helpers/pulumi-mocks.ts), which is what
 * Pulumi's state gives a real stack: run the program again and the hub and device keys come out the same.
 * That is how the test's "rebuild" models a stack whose state survives the server.
 */
import { readFileSync } from "fs";
import type * as pulumiType from "@pulumi/pulumi";
import {
  deliverySteps,
  DEFAULT_CLOUD_INIT_TIMEOUT_SECONDS,
  type RemoteStep,
} from "../../../components/delivery";
import type { HubConfig } from "../../../components/config";
import { stateOnVolume } from "../../../components/hub";
import { installMocks, settle, valueOf, type Registered } from "../../helpers/pulumi-mocks";
import type { Payloads } from "./delivery-runner";

export interface RenderedStack {
  /** The machine's user-data; "" for an `existing` server, which gets none. */
  readonly userData: string;
  /** The program's delivery Commands, in order, as steps plus the payloads they carry on stdin. */
  readonly steps: readonly RemoteStep[];
  readonly payloads: Payloads;
  readonly clientConfigs: Readonly<Record<string, string>>;
  readonly endpoint: string;
  readonly resources: readonly Registered[];
  /** The host key every Command pins (`connection.hostKey`): one key for all of them. */
  readonly hostKey: string;
  /** Where every Command dials, as "HOST port PORT" (`connection.host`, `connection.port`). */
  readonly sshAddress: string;
}

/** Pulumi's flat config map: structured values as JSON text, as `pulumi config set --path` stores them. */
function flatConfig(config: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(config))
    out[`cloudpal:${k}`] = typeof v === "string" ? v : JSON.stringify(v);
  return out;
}

/**
 * `isolate` loads the program with a fresh module registry (jest.isolateModules), so the program can run
 * twice in one process, as two `pulumi up` runs would; without it the program is loaded once, normally.
 */
export async function runProgram(
  config: Record<string, unknown>,
  sshPrivateKey: string,
  isolate: (load: () => void) => void = (load) => load(),
): Promise<RenderedStack> {
  let pulumi: typeof pulumiType | undefined;
  let program: Record<string, unknown> = {};
  let recorder: ReturnType<typeof installMocks> | undefined;
  isolate(() => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- must be the copy the program loads.
    pulumi = require("@pulumi/pulumi") as typeof pulumiType;
    recorder = installMocks(pulumi, { stack: "e2e" });
    pulumi.runtime.setAllConfig({ ...flatConfig(config), "cloudpal:sshPrivateKey": sshPrivateKey }, [
      "cloudpal:sshPrivateKey",
    ]);
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded after setMocks (the project rule: mocks before the program).
    program = require("../../../index") as Record<string, unknown>;
  });
  if (!pulumi || !recorder) throw new Error("the program did not load");
  const clientConfigs = await valueOf(program.clientConfigs as pulumiType.Output<Record<string, string>>);
  const endpoint = await valueOf(program.endpoint as pulumiType.Output<string>);
  await settle(recorder);
  const resources = [...recorder.registered];

  // A cloud stack creates one machine with user-data; an `existing` stack creates none (the bootstrap script
  // travels as a delivery step's stdin instead).
  const machines = resources.filter((r) => typeof r.inputs.userData === "string");
  const wanted = config.provider === "existing" ? 0 : 1;
  if (machines.length !== wanted)
    throw new Error(`expected ${wanted} resource(s) with userData, found ${machines.length}`);
  const userData = wanted === 1 ? (machines[0].inputs.userData as string) : "";

  // The Commands the program registered, matched to the contract's steps by name; their command text must be
  // the contract's, and their stdin is the payload the test sends.
  const commands = new Map(
    resources.filter((r) => r.type === "command:remote:Command").map((r) => [r.name, r]),
  );
  const expected = deliverySteps({
    bootstrapOverSsh: config.provider === "existing",
    cloudInitTimeoutSeconds: DEFAULT_CLOUD_INIT_TIMEOUT_SECONDS,
    stateOnVolume: stateOnVolume(config.provider as HubConfig["host"]["provider"]),
  });
  const payloads: Payloads = {};
  const steps: RemoteStep[] = [];
  for (const step of expected) {
    const cmd = [...commands.values()].find((c) => c.name.endsWith(`-${step.name}`));
    if (!cmd) throw new Error(`the program registered no Command for delivery step '${step.name}'`);
    if (cmd.inputs.create !== step.command) {
      throw new Error(
        `the program's Command ${cmd.name} runs a different command than delivery step '${step.name}'`,
      );
    }
    if (step.stdin) {
      const stdin = cmd.inputs.stdin;
      if (typeof stdin !== "string") throw new Error(`Command ${cmd.name} has no stdin for '${step.stdin}'`);
      payloads[step.stdin] = stdin;
    }
    if (step.upload) {
      // The file the program's CopyToRemote would send: the bytes at its FileAsset's path.
      const copy = resources.find(
        (r) => r.type === "command:remote:CopyToRemote" && r.name === `${cmd.name}-upload`,
      );
      // A FileAsset as the program built it (its path is a promise) or as serialised (a string).
      const path: unknown = await (copy?.inputs.source as { path?: unknown } | undefined)?.path;
      if (typeof path !== "string") throw new Error(`Command ${cmd.name} has no FileAsset upload`);
      if (copy?.inputs.remotePath !== step.upload.remotePath)
        throw new Error(
          `the upload for ${cmd.name} goes to a different path than delivery step '${step.name}'`,
        );
      payloads[step.upload.payload] = readFileSync(path);
    }
    steps.push({
      name: step.name,
      command: cmd.inputs.create as string,
      ...(step.stdin ? { stdin: step.stdin } : {}),
      ...(step.upload ? { upload: step.upload } : {}),
    });
  }
  if (commands.size !== expected.length) {
    throw new Error(
      `the program registered ${commands.size} Commands, the contract has ${expected.length} steps`,
    );
  }
  const connections = resources
    .filter((r) => r.type.startsWith("command:remote:"))
    .map((r) => (r.inputs.connection ?? {}) as { hostKey?: unknown; host?: unknown; port?: unknown });
  const hostKeys = new Set(connections.map((c) => c.hostKey));
  const [hostKey] = [...hostKeys];
  if (hostKeys.size !== 1 || typeof hostKey !== "string")
    throw new Error(`expected every delivery resource to pin one host key, found ${hostKeys.size}`);
  const dialled = new Set(connections.map((c) => `${String(c.host)} port ${String(c.port)}`));
  if (dialled.size !== 1)
    throw new Error(`expected every delivery resource to dial one address, found ${[...dialled].join(", ")}`);
  const [sshAddress] = [...dialled];
  return { userData, steps, payloads, clientConfigs, endpoint, resources, hostKey, sshAddress };
}
