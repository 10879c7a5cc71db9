/**
 * The Hub: one person's private WireGuard hub as one component. It owns the keys (in Pulumi state, so they
 * survive rebuilds and moves between providers), the host (chosen by provider), the delivery of the agent
 * and its desired state over SSH, and the per-device client configs.
 */
import { createHash } from "crypto";
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { tcpAccessKeys } from "../model/access-key";
import { clientConfigInput, renderClientConfig } from "../model/client-config";
import { privateKeyFromBytes, publicKeyFromPrivate } from "../model/keys";
import { ed25519HostKey, knownHostsLine } from "../model/ssh-host-key";
import { renderBootstrapScript, renderUserData } from "../cloud-init/render";
import type { BootstrapSpec } from "../cloud-init/spec";
import type { HubConfig } from "./config";
import { writeAgentBundleFile } from "./agent-bundle-file";
import {
  COMMAND_OPTIONS,
  DEFAULT_CLOUD_INIT_TIMEOUT_SECONDS,
  DIAL,
  deliverySteps,
  type Payload,
  type RemoteStep,
  type StdinPayload,
} from "./delivery";
import { digitalOceanHost } from "./hosts/digitalocean";
import { existingHost } from "./hosts/existing";
import type { Host, HostArgs } from "./hosts/host";
import { linodeHost } from "./hosts/linode";
import { vultrHost } from "./hosts/vultr";
import { buildHubState, type PeerKeys } from "./state";

export const HUB_TYPE = "cloudpal:index:Hub";

export interface AgentBundle {
  readonly code: string;
  readonly sha256: string;
}

export interface HubArgs {
  /** Validated config (components/config loadConfig). */
  readonly config: HubConfig;
  /** The operator's SSH private key for delivery; kept secret. */
  readonly sshPrivateKey: pulumi.Input<string>;
  /** Its passphrase, when it has one (`cloudpal:sshPrivateKeyPassword`); kept secret. */
  readonly sshPrivateKeyPassword?: pulumi.Input<string>;
  /** The agent bundle (components/agent-bundle.ts buildAgentBundle). */
  readonly agentBundle: AgentBundle;
}

/**
 * Providers whose instance disk is not documented as encrypted at rest, so the hub's keys live on a volume
 * (components/hosts/digitalocean.ts, vultr.ts). Linode encrypts the instance disk (`diskEncryption`); an
 * existing server's disk is its owner's to encrypt.
 */
export function stateOnVolume(provider: HubConfig["host"]["provider"]): boolean {
  return provider === "digitalocean" || provider === "vultr";
}

/** The part of the config fixed for the VM's whole life: the only input to user-data. */
export function bootstrapSpec(config: HubConfig): BootstrapSpec {
  return {
    hostname: config.hostname,
    image: config.image,
    operator: { user: config.operatorUser, sshPublicKeys: [...config.sshPublicKeys] },
    sshPort: config.sshPort,
    wireguardPort: config.wireguardPort,
    unattendedUpgrades: { autoReboot: config.autoReboot.enabled, rebootTime: config.autoReboot.time },
    ...(stateOnVolume(config.host.provider) ? { stateOnVolume: true } : {}),
  };
}

function createHost(name: string, args: HostArgs, parent: pulumi.Resource): Host {
  const provider = args.config.host.provider;
  switch (provider) {
    case "digitalocean":
      return digitalOceanHost(name, args, parent);
    case "linode":
      return linodeHost(name, args, parent);
    case "vultr":
      return vultrHost(name, args, parent);
    case "existing":
      return existingHost(args);
    default: {
      const unknown: never = provider;
      throw new Error(`unknown provider ${String(unknown)}`);
    }
  }
}

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/** "host:port", with brackets for an IPv6 literal as wg-quick expects. */
export function endpointOf(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

export class Hub extends pulumi.ComponentResource {
  public readonly ipv4: pulumi.Output<string | undefined>;
  public readonly ipv6: pulumi.Output<string | undefined>;
  public readonly endpoint: pulumi.Output<string>;
  public readonly hubPublicKey: pulumi.Output<string>;
  /** Device name → wg-quick config text (secret: it may hold the device's private key). */
  public readonly clientConfigs: pulumi.Output<Record<string, string>>;
  /** Device name → `ss://` access key of the TCP path (secret: it holds the device's password). */
  public readonly tcpAccessKeys: pulumi.Output<Record<string, string>>;
  /** The desired state sent to the agent, as JSON (secret: it holds the hub's private key). */
  public readonly state: pulumi.Output<string>;
  /** The hub's SSH host key (authorized_keys format), pinned on every delivery connection. */
  public readonly sshHostKey: pulumi.Output<string>;
  /** The line for the operator's ~/.ssh/known_hosts: "[host]:port ssh-ed25519 …" (bare host on port 22). */
  public readonly knownHosts: pulumi.Output<string>;

  constructor(name: string, args: HubArgs, opts?: pulumi.ComponentResourceOptions) {
    super(HUB_TYPE, name, {}, opts);
    const config = args.config;
    const child = { parent: this };

    // Keys come from random bytes held in state: stable across runs, never generated on (or sent to) a VM
    // through user-data, and they move with the stack when the hub is rebuilt elsewhere.
    const hubKeyBytes = new random.RandomBytes(`${name}-wireguard-key`, { length: 32 }, child);
    const hubPrivateKey = pulumi.secret(hubKeyBytes.base64.apply((b) => privateKeyFromBytes(fromBase64(b))));
    this.hubPublicKey = pulumi.unsecret(hubPrivateKey.apply(publicKeyFromPrivate));

    // Resource names carry the peer's name, never its position: reordering peers recreates nothing.
    const peerKeys = config.peers.map((peer) => {
      const psk = new random.RandomBytes(`${name}-peer-${peer.name}-psk`, { length: 32 }, child);
      const presharedKey = pulumi.secret(psk.base64);
      // The TCP-path password: made like the device keys, in encrypted state; rotated with
      // `pulumi up --replace` on this resource (README "TCP path").
      const tcp = new random.RandomBytes(`${name}-peer-${peer.name}-tcp`, { length: 32 }, child);
      const tcpKey = pulumi.secret(tcp.base64.apply((b) => Buffer.from(b, "base64").toString("base64url")));
      if (peer.publicKey !== undefined) {
        return {
          peer,
          publicKey: pulumi.output(peer.publicKey),
          presharedKey,
          tcpKey,
          privateKey: undefined,
        };
      }
      const device = new random.RandomBytes(`${name}-peer-${peer.name}-key`, { length: 32 }, child);
      const privateKey = pulumi.secret(device.base64.apply((b) => privateKeyFromBytes(fromBase64(b))));
      const publicKey = pulumi.unsecret(privateKey.apply(publicKeyFromPrivate));
      return { peer, publicKey, presharedKey, tcpKey, privateKey };
    });

    const spec = bootstrapSpec(config);
    // The hub's SSH host key. On a VM the stack makes it (random bytes in state, like the WireGuard key) and
    // cloud-init installs it, so delivery can check the hub's identity before sending any key, and a rebuilt
    // hub presents the same key. On an existing server it is the key the user read on its console.
    let userData: pulumi.Output<string>;
    if (config.host.provider === "existing") {
      this.sshHostKey = pulumi.output(config.host.hostKey.trim());
      userData = pulumi.output(renderUserData(spec));
    } else {
      const seed = new random.RandomBytes(`${name}-ssh-host-key`, { length: 32 }, child);
      const hostKey = pulumi.secret(
        seed.base64.apply((b) => ed25519HostKey(b, `${config.hostname}-cloudpal-host`)),
      );
      this.sshHostKey = pulumi.unsecret(hostKey.apply((k) => k.publicKey));
      // A secret: it holds the host's private key (README "Delivery trust").
      userData = pulumi.secret(hostKey.apply((k) => renderUserData(spec, k)));
    }
    const host = createHost(name, { config, userData }, this);
    this.knownHosts = pulumi
      .all([host.sshHost, this.sshHostKey])
      .apply(([sshHost, key]) => knownHostsLine(sshHost, config.sshPort, key));
    this.ipv4 = host.ipv4;
    this.ipv6 = host.ipv6;
    const endpointHost =
      config.endpointHostname !== undefined
        ? pulumi.output(config.endpointHostname)
        : pulumi.all([host.ipv4, host.sshHost]).apply(([v4, sshHost]) => v4 ?? sshHost);
    this.endpoint = endpointHost.apply((h) => endpointOf(h, config.wireguardPort));

    const keyMaterial = pulumi.all(
      peerKeys.map((k) =>
        pulumi.all([k.publicKey, k.presharedKey, k.privateKey ?? pulumi.output(undefined), k.tcpKey]),
      ),
    );
    const hubState = pulumi
      .all([hubPrivateKey, keyMaterial, this.endpoint, host.publicIpv6])
      .apply(([hubKey, material, endpoint, publicIpv6]) => {
        const byName = new Map<string, PeerKeys>();
        material.forEach(([publicKey, presharedKey, , tcpKey], i) =>
          byName.set(peerKeys[i].peer.name, { publicKey, presharedKey, tcpKey }),
        );
        return buildHubState(config, hubKey, byName, endpoint, publicIpv6);
      });
    this.state = pulumi.secret(hubState.apply((s) => JSON.stringify(s)));

    // From the state the hub receives, through the same function the agent's `peer config` uses, so both
    // print the same text for a device (only the program knows a device's private key, when it made it).
    this.clientConfigs = pulumi.secret(
      pulumi.all([hubState, keyMaterial]).apply(([state, material]) => {
        const out: Record<string, string> = {};
        material.forEach(([, , privateKey], i) => {
          const name = peerKeys[i].peer.name;
          out[name] = renderClientConfig(
            clientConfigInput(state, name, privateKey !== undefined ? { privateKey } : {}),
          );
        });
        return out;
      }),
    );

    // `ss://` keys for the TCP path, from the same state the hub receives (model/access-key.ts).
    this.tcpAccessKeys = pulumi.secret(hubState.apply(tcpAccessKeys));

    this.deliver(name, config, host, args, spec);

    this.registerOutputs({
      ipv4: this.ipv4,
      ipv6: this.ipv6,
      endpoint: this.endpoint,
      hubPublicKey: this.hubPublicKey,
      clientConfigs: this.clientConfigs,
      tcpAccessKeys: this.tcpAccessKeys,
      knownHosts: this.knownHosts,
    });
  }

  /**
   * One remote Command per delivery step, chained. A step re-runs when its own payload, a payload it lists
   * in `triggers`, or the machine changes; hashes stand in for the payloads so triggers hold no secret text.
   */
  private deliver(name: string, config: HubConfig, host: Host, args: HubArgs, spec: BootstrapSpec): void {
    const payloads: Record<StdinPayload, pulumi.Output<string>> = {
      state: this.state,
      bootstrapScript: pulumi.output(renderBootstrapScript(spec)),
    };
    const files: Record<"agentBundle", string> = { agentBundle: writeAgentBundleFile(args.agentBundle) };
    const hashes: Record<Payload, pulumi.Output<string>> = {
      agentBundle: pulumi.output(args.agentBundle.sha256),
      state: this.state.apply(sha256),
      bootstrapScript: payloads.bootstrapScript.apply(sha256),
    };
    const steps: RemoteStep[] = deliverySteps({
      bootstrapOverSsh: config.host.provider === "existing",
      cloudInitTimeoutSeconds: DEFAULT_CLOUD_INIT_TIMEOUT_SECONDS,
      stateOnVolume: spec.stateOnVolume === true,
    });
    // hostKey: an authorized_keys line, checked with ssh.FixedHostKey before authentication (pulumi-command
    // remote/connection.go L85-98); unset, the provider would accept any host (InsecureIgnoreHostKey).
    const connectionFor = (first: boolean): command.types.input.remote.ConnectionArgs => ({
      host: host.sshHost,
      port: config.sshPort,
      user: config.operatorUser,
      privateKey: pulumi.secret(args.sshPrivateKey),
      ...(args.sshPrivateKeyPassword !== undefined
        ? { privateKeyPassword: pulumi.secret(args.sshPrivateKeyPassword) }
        : {}),
      hostKey: this.sshHostKey,
      perDialTimeout: DIAL.perDialTimeoutSeconds,
      dialErrorLimit:
        first && config.host.provider !== "existing" ? DIAL.firstBootDialErrorLimit : DIAL.dialErrorLimit,
    });
    let previous: pulumi.Resource[] = [...host.ready];
    steps.forEach((step, i) => {
      const connection = connectionFor(i === 0);
      if (step.upload) {
        // The bundle goes as a file (state keeps its path and hash), re-copied when its hash changes or the
        // machine is replaced; the step's command then installs it.
        const upload = new command.remote.CopyToRemote(
          `${name}-${step.name}-upload`,
          {
            connection,
            source: new pulumi.asset.FileAsset(files[step.upload.payload]),
            remotePath: step.upload.remotePath,
            triggers: [host.machineId],
          },
          { parent: this, dependsOn: previous },
        );
        previous = [upload];
      }
      const watched = [
        ...(step.stdin ? [step.stdin] : []),
        ...(step.upload ? [step.upload.payload] : []),
        ...(step.triggers ?? []),
      ];
      const cmd = new command.remote.Command(
        `${name}-${step.name}`,
        {
          connection,
          create: step.command,
          ...(step.stdin ? { stdin: payloads[step.stdin] } : {}),
          triggers: [host.machineId, ...watched.map((p) => hashes[p])],
          ...COMMAND_OPTIONS,
        },
        // Output may echo what the agent did; keep it out of plain-text state.
        { parent: this, dependsOn: previous, additionalSecretOutputs: ["stdout", "stderr"] },
      );
      previous = [cmd];
    });
  }
}

function fromBase64(b: string): Uint8Array {
  return Buffer.from(b, "base64");
}
