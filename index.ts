/**
 * CloudPal: one person's private WireGuard hub, as one Pulumi stack. The config is validated completely
 * before anything is registered; a bad config ends the run with every problem listed, and creates nothing.
 */
import * as pulumi from "@pulumi/pulumi";
import { buildAgentBundle } from "./components/agent-bundle";
import {
  CONFIG_NAMESPACE,
  ConfigError,
  loadStackConfig,
  SSH_PRIVATE_KEY_KEY,
  SSH_PRIVATE_KEY_PASSWORD_KEY,
} from "./components/config";
import { groupPolicies as groupPoliciesOf } from "./components/group-policies";
import { Hub } from "./components/hub";
import { wireguardPorts as configWireguardPorts } from "./model/public-ports";

function load() {
  try {
    return loadStackConfig();
  } catch (e) {
    // RunError prints the message without a stack trace: the lines are the whole story.
    if (e instanceof ConfigError) throw new pulumi.RunError(e.message);
    throw e;
  }
}

const config = load();
const stackConfig = new pulumi.Config(CONFIG_NAMESPACE);
const sshPrivateKey = stackConfig.requireSecret(SSH_PRIVATE_KEY_KEY);
// Only for a passphrase-protected key (checked with the key in loadStackConfig).
const sshPrivateKeyPassword = stackConfig.getSecret(SSH_PRIVATE_KEY_PASSWORD_KEY);
const hub = new Hub("hub", {
  config,
  sshPrivateKey,
  ...(sshPrivateKeyPassword !== undefined ? { sshPrivateKeyPassword } : {}),
  agentBundle: buildAgentBundle(),
});

export const provider = config.host.provider;
export const ipv4 = hub.ipv4;
export const ipv6 = hub.ipv6;
export const endpoint = hub.endpoint;
export const hubPublicKey = hub.hubPublicKey;
/** Add to ~/.ssh/known_hosts: the hub keeps this host key across rebuilds (README "Delivery trust"). */
export const knownHosts = hub.knownHosts;
/** `npm run device -- NAME` reads this (scripts/device.ts). */
export const clientConfigs = hub.clientConfigs;
/** Device name → `ss://` key of the TCP path: `npm run device -- NAME --tcp [--qr]`. */
export const tcpAccessKeys = hub.tcpAccessKeys;
/** The UDP ports devices may dial, the listen port first: `npm run device -- NAME --port P` checks P here. */
export const wireguardPorts = configWireguardPorts(config);
/** Each group's own blocklists, allow and deny entries and site mode (README "Per-group site policies"). */
export const groupPolicies = groupPoliciesOf(config);
/** Devices the hub answers with DNS64 and translates to IPv4 for (NAT64, model/nat64.ts); empty when none. */
export const nat64Devices = config.peers.filter((p) => p.nat64).map((p) => p.name);
