/**
 * The wg-quick config a device imports (file or QR code). The Pulumi program (the `clientConfigs` stack output)
 * and `cloudpal-agent peer config` on the hub both build it from the hub state with clientConfigInput, so they
 * print the same text; only the PrivateKey line differs, because the hub never holds a device's key.
 */
import { hubAddresses } from "./addressing";
import { publicKeyFromPrivate } from "./keys";
import { peerGlobalIpv6 } from "./public-ipv6";
import { MANAGED_HEADER } from "./layout";
import { devicePortProblem, endpointWithPort, wireguardPorts } from "./public-ports";
import type { FirewallMode, HubState } from "./state";

/**
 * Seconds between the keepalives a device sends, when the state does not say: keeps NAT mappings open while
 * the device roams (wg(8) suggests 25 for NAT traversal). The stack config's default is this same constant.
 */
export const DEFAULT_PERSISTENT_KEEPALIVE = 25;

export interface ClientConfigInput {
  readonly peer: {
    readonly name: string;
    readonly ipv4: string;
    readonly ipv6: string;
    /** Its global address in the hub's public prefix (model/public-ipv6.ts), where the hub has one. */
    readonly globalIpv6?: string;
    /** Absent when the device made its own key: the line is left for the user to fill in. */
    readonly privateKey?: string;
    readonly presharedKey?: string;
  };
  readonly hub: {
    readonly publicKey: string;
    /** "host:port"; host is the DNS name when the user set one, so a rebuilt hub changes nothing here. */
    readonly endpoint: string;
    readonly ipv4: string;
    readonly ipv6: string;
    readonly ipv4Subnet: string;
    readonly ipv6Prefix: string;
  };
  readonly mode: FirewallMode;
  /** Whether the peer's group may use the hub as internet gateway. */
  readonly internet: boolean;
  /** Seconds; keeps NAT mappings open while the device roams. */
  readonly persistentKeepalive: number;
}

/** Routes the device sends into the tunnel: everything in full-tunnel, only the private network otherwise. */
export function clientAllowedIps(input: Pick<ClientConfigInput, "mode" | "internet" | "hub">): string[] {
  if (input.mode === "vpn" && input.internet) return ["0.0.0.0/0", "::/0"];
  return [input.hub.ipv4Subnet, input.hub.ipv6Prefix];
}

export const DEVICE_KEY_PLACEHOLDER = "<this device's private key: it never left the device>";

/** What only the device side knows, or what the caller overrides. */
export interface DeviceExtras {
  /** The device's private key, when CloudPal made it (the program has it; the hub never does). */
  readonly privateKey?: string;
  /** "host:port" instead of the state's `hub.endpoint`. */
  readonly endpoint?: string;
  /**
   * The endpoint's port instead of its own: one of the ports the hub's WireGuard answers on (the listen port or
   * an extra one, model/public-ports.ts), for networks that let only those out. Same keys, same addresses.
   */
  readonly port?: number;
}

/** The one way from a hub state to the renderer's input, for the peer called `name`. */
export function clientConfigInput(
  state: HubState,
  name: string,
  extras: DeviceExtras = {},
): ClientConfigInput {
  const peer = state.peers.find((p) => p.name === name);
  if (!peer) {
    const known = state.peers.map((p) => p.name).join(", ") || "none";
    throw new Error(`peer ${JSON.stringify(name)} is not in the hub's state: use one of: ${known}.`);
  }
  const stated = extras.endpoint ?? state.hub.endpoint;
  if (!stated) {
    throw new Error(
      `the state has no 'hub.endpoint': pass --endpoint HOST:${state.hub.listenPort} with the hub's public name or address.`,
    );
  }
  let endpoint = stated;
  if (extras.port !== undefined) {
    const problem = devicePortProblem(extras.port, stateWireguardPorts(state));
    if (problem !== undefined) throw new Error(`'--port' (${extras.port}) ${problem}.`);
    endpoint = endpointWithPort(stated, extras.port);
  }
  const group = state.groups.find((g) => g.name === peer.group);
  const hub = hubAddresses(state.hub);
  const globalIpv6 = peerGlobalIpv6(state.hub, peer);
  return {
    peer: {
      name: peer.name,
      ipv4: peer.ipv4,
      ipv6: peer.ipv6,
      ...(globalIpv6 !== undefined ? { globalIpv6 } : {}),
      ...(extras.privateKey !== undefined ? { privateKey: extras.privateKey } : {}),
      ...(peer.presharedKey !== undefined ? { presharedKey: peer.presharedKey } : {}),
    },
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
    persistentKeepalive: state.hub.persistentKeepalive ?? DEFAULT_PERSISTENT_KEEPALIVE,
  };
}

/** The UDP ports a device may dial, from the hub state: the listen port first, then the extra ones. */
export function stateWireguardPorts(state: HubState): number[] {
  return wireguardPorts({
    wireguardPort: state.hub.listenPort,
    wireguardExtraPorts: state.hub.wireguardExtraPorts ?? [],
  });
}

/**
 * A rendered config (the `clientConfigs` stack output) with its endpoint's port replaced: exactly what
 * renderClientConfig prints for the same device with `port` (tested), for `npm run device -- NAME --port P`,
 * which has the rendered text and not the state.
 */
export function clientConfigWithPort(config: string, port: number): string {
  const line = /^Endpoint = (.+)$/m;
  const found = line.exec(config);
  if (!found) throw new Error("the device config has no 'Endpoint = ' line");
  return config.replace(line, `Endpoint = ${endpointWithPort(found[1], port)}`);
}

export function renderClientConfig(input: ClientConfigInput): string {
  const lines = [
    MANAGED_HEADER,
    `# Device: ${input.peer.name}`,
    "[Interface]",
    `PrivateKey = ${input.peer.privateKey ?? DEVICE_KEY_PLACEHOLDER}`,
    // With a global address the device's system prefers IPv6 for IPv6 sites (RFC 6724 ranks a ULA source
    // below IPv4); the ULA stays, for names and groups inside the tunnel.
    `Address = ${[`${input.peer.ipv4}/32`, `${input.peer.ipv6}/128`, ...(input.peer.globalIpv6 !== undefined ? [`${input.peer.globalIpv6}/128`] : [])].join(", ")}`,
    `DNS = ${input.hub.ipv4}, ${input.hub.ipv6}`,
    "",
    "[Peer]",
    `PublicKey = ${input.hub.publicKey}`,
  ];
  if (input.peer.presharedKey) lines.push(`PresharedKey = ${input.peer.presharedKey}`);
  lines.push(
    `AllowedIPs = ${clientAllowedIps(input).join(", ")}`,
    `Endpoint = ${input.hub.endpoint}`,
    `PersistentKeepalive = ${input.persistentKeepalive}`,
  );
  return lines.join("\n") + "\n";
}
