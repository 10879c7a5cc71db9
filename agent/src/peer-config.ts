/**
 * `cloudpal-agent peer config NAME`: the same wg-quick text the Pulumi program outputs, built from the
 * persisted state. The hub never holds a device's private key, so the PrivateKey line is the placeholder.
 */
import { hubAddresses } from "../../model/addressing";
import { renderClientConfig } from "../../model/client-config";
import { publicKeyFromPrivate } from "../../model/keys";
import type { HubState } from "../../model/state";

export const DEFAULT_KEEPALIVE_SECONDS = 25;

export function peerClientConfig(state: HubState, name: string, endpointOverride?: string): string {
  const peer = state.peers.find((p) => p.name === name);
  if (!peer) {
    const known = state.peers.map((p) => p.name).join(", ") || "none";
    throw new Error(`peer ${JSON.stringify(name)} is not in the hub's state: use one of: ${known}.`);
  }
  const endpoint = endpointOverride ?? state.hub.endpoint;
  if (!endpoint) {
    throw new Error(
      `the state has no 'hub.endpoint': pass --endpoint HOST:${state.hub.listenPort} with the hub's public name or address.`,
    );
  }
  const group = state.groups.find((g) => g.name === peer.group);
  const hub = hubAddresses(state.hub);
  return renderClientConfig({
    peer: { name: peer.name, ipv4: peer.ipv4, ipv6: peer.ipv6, presharedKey: peer.presharedKey },
    hub: {
      publicKey: publicKeyFromPrivate(state.hub.privateKey),
      endpoint,
      ipv4: hub.ipv4,
      ipv6: hub.ipv6,
      ipv4Subnet: state.hub.ipv4Subnet,
      ipv6Prefix: state.hub.ipv6Prefix,
    },
    mode: state.mode,
    internet: group?.internet ?? false,
    persistentKeepalive: DEFAULT_KEEPALIVE_SECONDS,
  });
}
