/**
 * A device's TCP-path access key as an `ss://` URI in the SIP002 form (shadowsocks.org, "SIP002 URI scheme"):
 * `ss://` base64url("method:password") `@` host `:` port `#` name. The Outline client apps (iOS, Android,
 * Windows, macOS, Linux) and other Shadowsocks clients import it by paste or QR code. The password is a
 * base64url string (model/rules.ts TCP_KEY_PATTERN), so nothing in it needs escaping.
 */
import type { HubState } from "./state";

export interface AccessKeyInput {
  /** The hub's public name or address (an IPv6 address without brackets). */
  readonly host: string;
  readonly port: number;
  readonly method: string;
  readonly password: string;
  /** Shown in the app's server list. */
  readonly name: string;
}

export function ssAccessKey(k: AccessKeyInput): string {
  const userinfo = Buffer.from(`${k.method}:${k.password}`, "utf8").toString("base64url");
  const host = k.host.includes(":") ? `[${k.host}]` : k.host;
  return `ss://${userinfo}@${host}:${k.port}#${encodeURIComponent(k.name)}`;
}

/** The host part of a "host:port" endpoint (brackets of an IPv6 address removed). */
export function endpointHost(endpoint: string): string {
  const host = endpoint.slice(0, endpoint.lastIndexOf(":"));
  return host.startsWith("[") ? host.slice(1, -1) : host;
}

/** The cipher every TCP-path key uses: Outline's default, fast without AES hardware (phones, small VMs). */
export const TCP_PATH_METHOD = "chacha20-ietf-poly1305";

/**
 * Every device's access key, from the hub state: the host devices dial is the endpoint's (the DNS name when
 * the user set one), the port the TCP path's. Empty when the path is off or the state has no endpoint.
 */
export function tcpAccessKeys(state: HubState): Record<string, string> {
  const out: Record<string, string> = {};
  const port = state.hub.tcpPort;
  if (port === undefined || state.hub.endpoint === undefined) return out;
  const host = endpointHost(state.hub.endpoint);
  for (const p of state.peers)
    if (p.tcpKey !== undefined)
      out[p.name] = ssAccessKey({
        host,
        port,
        method: TCP_PATH_METHOD,
        password: p.tcpKey,
        name: `CloudPal ${p.name}`,
      });
  return out;
}
