/**
 * The hub's public IPv6 and the global addresses devices get from it: pure functions that the program (client
 * configs), the agent (wg, nft, routes) and the tests share, so they always agree.
 *
 * Which part of the provider's prefix the tunnel uses:
 * - routed (Linode's `linode.Ipv6Range`, an `existing` server's routed prefix): the whole prefix;
 * - on-link (Vultr's /64): the upper half, <prefix>:8000::/65. The provider's SLAAC address of the hub has an
 *   interface ID made from a MAC address whose first bit is 0 (it sits in the lower half), so the two never
 *   meet; the hub answers neighbour solicitations for the upper-half addresses it uses (proxy NDP).
 *
 * A device's global address carries the same host number as its IPv4 and ULA (10.77.1.7 ↔ <prefix>::107), as
 * model/addressing.ts does for the ULA: one pin fixes all three, and the hub is host 1.
 *
 * Session and per-site addresses have a random 64-bit interface ID with its top bits set (0xc000… upwards), so
 * they never fall on a device's address (host numbers stay below 2^24).
 */
import { createHmac, randomBytes } from "crypto";
import * as ipaddr from "ipaddr.js";
import { isCanonicalCidr, isCanonicalIpv6 } from "./canonical";
import { canonicalIpv6 } from "./ip-text";
import type { PublicIpv6State } from "./state";

/** Global unicast, or the documentation prefix 2001:db8::/32 (RFC 3849) that examples and tests use. */
function isGlobalUnicast(a: ipaddr.IPv6): boolean {
  return a.range() === "unicast" || a.match(ipaddr.IPv6.parseCIDR("2001:db8::/32"));
}

export function isGlobalIpv6(s: string): boolean {
  return isCanonicalIpv6(s) && isGlobalUnicast(ipaddr.IPv6.parse(s));
}

/** /32 to /64 with no host bits: the tunnel needs a /64 (on-link: its /65 upper half) at least. */
export function isGlobalIpv6Prefix(s: string): boolean {
  if (!isCanonicalCidr(s)) return false;
  const [addr, prefix] = ipaddr.parseCIDR(s);
  if (addr.kind() !== "ipv6" || prefix < 32 || prefix > 64 || !isGlobalUnicast(addr as ipaddr.IPv6))
    return false;
  return addr.toNormalizedString() === ipaddr.IPv6.networkAddressFromCIDR(s).toNormalizedString();
}

function toBig(addr: string): bigint {
  return ipaddr.IPv6.parse(addr)
    .toByteArray()
    .reduce((n, b) => (n << 8n) | BigInt(b), 0n);
}

function fromBig(value: bigint): string {
  const out: number[] = [];
  for (let i = 0; i < 16; i++) out.unshift(Number((value >> BigInt(8 * i)) & 255n));
  return ipaddr.fromByteArray(out).toString();
}

/** The prefix the tunnel's global addresses come from, or undefined when the hub has none. */
export function tunnelGlobalPrefix(pub: PublicIpv6State | undefined): string | undefined {
  if (pub?.prefix === undefined) return undefined;
  const [addr, bits] = pub.prefix.split("/");
  if (!pub.onLink) return pub.prefix;
  // The upper half of the first /64 of the prefix.
  const base = (toBig(addr) >> 64n) << 64n;
  return `${fromBig(base | (1n << 63n))}/${Math.max(Number(bits), 64) + 1}`;
}

/** The address with host number `host` in `prefix`. */
export function addressInPrefix(prefix: string, host: bigint): string {
  const [addr, bits] = prefix.split("/");
  const hostBits = BigInt(128 - Number(bits));
  return fromBig(((toBig(addr) >> hostBits) << hostBits) | (host & ((1n << hostBits) - 1n)));
}

/** A device's (or, for host 1, the hub's) global address, or undefined when the hub has no prefix. */
export function globalAddress(pub: PublicIpv6State | undefined, host: number): string | undefined {
  const prefix = tunnelGlobalPrefix(pub);
  return prefix === undefined ? undefined : addressInPrefix(prefix, BigInt(host));
}

/** The host number of a peer, from its IPv4 inside the hub's IPv4 subnet. */
export function hostNumber(ipv4Subnet: string, ipv4: string): number {
  const [net, bits] = ipaddr.IPv4.parseCIDR(ipv4Subnet);
  const n = (a: ipaddr.IPv4) => a.toByteArray().reduce((x, b) => x * 256 + b, 0);
  const size = 2 ** (32 - bits);
  return n(ipaddr.IPv4.parse(ipv4)) - Math.floor(n(net) / size) * size;
}

/** A random 64-bit interface ID with the top two bits set (never a device's host number). */
function randomInterfaceId(bytes: Buffer): bigint {
  const id = bytes.subarray(0, 8).reduce((n, b) => (n << 8n) | BigInt(b), 0n);
  return id | (3n << 62n);
}

/** A fresh random address for a device's new session. */
export function randomSessionAddress(prefix: string, bytes: Buffer = randomBytes(8)): string {
  return addressInPrefix(prefix, randomInterfaceId(bytes));
}

/** How many addresses a per-site device spreads its destinations over (nft jhash … mod PER_SITE_SLOTS). */
export const PER_SITE_SLOTS = 256;

/**
 * A per-site device's addresses and its hash seed: stable for the hub's key and the device's name (HMAC, so
 * nobody without the hub's private key can tell which addresses belong together), different per device.
 */
export function perSiteAddresses(
  hubPrivateKey: string,
  peerName: string,
  prefix: string,
): { seed: number; addresses: string[] } {
  const mac = (label: string) =>
    createHmac("sha256", Buffer.from(hubPrivateKey, "base64"))
      .update(`cloudpal-per-site:${peerName}:${label}`)
      .digest();
  const addresses = Array.from({ length: PER_SITE_SLOTS }, (_, i) =>
    addressInPrefix(prefix, randomInterfaceId(mac(String(i)))),
  );
  return { seed: mac("seed").readUInt32BE(0), addresses };
}

/** A peer's global address on this hub, or undefined when the hub gives devices none. */
export function peerGlobalIpv6(
  hub: { readonly ipv4Subnet: string; readonly publicIpv6?: PublicIpv6State },
  peer: { readonly ipv4: string },
): string | undefined {
  if (hub.publicIpv6?.deviceAddresses !== true) return undefined;
  return globalAddress(hub.publicIpv6, hostNumber(hub.ipv4Subnet, peer.ipv4));
}

/**
 * Every tunnel address a peer can ask from, as canonical text: its IPv4, its ULA and, where the hub gives devices
 * one, its global IPv6. The DNS filter finds the asking device (and so its group) by these; a map without the
 * global address let a device of a group with its own lists ask from it and get only the hub's lists.
 */
export function peerTunnelAddresses(
  hub: { readonly ipv4Subnet: string; readonly publicIpv6?: PublicIpv6State },
  peer: { readonly ipv4: string; readonly ipv6: string },
): string[] {
  const global = peerGlobalIpv6(hub, peer);
  return [peer.ipv4, canonicalIpv6(peer.ipv6), ...(global === undefined ? [] : [canonicalIpv6(global)])];
}
