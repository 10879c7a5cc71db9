/**
 * `cloudpal-agent peer config NAME`: the same wg-quick text the Pulumi program outputs, built from the
 * persisted state by the same function (model/client-config.ts). The hub never holds a device's private key,
 * so the PrivateKey line is the placeholder.
 *
 * `--endpoint` reaches the printed file's `Endpoint = ` line, in a config the device runs as root (wg-quick
 * runs its PostUp lines), so it passes the state's own endpoint rule (model/canonical.ts) before anything is
 * rendered: a newline there would have written a line of the attacker's choosing.
 *
 * `--port P` gives the same device's config with the endpoint's port P, one of the ports the hub's WireGuard
 * answers on (the listen port or an extra one): for networks that let only UDP 443 or 53 out.
 */
import { clientConfigInput, renderClientConfig } from "../../model/client-config";
import { endpointProblem } from "../../model/canonical";
import type { HubState } from "../../model/state";
import { parsePortOption } from "../../model/public-ports";

export function peerClientConfig(
  state: HubState,
  name: string,
  endpointOverride?: string,
  portText?: string,
): string {
  if (endpointOverride !== undefined) {
    const problem = endpointProblem(endpointOverride);
    if (problem !== undefined)
      throw new Error(`'--endpoint' (${JSON.stringify(endpointOverride)}) ${problem}.`);
  }
  const port = portText !== undefined ? parsePortOption(portText) : undefined;
  return renderClientConfig(
    clientConfigInput(state, name, {
      ...(endpointOverride !== undefined ? { endpoint: endpointOverride } : {}),
      ...(port !== undefined ? { port } : {}),
    }),
  );
}
