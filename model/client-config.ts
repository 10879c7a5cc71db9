/**
 * The wg-quick config a device imports (file or QR code). Used by the Pulumi program (stack outputs) and by
 * `cloudpal-agent peer config`, so both print the same text.
 */
import { MANAGED_HEADER } from "./layout";
import type { FirewallMode } from "./state";

export interface ClientConfigInput {
  readonly peer: {
    readonly name: string;
    readonly ipv4: string;
    readonly ipv6: string;
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

export function renderClientConfig(input: ClientConfigInput): string {
  const lines = [
    MANAGED_HEADER,
    `# Device: ${input.peer.name}`,
    "[Interface]",
    `PrivateKey = ${input.peer.privateKey ?? DEVICE_KEY_PLACEHOLDER}`,
    `Address = ${input.peer.ipv4}/32, ${input.peer.ipv6}/128`,
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
