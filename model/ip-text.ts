/**
 * One canonical text form per IPv6 address (RFC 5952, as `wg` and `nft` print them), so the state's spelling
 * ("FD7A:C10D:9A1:0::2") never makes a render differ from the live system. Memoised: every renderer asks for
 * the same peers' addresses, and parsing 10,000 addresses several times per apply was measurable.
 */
import * as ipaddr from "ipaddr.js";

const cache = new Map<string, string>();

export function canonicalIpv6(address: string): string {
  let text = cache.get(address);
  if (text === undefined) {
    text = ipaddr.IPv6.parse(address).toString();
    cache.set(address, text);
  }
  return text;
}
