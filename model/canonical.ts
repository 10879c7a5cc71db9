/**
 * One text form per address, port and endpoint, for the stack config and the hub state alike.
 *
 * Why refuse rather than normalise: every tool on the hub reads addresses with its own parser. `ipaddr.js`,
 * glibc's inet_aton (which `wg` and getaddrinfo use) and nft each accept some of "10.077.0.0", "0xcb.0.113.0"
 * or "167772160", and read them differently (octal, hex, one 32-bit number) or not at all, so a state that
 * validated once could make `nft -f` or unbound fail at every boot. Only the forms every parser reads the same
 * way pass: dotted decimal without leading zeros, and IPv6 as RFC 5952 section 4 writes it (lower case, the
 * longest run of zero groups compressed, the first one on a tie), which is also how `wg` and `nft` print it.
 */
import * as ipaddr from "ipaddr.js";

/** 0-255 without a leading zero. */
const OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";
const IPV4 = new RegExp(`^${OCTET}(\\.${OCTET}){3}$`);
/** 0-128 without a leading zero. */
const PREFIX = /^(12[0-8]|1[01][0-9]|[1-9]?[0-9])$/;
/** A port as decimal text: 1-65535, no leading zero. */
const PORT = /^([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$/;
/** An RFC 1123 host name (either case, as a user may type it), at most 253 characters. */
const HOST_NAME =
  /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export function isCanonicalIpv4(text: string): boolean {
  return IPV4.test(text);
}

/**
 * The RFC 5952 text of an IPv6 address: ipaddr.js's toString() (section 4), except IPv4-mapped addresses,
 * which section 5 writes as "::ffff:192.0.2.1" (as inet_ntop, and so nft, print them).
 */
function rfc5952(address: ipaddr.IPv6): string {
  return address.isIPv4MappedAddress() ? `::ffff:${address.toIPv4Address().toString()}` : address.toString();
}

/** Whether the text is its own RFC 5952 form. */
export function isCanonicalIpv6(text: string): boolean {
  if (text.length > 45 || !/^[0-9a-f:.]+$/.test(text) || !ipaddr.IPv6.isValid(text)) return false;
  return rfc5952(ipaddr.IPv6.parse(text)) === text;
}

export function isCanonicalIp(text: string): boolean {
  return isCanonicalIpv4(text) || isCanonicalIpv6(text);
}

/** "address/prefix", both canonical, the prefix within the family's width (host bits are judged elsewhere). */
export function isCanonicalCidr(text: string): boolean {
  const slash = text.indexOf("/");
  if (slash === -1) return false;
  const address = text.slice(0, slash);
  const prefix = text.slice(slash + 1);
  if (!PREFIX.test(prefix)) return false;
  if (isCanonicalIpv4(address)) return Number(prefix) <= 32;
  return isCanonicalIpv6(address);
}

/** The canonical spelling of an address or CIDR a user wrote another way, for the fix; undefined if none. */
export function canonicalSpelling(text: string): string | undefined {
  const [address, prefix, ...rest] = text.split("/");
  if (rest.length > 0) return undefined;
  if (prefix !== undefined && !/^[0-9]{1,3}$/.test(prefix)) return undefined;
  const suffix = prefix === undefined ? "" : `/${Number(prefix)}`;
  if (ipaddr.IPv6.isValid(address)) return `${rfc5952(ipaddr.IPv6.parse(address))}${suffix}`;
  if (/^[0-9]+(\.[0-9]+){3}$/.test(address) && address.split(".").every((o) => Number(o) <= 255))
    // Only the dotted-decimal reading: a leading zero is read as decimal here, which is what a user means by
    // "10.077.0.0"; hex and single-number forms get no suggestion because their meaning is unclear.
    return `${address.split(".").map(Number).join(".")}${suffix}`;
  return undefined;
}

/** The tail of a sentence "'field' (value) …" saying why an address is not canonical, with the fix. */
export function nonCanonicalFix(text: string, example: string): string {
  const canonical = canonicalSpelling(text);
  const why = text.includes(":")
    ? "IPv6 in lower case, compressed as RFC 5952 says"
    : "IPv4 in dotted decimal without leading zeros";
  return canonical !== undefined && canonical !== text
    ? `is not written in canonical form: write it as '${canonical}' (${why})`
    : `is not an address in canonical form: write it like '${example}' (${why})`;
}

export function isPortText(text: string): boolean {
  return PORT.test(text);
}

/**
 * Why a host (an endpoint's or the existing server's) is unusable, as the tail of a sentence, or undefined.
 * A name may be in either case; something that reads as an address (only digits and dots, or a ':') must be a
 * canonical one, because the device's wg-quick resolves it with getaddrinfo, which takes "010.1.1.1" as octal.
 */
export function hostProblem(host: string): string | undefined {
  const looksNumeric = /^[0-9.]+$/.test(host) || /^0x/i.test(host) || host.includes(":");
  if (looksNumeric) {
    if (isCanonicalIp(host)) return undefined;
    return nonCanonicalFix(host, "203.0.113.10");
  }
  if (!HOST_NAME.test(host))
    return "is not a host name or address: use a DNS name such as vpn.example.com or an address such as 203.0.113.10";
  // A name whose last label is all digits is read as an address by getaddrinfo (e.g. "1.2.3.4.5" fails there).
  if (/(^|\.)[0-9]+$/.test(host))
    return "is neither a host name nor an address: a name's last label cannot be all digits";
  return undefined;
}

/**
 * Why an endpoint ("host:port", "[IPv6]:port") is unusable, as the tail of a sentence, or undefined. It ends
 * up on an `Endpoint = ` line of a wg-quick file the device runs as root, so nothing but a host and a port may
 * pass: no space, newline or second field.
 */
export function endpointProblem(endpoint: string): string | undefined {
  const fix = "use host:port, e.g. vpn.example.com:51820, 203.0.113.10:51820 or [2001:db8::1]:51820";
  if (endpoint.length > 300) return `is too long to be an endpoint: ${fix}`;
  const colon = endpoint.lastIndexOf(":");
  if (colon <= 0) return `is not an endpoint: ${fix}`;
  const host = endpoint.slice(0, colon);
  const port = endpoint.slice(colon + 1);
  if (!isPortText(port)) return `does not end in a port from 1 to 65535: ${fix}`;
  if (host.startsWith("[") && host.endsWith("]")) {
    const inner = host.slice(1, -1);
    if (isCanonicalIpv6(inner)) return undefined;
    return ipaddr.IPv6.isValid(inner) && /^[0-9a-fA-F:.]+$/.test(inner)
      ? `is not written in canonical form: write it as '[${rfc5952(ipaddr.IPv6.parse(inner))}]:${port}'`
      : `is not an endpoint: ${fix}`;
  }
  if (host.includes(":")) return `has an IPv6 address without brackets: ${fix}`;
  const problem = hostProblem(host);
  return problem === undefined ? undefined : `has a host that ${problem}`;
}
