/**
 * Every port the hub answers on from the internet, listed once. The provider firewalls
 * (components/hosts/host.ts inboundRules), the hub's nftables ruleset (agent/src/nftables-ruleset.ts) and the
 * tests (the program tests and the public-exposure e2e test) all derive what they open or expect from
 * hubPublicPorts, so a port added here is opened everywhere and expected by every test, and nothing else is.
 *
 * Extra WireGuard ports: the hub's WireGuard listens on one UDP port; on restrictive networks (hotels,
 * campuses) that let only UDP 443 (QUIC) or 53 (DNS) out, a device dials one of the extra ports instead, and
 * nftables redirects it to the listen port on every interface but the tunnel (and loopback). Conntrack
 * rewrites the replies back, so they leave from the port the device dialled. The hub's resolver listens on
 * the tunnel addresses only, so public port 53 is WireGuard's and the hub is never an open resolver.
 */

/** UDP ports WireGuard also answers on, when the config says nothing: QUIC's 443 and DNS's 53. */
export const DEFAULT_WIREGUARD_EXTRA_PORTS: readonly number[] = [443, 53];

export interface PublicPort {
  readonly protocol: "udp" | "tcp";
  readonly port: number;
  /**
   * Names the rule in provider firewalls (a Linode rule label: 3 to 32 characters, and part of Vultr's
   * resource names, so a port keeps its label across updates).
   */
  readonly label: string;
  /** "ssh": only from the SSH-allowed CIDRs; "anywhere": the whole internet. */
  readonly from: "ssh" | "anywhere";
  /** Answered by an nftables redirect to this local port (the WireGuard listen port), not by its own listener. */
  readonly redirectTo?: number;
}

export interface PublicPortsInput {
  readonly sshPort: number;
  /** The WireGuard listen port. */
  readonly wireguardPort: number;
  readonly wireguardExtraPorts: readonly number[];
  /** The TCP path's port (agent/src/tcp-relay/); undefined when the path is off. */
  readonly tcpPort?: number;
}

export function hubPublicPorts(input: PublicPortsInput): PublicPort[] {
  return [
    { protocol: "udp", port: input.wireguardPort, label: "wireguard", from: "anywhere" },
    ...input.wireguardExtraPorts.map((port): PublicPort => ({
      protocol: "udp",
      port,
      label: `wireguard-${port}`,
      from: "anywhere",
      redirectTo: input.wireguardPort,
    })),
    { protocol: "tcp", port: input.sshPort, label: "ssh", from: "ssh" },
    ...(input.tcpPort !== undefined
      ? [{ protocol: "tcp", port: input.tcpPort, label: "tcp-path", from: "anywhere" } as const]
      : []),
  ];
}

/** The UDP ports a device may dial for WireGuard: the listen port first, then the extra ones. */
export function wireguardPorts(input: Omit<PublicPortsInput, "sshPort">): number[] {
  return [input.wireguardPort, ...input.wireguardExtraPorts];
}

/**
 * Why a device cannot be given `port` as its endpoint port (the tail of a sentence that starts with the
 * option, e.g. "'--port' (8443) "), or undefined when the hub answers WireGuard on it.
 */
export function devicePortProblem(port: number, ports: readonly number[]): string | undefined {
  if (ports.includes(port)) return undefined;
  return `is not a port the hub's WireGuard answers on: use one of ${ports.join(", ")} (add it to 'cloudpal:wireguardExtraPorts' and run 'pulumi up' to open another)`;
}

/** "host:port" with the port replaced; an IPv6 host stays in brackets. */
export function endpointWithPort(endpoint: string, port: number): string {
  const colon = endpoint.lastIndexOf(":");
  return `${endpoint.slice(0, colon)}:${port}`;
}

/** A `--port` option's text as a port number; a clear error for anything else. */
export function parsePortOption(text: string): number {
  const port = /^[0-9]{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(port >= 1 && port <= 65535))
    throw new Error(
      `'--port' (${JSON.stringify(text)}) is not a port: give a number from 1 to 65535, e.g. '--port 443'.`,
    );
  return port;
}
