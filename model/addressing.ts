/**
 * Peer address allocation: the single function both the Pulumi program (client configs) and the agent
 * (hub config) rely on, so the two can never disagree.
 *
 * Why hashing and not "next free address": an allocation that depends on the other peers (list order, who
 * came first) moves addresses when the list is reordered or a peer is removed, which is what breaks Algo's
 * clients. Here a peer's address is a function of its own name alone (or of the address it pins), so adding,
 * removing or reordering other peers can never move it. The price is that two names can hash to the same
 * host; that is reported as an error naming a free address to pin, never resolved silently, because any
 * silent resolution would move one of the two peers later.
 *
 * The IPv6 address carries the same host number as the IPv4 one (10.77.1.7 ↔ fd..::107), so one pin fixes both.
 */
import { createHash } from "crypto";
import * as ipaddr from "ipaddr.js";

export interface AddressRequest {
  /** Peer name (hostname-safe). */
  readonly name: string;
  /** Optional pinned IPv4 address inside the subnet. */
  readonly address?: string;
}

export interface PeerAddresses {
  readonly ipv4: string;
  readonly ipv6: string;
  /** Host number inside the subnet (1 is the hub). */
  readonly host: number;
}

export interface Subnets {
  /** e.g. "10.77.0.0/16" */
  readonly ipv4Subnet: string;
  /** e.g. "fd7a:c10d:9a1::/64" */
  readonly ipv6Prefix: string;
}

export class AllocationError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.join("\n"));
    this.name = "AllocationError";
  }
}

interface V4Net {
  readonly base: number;
  readonly prefix: number;
  /** Usable host numbers are 1 .. size-2 (network and broadcast excluded). */
  readonly size: number;
}

function parseV4(cidr: string): V4Net {
  const [addr, prefix] = ipaddr.IPv4.parseCIDR(cidr);
  const size = 2 ** (32 - prefix);
  const base = (bytesToNumber(addr.toByteArray()) & ~(size - 1)) >>> 0;
  return { base, prefix, size };
}

function bytesToNumber(bytes: readonly number[]): number {
  return bytes.reduce((n, b) => n * 256 + b, 0);
}

function v4String(n: number): string {
  return [24, 16, 8, 0].map((s) => (n >>> s) & 255).join(".");
}

function v6WithHost(prefixCidr: string, host: number): string {
  const [addr, prefix] = ipaddr.IPv6.parseCIDR(prefixCidr);
  const bytes = addr.toByteArray();
  // Clear the host bits, then add the host number.
  let value = 0n;
  for (const b of bytes) value = (value << 8n) | BigInt(b);
  const hostBits = BigInt(128 - prefix);
  value = ((value >> hostBits) << hostBits) + BigInt(host);
  const out: number[] = [];
  for (let i = 0; i < 16; i++) out.unshift(Number((value >> BigInt(8 * i)) & 255n));
  return ipaddr.fromByteArray(out).toString();
}

/** Usable peer host numbers: 2 .. size-2 (1 is the hub). */
function peerHostCount(net: V4Net): number {
  return net.size - 3;
}

/** The host number a name hashes to: stable, uniform over the usable peer range. */
export function preferredHost(name: string, ipv4Subnet: string): number {
  const net = parseV4(ipv4Subnet);
  const digest = createHash("sha256").update(`cloudpal-peer:${name}`).digest();
  const n = digest.readBigUInt64BE(0);
  return 2 + Number(n % BigInt(peerHostCount(net)));
}

/** The hub's own addresses: the first host of each range. */
export function hubAddresses(subnets: Subnets): PeerAddresses {
  const net = parseV4(subnets.ipv4Subnet);
  return { host: 1, ipv4: v4String(net.base + 1), ipv6: v6WithHost(subnets.ipv6Prefix, 1) };
}

/** The host number of a pinned address, or an explanation of why it cannot be used. */
function pinnedHost(address: string, net: V4Net, subnet: string): number | string {
  if (!ipaddr.IPv4.isValidFourPartDecimal(address)) return `is not an IPv4 address`;
  const n = bytesToNumber(ipaddr.IPv4.parse(address).toByteArray());
  if (n < net.base || n >= net.base + net.size) return `is outside the private subnet ${subnet}`;
  const host = n - net.base;
  if (host === 0 || host === net.size - 1) return `is the network or broadcast address of ${subnet}`;
  if (host === 1) return `is the hub's own address`;
  return host;
}

/**
 * Allocate every peer's addresses. Throws AllocationError listing every problem at once (bad or duplicate
 * pins, hash collisions), each with the fix.
 *
 * `fieldOf(i)` names peer i's field in the caller's terms (e.g. "peers[3]") for the messages.
 */
export function allocateAddresses(
  subnets: Subnets,
  peers: readonly AddressRequest[],
  fieldOf: (index: number) => string = (i) => `peers[${i}]`,
): Map<string, PeerAddresses> {
  const net = parseV4(subnets.ipv4Subnet);
  const problems: string[] = [];
  const hosts: number[] = [];
  peers.forEach((peer, i) => {
    if (peer.address !== undefined) {
      const pinned = pinnedHost(peer.address, net, subnets.ipv4Subnet);
      if (typeof pinned === "string") {
        problems.push(
          `'${fieldOf(i)}.address' (${JSON.stringify(peer.address)}) ${pinned}: pin an unused address between ${v4String(net.base + 2)} and ${v4String(net.base + net.size - 2)}, or remove the field to derive one from the name.`,
        );
        hosts.push(-1);
        return;
      }
      hosts.push(pinned);
    } else {
      hosts.push(preferredHost(peer.name, subnets.ipv4Subnet));
    }
  });
  const used = new Set(hosts.filter((h) => h > 0));
  const owner = new Map<number, number>();
  hosts.forEach((host, i) => {
    if (host < 0) return;
    const first = owner.get(host);
    if (first === undefined) {
      owner.set(host, i);
      return;
    }
    // Which of the two is new cannot be known from the config, and list order says nothing about it: the
    // message names both and asks the user to pin the one being added. `free` is unused by every peer, and
    // every other peer's address depends only on its own name or pin, so that pin moves nobody else.
    const free = nearestFree(host, net, used);
    used.add(free);
    const how = (j: number) => (peers[j].address !== undefined ? "pinned" : "from its name");
    const who = (j: number) => `'${fieldOf(j)}' (${JSON.stringify(peers[j].name)}, ${how(j)})`;
    const pin = (j: number) => `'${fieldOf(j)}.address' if it is ${JSON.stringify(peers[j].name)}`;
    problems.push(
      `${who(first)} and ${who(i)} would both get ${v4String(net.base + host)}: on the device you are adding, set 'address' to ${v4String(net.base + free)}, a free address (${pin(i)}, ${pin(first)}), and leave the device that already works as it is, because changing its address breaks its config.`,
    );
  });
  if (problems.length > 0) throw new AllocationError(problems);
  const out = new Map<string, PeerAddresses>();
  peers.forEach((peer, i) => {
    out.set(peer.name, {
      host: hosts[i],
      ipv4: v4String(net.base + hosts[i]),
      ipv6: v6WithHost(subnets.ipv6Prefix, hosts[i]),
    });
  });
  return out;
}

function nearestFree(from: number, net: V4Net, used: ReadonlySet<number>): number {
  const span = peerHostCount(net);
  for (let step = 1; step <= span; step++) {
    const candidate = 2 + ((from - 2 + step) % span);
    if (!used.has(candidate)) return candidate;
  }
  throw new AllocationError([`the private subnet has no free address left: choose a larger 'ipv4Subnet'.`]);
}
