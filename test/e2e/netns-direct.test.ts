/**
 * Direct connections end to end (README "Direct connections"), in network namespaces this test creates: the real
 * agent (apply, discovery) on a hub with wireguard-go and its nftables, the real device helper bundle on
 * wireguard-go devices behind nftables NAT routers. Needs root and scripts/install-test-deps.sh.
 *
 *                         wan (a bridge: the internet)
 *     ┌─────────┬──────────────┼──────────────┬───────────────┬─────────┬────────┐
 *    hub     nat-a          nat-b          nat-lan         nat-sym    stock    guest
 *  (agent)     │              │            ┌──┴──┐            │     (no helper) (helper)
 *           dev a          dev b        lan1   lan2        dev sym
 *   nat-a, nat-b, nat-lan: masquerade (endpoint-independent mapping); nat-sym: masquerade random (per destination)
 */
import { type DirectLab, directLab } from "./netns/direct-lab";
import { Lab, waitFor } from "./netns/lab";

jest.setTimeout(240_000);

const lab = new Lab();
let d: DirectLab;
let dev: DirectLab["dev"];

beforeAll(async () => {
  d = await directLab(lab, true, true);
  dev = d.dev;
});

afterAll(async () => {
  await d?.cleanup();
});

describe("direct connections between devices", () => {
  it("two devices behind two NATs go direct within 15 s, and their packets stop crossing the hub", async () => {
    const [a, b] = [dev.a!, dev.b!];
    const ms = await d.waitDirect(a, b, 15_000);
    process.stdout.write(`a ↔ b direct ${ms} ms after the helpers started waiting\n`);
    // The direct peer on a points at b's NAT, and holds b's /32.
    const dump = (await lab.exec(a.ns, "wg", ["show", a.ifname, "dump"])).stdout;
    const row = dump.split("\n").find((l) => l.startsWith(b.peer.publicKey))!;
    expect(row.split("\t")[2]).toMatch(/^203\.0\.113\.12:\d+$/);
    expect(row.split("\t")[3]).toContain(`${b.peer.ipv4}/32`);
    const before = (await d.hubForwarded(a, b)) + (await d.hubForwarded(b, a));
    expect(await d.ping(a, b.peer.ipv4, 20, "0.05")).toEqual({ sent: 20, received: 20 });
    const after = (await d.hubForwarded(a, b)) + (await d.hubForwarded(b, a));
    expect(after - before).toBe(0);
    const status = await d.agent(["status"]);
    expect(status.stdout).toMatch(/a ↔ b: direct/);
  });

  it("two devices behind one NAT connect over their LAN addresses", async () => {
    const [l1, l2] = [dev.lan1!, dev.lan2!];
    await d.waitDirect(l1, l2, 15_000);
    expect(d.pathOf(l1, "lan2")?.endpoint).toMatch(/^192\.168\.13\.3:\d+$/);
    expect(d.pathOf(l2, "lan1")?.endpoint).toMatch(/^192\.168\.13\.2:\d+$/);
    expect((await d.ping(l1, l2.peer.ipv4, 5)).received).toBe(5);
  });

  it("a NAT with a new port per destination is detected: the pair stays relayed and still works", async () => {
    const [a, sym] = [dev.a!, dev.sym!];
    await waitFor(async () => d.helperStatus(sym)?.nat === "per-destination", 15_000, "sym's NAT detected");
    expect(d.helperStatus(a)?.nat).toBe("endpoint-independent");
    await waitFor(
      async () => /symmetric NAT at sym/.test(d.pathOf(a, "sym")?.reason ?? ""),
      15_000,
      "a's reason",
    );
    expect(d.pathOf(a, "sym")?.path).toBe("relayed");
    expect(await d.wgPeers(a)).not.toContain(sym.peer.publicKey);
    expect((await d.ping(a, sym.peer.ipv4, 5)).received).toBe(5);
    expect((await d.agent(["status"])).stdout).toMatch(/a ↔ sym: relayed: .*symmetric NAT at sym/);
  });

  it("a stock device keeps working through the hub; status says why it is relayed", async () => {
    const [a, stock] = [dev.a!, dev.stock!];
    expect((await d.ping(a, stock.peer.ipv4, 5)).received).toBe(5);
    expect((await d.ping(stock, dev.b!.peer.ipv4, 5)).received).toBe(5);
    expect(d.pathOf(a, "stock")).toMatchObject({ path: "relayed", reason: "no helper on stock" });
    expect((await d.agent(["status"])).stdout).toContain("a ↔ stock: relayed: no helper on stock");
  });

  it("a guest never learns a family device's endpoint", async () => {
    const guest = dev.guest!;
    await waitFor(async () => d.helperStatus(guest)?.self?.name === "guest", 10_000, "guest's helper status");
    expect(d.helperStatus(guest)?.pairs).toEqual({});
    expect(await d.wgPeers(guest)).toEqual([d.hubPublicKey]);
    expect(d.pathOf(dev.a!, "guest")).toBeUndefined();
  });

  it("a cut direct path falls back to the hub within seconds, and comes back direct", async () => {
    const [a, b] = [dev.a!, dev.b!];
    await d.waitDirect(a, b, 15_000);
    const before = await d.hubForwarded(a, b);
    // 150 pings at 0.1 s (15 s); the path between the two NATs is cut after 2 s.
    const pinging = d.ping(a, b.peer.ipv4, 150, "0.1");
    await new Promise((r) => setTimeout(r, 2000));
    await lab.exec(d.natNs.nata!, "nft", ["-f", "-"], {
      input:
        "table ip lab_cut {\n  chain f {\n    type filter hook forward priority -5; policy accept;\n" +
        "    ip daddr 203.0.113.12 meta l4proto udp drop\n    ip saddr 203.0.113.12 meta l4proto udp drop\n  }\n}\n",
    });
    const result = await pinging;
    const lostSeconds = (result.sent - result.received) * 0.1;
    process.stdout.write(
      `direct path cut: ${result.sent - result.received} of ${result.sent} pings lost (${lostSeconds.toFixed(1)} s)\n`,
    );
    expect(lostSeconds).toBeLessThanOrEqual(5);
    expect(await d.hubForwarded(a, b)).toBeGreaterThan(before + 50);
    expect(d.pathOf(a, "b")?.reason).toMatch(/direct path failed at/);
    // Restored: direct again, without any step on the devices.
    await lab.exec(d.natNs.nata!, "nft", ["delete", "table", "ip", "lab_cut"]);
    const back = await d.waitDirect(a, b, 30_000);
    process.stdout.write(`direct again ${back} ms after the path was restored\n`);
    const relayed = await d.hubForwarded(a, b);
    expect((await d.ping(a, b.peer.ipv4, 10, "0.05")).received).toBe(10);
    expect(await d.hubForwarded(a, b)).toBe(relayed);
  });

  it("revoking a device removes it from every other device's direct peers within about a second of the apply", async () => {
    const [a, b] = [dev.a!, dev.b!];
    await d.waitDirect(a, b, 15_000);
    expect(await d.wgPeers(a)).toContain(b.peer.publicKey);
    await d.apply(
      d.state(
        Object.values(dev)
          .filter((d) => d.name !== "b")
          .map((d) => d.peer),
      ),
    );
    const applied = Date.now();
    await waitFor(
      async () =>
        !(await d.wgPeers(a)).includes(b.peer.publicKey) &&
        !(await d.wgPeers(dev.lan1!)).includes(b.peer.publicKey),
      3000,
      "b removed from a's and lan1's direct peers",
    );
    process.stdout.write(`revoked b gone from direct peers ${Date.now() - applied} ms after apply\n`);
    expect((await d.ping(b, a.peer.ipv4, 3)).received).toBe(0);
  });
});
