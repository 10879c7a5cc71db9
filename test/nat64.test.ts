/**
 * NAT64 + DNS64 (model/nat64.ts, agent/src/nat64.ts): the configs through the real tools (unbound-checkconf,
 * `nft -c` in a namespace this test creates, systemd-analyze), the agent's start/stop decisions with a
 * recording runner, the firewall rules, and the config field from the user's file to the hub state.
 * The translator and the resolver themselves run in test/e2e/netns-nat64.test.ts.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import * as path from "path";
import { defaultOptions, pathsUnder } from "../agent/src/options";
import { reconcileNat64 } from "../agent/src/nat64";
import { nat64Address, renderNftRuleset } from "../agent/src/nftables-ruleset";
import { agentUnits } from "../cloud-init/units";
import { HUB_PACKAGES } from "../cloud-init/packages";
import type { RunOptions, RunResult } from "../lib/runner";
import { NAT64, nat64Wanted, renderDns64Config, renderTaygaConfig } from "../model/nat64";
import type { HubState } from "../model/state";
import { testState } from "../agent/test-support/state-fixtures";
import { run, runOk, withNetns, withTempDir } from "./cloud-init-helpers";
import { loadConfig } from "../components/config";
import { configProblems as problems } from "./helpers/config-problems";
import { minimalConfig } from "./helpers/fixtures";

function withNat64(state: HubState, names: readonly string[]): HubState {
  return { ...state, peers: state.peers.map((p) => (names.includes(p.name) ? { ...p, nat64: true } : p)) };
}

describe("NAT64 configs", () => {
  it("maps IPv4 into the Well-Known Prefix as RFC 6052 does", () => {
    expect(nat64Address("192.0.2.33")).toBe("64:ff9b::c000:221");
    expect(nat64Address("169.254.169.254")).toBe("64:ff9b::a9fe:a9fe");
  });

  it("the DNS64 resolver's config passes unbound-checkconf, listens on the tunnel only and forwards to the hub's resolver", () => {
    const conf = renderDns64Config(testState().hub, 53);
    expect(conf).toContain('module-config: "dns64 iterator"');
    expect(conf).toContain(`interface: 10.77.0.1@${NAT64.dns64Port}`);
    expect(conf).toContain(`interface: fd7a:c10d:9a1::1@${NAT64.dns64Port}`);
    // Port 53 on the tunnel address: the filter's output redirect takes it to the filter while the filter runs.
    expect(conf).toContain("forward-addr: 10.77.0.1@53");
    withTempDir((dir) => {
      const file = path.join(dir, "dns64.conf");
      writeFileSync(file, conf);
      expect(runOk("unbound-checkconf", [file])).toContain("no errors");
      // The check can fail: a module unbound does not have.
      writeFileSync(file, conf.replace("dns64 iterator", "dns46 iterator"));
      expect(run("unbound-checkconf", [file]).status).not.toBe(0);
    });
  });

  it("tayga's config names the prefix, the pool, its own addresses and the data directory", () => {
    const conf = renderTaygaConfig("/x/data");
    expect(conf.split("\n").filter((l) => !l.startsWith("#") && l !== "")).toEqual([
      `tun-device ${NAT64.tunDevice}`,
      `ipv4-addr ${NAT64.taygaIpv4}`,
      `ipv6-addr ${NAT64.taygaIpv6}`,
      "prefix 64:ff9b::/96",
      `dynamic-pool ${NAT64.pool}`,
      "data-dir /x/data",
    ]);
  });

  it("tayga is a hub package and both units pass systemd-analyze", () => {
    expect(HUB_PACKAGES).toContain("tayga");
    const units = agentUnits().filter((u) => Object.values(NAT64.units).some((n) => u.path.endsWith(n)));
    expect(units).toHaveLength(2);
    withTempDir((dir) => {
      for (const u of units) {
        const file = path.join(dir, path.basename(u.path));
        writeFileSync(file, u.content);
        const r = run("systemd-analyze", ["verify", "--man=no", file]);
        expect(`${r.stdout}${r.stderr}`).not.toMatch(/Unknown (key|section)|Failed to parse|Invalid/i);
      }
    });
  });
});

describe("the firewall with nat64 devices", () => {
  const plain = testState();
  const nat = withNat64(plain, [plain.peers[0].name]);
  const render = (s: HubState) => renderNftRuleset(s, { table: "cloudpal", interface: "wg0" });

  it("adds nothing while no device has nat64", () => {
    expect(nat64Wanted(plain)).toBe(false);
    expect(render(plain)).not.toMatch(/nat64|dns64|64:ff9b|cloudpal64/);
  });

  it("redirects only nat64 devices' DNS to DNS64, before any other redirect, and keeps the translator theirs", () => {
    const rules = render(nat);
    const p = nat.peers[0];
    expect(rules).toMatch(new RegExp(`set nat64_v6 \\{[^}]*elements = \\{ ${p.ipv6} \\}`));
    expect(rules).toContain("type nat hook prerouting priority dstnat - 20;");
    expect(rules).toContain(
      `ip6 saddr @nat64_v6 meta l4proto { udp, tcp } th dport 53 dnat ip6 to [fd7a:c10d:9a1::1]:${NAT64.dns64Port}`,
    );
    expect(rules).toContain("ip6 daddr 64:ff9b::/96 ip6 saddr != @nat64_v6 drop");
    // The translated side goes only to the internet, is masqueraded, and nothing goes from it to the hub.
    expect(rules).toContain(
      `iifname "cloudpal64" oifname != { "wg0", "cloudpal64" } ip saddr ${NAT64.pool} ip daddr != @non_internet_v4 accept`,
    );
    expect(rules).toContain(`ip saddr ${NAT64.pool} masquerade`);
    expect(rules).toContain('iifname "cloudpal64" drop');
    // The IPv4 DoH resolvers at their NAT64 addresses are refused like the rest.
    expect(rules).toContain(nat64Address("8.8.8.8"));
  });

  it("is a ruleset the kernel accepts (nft -c in a fresh namespace)", () => {
    withTempDir((dir) => {
      const file = path.join(dir, "rules.nft");
      writeFileSync(file, render(nat));
      withNetns((ns) => runOk("ip", ["netns", "exec", ns, "nft", "-c", "-f", file]));
    });
  });
});

describe("cloudpal-agent: starting and stopping NAT64", () => {
  let root: string;
  let calls: string[];
  const runner = {
    run(command: string, args: readonly string[], _options?: RunOptions): Promise<RunResult> {
      calls.push([command, ...args].join(" "));
      return Promise.resolve({ code: 0, stdout: "", stderr: "" });
    },
  };
  beforeEach(() => {
    root = mkdtempSync(path.join(tmpdir(), "cloudpal-nat64-"));
    calls = [];
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));
  const ctx = () => ({ options: defaultOptions(pathsUnder(root)), runner, log: () => undefined });
  const units = `${NAT64.units.translator} ${NAT64.units.dns64}`;

  it("starts both units for the first nat64 device, does nothing for the same state, stops them after the last", async () => {
    const state = testState();
    const c = ctx();
    expect(await reconcileNat64(c, state)).toBe(false);
    expect(calls).toEqual([]);
    const one = withNat64(state, [state.peers[0].name]);
    expect(await reconcileNat64(c, one)).toBe(true);
    expect(calls).toEqual([`systemctl enable ${units}`, `systemctl restart ${units}`]);
    expect(readFileSync(c.options.paths.taygaConfig, "utf8")).toBe(
      renderTaygaConfig(c.options.paths.nat64DataDir),
    );
    expect(readFileSync(c.options.paths.dns64Config, "utf8")).toBe(renderDns64Config(state.hub, 53));
    // A second nat64 device changes neither config: nothing to restart.
    expect(
      await reconcileNat64(
        c,
        withNat64(
          state,
          state.peers.map((p) => p.name),
        ),
      ),
    ).toBe(false);
    expect(calls).toHaveLength(2);
    // New tunnel addresses: the resolver must listen on them.
    const moved = { ...one, hub: { ...one.hub, ipv4Subnet: "10.78.0.0/16" } };
    expect(await reconcileNat64(c, moved)).toBe(true);
    expect(calls.slice(2)).toEqual([`systemctl enable ${units}`, `systemctl restart ${units}`]);
    expect(await reconcileNat64(c, state)).toBe(true);
    expect(calls.slice(4)).toEqual([`systemctl disable --now ${units}`]);
    expect(existsSync(c.options.paths.taygaConfig)).toBe(false);
    expect(existsSync(c.options.paths.dns64Config)).toBe(false);
    expect(await reconcileNat64(c, state)).toBe(false);
    expect(calls).toHaveLength(5);
  });
});

describe("reconcileNat64 after a failed start", () => {
  it("takes its configs back, so the next apply starts the units again", async () => {
    const root = mkdtempSync(path.join(tmpdir(), "cloudpal-nat64-"));
    try {
      const calls: string[] = [];
      let fail = true;
      const runner = {
        run(command: string, args: readonly string[], _options?: RunOptions): Promise<RunResult> {
          calls.push([command, ...args].join(" "));
          if (fail && args[0] === "restart") return Promise.reject(new Error("tayga: failed to start"));
          return Promise.resolve({ code: 0, stdout: "", stderr: "" });
        },
      };
      const c = { options: defaultOptions(pathsUnder(root)), runner, log: () => undefined };
      const state = testState();
      const one = withNat64(state, [state.peers[0].name]);
      await expect(reconcileNat64(c, one)).rejects.toThrow("tayga: failed to start");
      expect(existsSync(c.options.paths.taygaConfig)).toBe(false);
      fail = false;
      expect(await reconcileNat64(c, one)).toBe(true);
      expect(calls.slice(2)).toEqual([
        `systemctl enable ${NAT64.units.translator} ${NAT64.units.dns64}`,
        `systemctl restart ${NAT64.units.translator} ${NAT64.units.dns64}`,
      ]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe("the nat64 config field", () => {
  it("is false by default and true where the user says so", () => {
    const cfg = loadConfig(
      minimalConfig("vultr", { peers: [{ name: "laptop" }, { name: "phone", nat64: true }] }),
    );
    expect(cfg.peers.map((p) => [p.name, p.nat64])).toEqual([
      ["laptop", false],
      ["phone", true],
    ]);
  });

  it("names the field, the value and the fix when it is wrong or cannot work", () => {
    expect(problems(minimalConfig("vultr", { peers: [{ name: "phone", nat64: "yes" }] }))).toEqual([
      `'peers[0].nat64' ("yes") must be true (an IPv6-only device: DNS64 and NAT64) or false.`,
    ]);
    expect(
      problems(
        minimalConfig("vultr", { firewallMode: "mesh-only", peers: [{ name: "phone", nat64: true }] }),
      ),
    ).toEqual([
      `'peers[0].nat64' (true) translates to the internet, and 'firewallMode' is "mesh-only" (the hub forwards nothing to the internet): remove 'nat64', or use "vpn".`,
    ]);
    expect(
      problems(
        minimalConfig("vultr", {
          groups: { family: { reaches: ["family"], internet: true }, iot: { internet: false } },
          peers: [{ name: "cam", group: "iot", nat64: true }],
        }),
      ),
    ).toEqual([
      `'peers[0].nat64' (true) translates to the internet, and group "iot" has no internet access: remove 'nat64', or set 'groups.iot.internet: true'.`,
    ]);
    expect(
      problems(
        minimalConfig("vultr", {
          groups: {
            family: { reaches: ["family"], internet: true },
            kids: { internet: true, deny: ["games.example"] },
          },
          peers: [{ name: "tablet", group: "kids", nat64: true }],
        }),
      ),
    ).toEqual([
      `'peers[0].nat64' (true) cannot go with group "kids"'s own 'blocklists', 'allow', 'deny' or 'sites': DNS64 asks the filter for the device, so the filter would apply only the hub's 'dns' lists; put the device in a group without its own lists, or remove 'nat64'.`,
    ]);
  });
});
