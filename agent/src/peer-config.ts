/**
 * `cloudpal-agent peer config NAME`: the same wg-quick text the Pulumi program outputs, built from the
 * persisted state by the same function (model/client-config.ts). The hub never holds a device's private key,
 * so the PrivateKey line is the placeholder.
 */
import { clientConfigInput, renderClientConfig } from "../../model/client-config";
import type { HubState } from "../../model/state";

export function peerClientConfig(state: HubState, name: string, endpointOverride?: string): string {
  return renderClientConfig(
    clientConfigInput(state, name, endpointOverride !== undefined ? { endpoint: endpointOverride } : {}),
  );
}
