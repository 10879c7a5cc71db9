import fc from "fast-check";
import * as ipaddr from "ipaddr.js";
import { allocateAddresses, AllocationError, hubAddresses } from "../model/addressing";

const SUBNETS = { ipv4Subnet: "10.77.0.0/16", ipv6Prefix: "fd7a:c10d:9a1::/64" };
const names = fc.uniqueArray(fc.stringMatching(/^[a-z][a-z0-9-]{0,12}$/), { minLength: 1, maxLength: 40 });

/** Allocation, or undefined when two names collide (reported, never resolved silently). */
function allocate(list: readonly string[]) {
  try {
    return allocateAddresses(
      SUBNETS,
      list.map((name) => ({ name })),
    );
  } catch (e) {
    if (e instanceof AllocationError) return undefined;
    throw e;
  }
}

describe("address allocation (properties)", () => {
  // base → (a subset of base kept) + (new names), in any order
  const scenario = fc.tuple(names, names).chain(([base, extra]) =>
    fc.subarray(base).chain((kept) => {
      const next = [...kept, ...extra.filter((n) => !base.includes(n))];
      return fc.record({
        base: fc.constant(base),
        kept: fc.constant(kept),
        next: fc.shuffledSubarray(next, { minLength: next.length }),
      });
    }),
  );

  it("a peer keeps its addresses when others are added, removed or reordered", () => {
    fc.assert(
      fc.property(scenario, ({ base, kept, next }) => {
        const before = allocate(base);
        const after = allocate(next);
        fc.pre(before !== undefined && after !== undefined);
        for (const n of kept) expect(after!.get(n)).toEqual(before!.get(n));
      }),
      { numRuns: 300 },
    );
  });

  it("gives no two peers the same address, all inside the subnet and never the hub's", () => {
    fc.assert(
      fc.property(names, (list) => {
        const a = allocate(list);
        fc.pre(a !== undefined);
        const v4 = [...a!.values()].map((p) => p.ipv4);
        const v6 = [...a!.values()].map((p) => ipaddr.IPv6.parse(p.ipv6).toNormalizedString());
        expect(new Set(v4).size).toBe(list.length);
        expect(new Set(v6).size).toBe(list.length);
        const hub = hubAddresses(SUBNETS);
        for (const p of a!.values()) {
          expect(ipaddr.IPv4.parse(p.ipv4).match(ipaddr.IPv4.parseCIDR(SUBNETS.ipv4Subnet))).toBe(true);
          expect(ipaddr.IPv6.parse(p.ipv6).match(ipaddr.IPv6.parseCIDR(SUBNETS.ipv6Prefix))).toBe(true);
          expect(p.ipv4).not.toBe(hub.ipv4);
          expect(p.ipv4).not.toBe("10.77.255.255");
        }
      }),
      { numRuns: 300 },
    );
  });

  it("reports a collision with a free address to pin, which then resolves it without moving the other peer", () => {
    // A /28 has 13 peer addresses, so collisions are easy to find.
    const small = { ipv4Subnet: "10.77.0.0/28", ipv6Prefix: "fd7a:c10d:9a1::/64" };
    const list = Array.from({ length: 8 }, (_, i) => ({ name: `d${i}` }));
    let error: AllocationError | undefined;
    try {
      allocateAddresses(small, list);
    } catch (e) {
      error = e as AllocationError;
    }
    expect(error).toBeInstanceOf(AllocationError);
    const m =
      /^'peers\[\d+\]' .* and 'peers\[(\d+)\]' .* set 'address' to (10\.77\.0\.\d+), a free address/.exec(
        error!.problems[0],
      );
    expect(m).not.toBeNull();
    const fixed = list.map((p, i) => (i === Number(m![1]) ? { ...p, address: m![2] } : p));
    const retry = (() => {
      try {
        return allocateAddresses(small, fixed);
      } catch (e) {
        return e as AllocationError;
      }
    })();
    if (!(retry instanceof AllocationError)) expect(retry.get(`d${m![1]}`)!.ipv4).toBe(m![2]);
    else expect(retry.problems.length).toBeLessThan(error!.problems.length);
  });
});
