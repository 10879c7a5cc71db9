/**
 * A fake Runner for unit tests that behaves like a tiny hub: it keeps the live state the real commands would
 * change (WireGuard peers, addresses, the nft table, unbound's zones) and answers the probes from it. So a test
 * can apply twice and see that the second apply runs nothing, without root. Every call is recorded.
 * The real commands run in test/e2e/netns-agent.test.ts.
 */
import { readFileSync } from "fs";
import { publicKeyFromPrivate } from "../../model/keys";
import {
  type RunOptions,
  type RunResult,
  type Runner,
  CommandError,
  describeCommand,
} from "../../lib/runner";
import { parseUnboundZones } from "../src/unbound-config";

export interface Call {
  readonly command: string;
  readonly args: readonly string[];
  readonly input?: string;
  /** The line the real runner would log. */
  readonly line: string;
}

interface WgPeer {
  publicKey: string;
  presharedKey?: string;
  allowedIps: string[];
}

export class FakeHub implements Runner {
  readonly calls: Call[] = [];
  linkExists = true;
  up = false;
  addrs: { family: string; local: string; prefixlen: number }[] = [];
  wg = { privateKey: "(none)", listenPort: 0, peers: [] as WgPeer[] };
  nftTable: string | undefined;
  unboundRunning = true;
  zones = new Map<string, string>();
  datas = new Map<string, string[]>();
  /** Commands (joined with spaces, prefix match) that fail, to test error paths. */
  readonly failing: string[] = [];

  constructor(private readonly unboundFiles: { zones: string; blocklist: string }) {}

  lines(): string[] {
    return this.calls.map((c) => c.line);
  }

  async run(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const line = describeCommand(command, args, options.secretArgs);
    this.calls.push({ command, args: [...args], input: options.input, line });
    const joined = [command, ...args].join(" ");
    const fail = (stderr: string): RunResult => {
      const r = { code: 1, stdout: "", stderr };
      if (options.allowFailure) return r;
      throw new CommandError(line.slice(4), r);
    };
    if (this.failing.some((f) => joined.startsWith(f))) return fail("injected failure");
    const ok = (stdout = ""): RunResult => ({ code: 0, stdout, stderr: "" });
    const a = args.filter((x, i) => !(command === "unbound-control" && (x === "-c" || args[i - 1] === "-c")));
    switch (command) {
      case "ip":
        if (a[0] === "-j" && a[1] === "addr") {
          if (!this.linkExists) return fail(`Device "${a[4]}" does not exist.`);
          return ok(
            JSON.stringify([
              {
                ifname: a[4],
                flags: this.up ? ["POINTOPOINT", "UP"] : ["POINTOPOINT"],
                addr_info: this.addrs,
              },
            ]),
          );
        }
        if (a[0] === "link" && a[1] === "add") {
          this.linkExists = true;
          return ok();
        }
        if (a[0] === "link" && a[1] === "set") {
          this.up = a[4] === "up";
          return ok();
        }
        if (a[0] === "addr") {
          const [local, prefix] = a[2].split("/");
          const family = local.includes(":") ? "inet6" : "inet";
          this.addrs = this.addrs.filter((x) => x.local !== local);
          if (a[1] === "replace") this.addrs.push({ family, local, prefixlen: Number(prefix) });
          return ok();
        }
        break;
      case "wg":
        if (!this.linkExists) return fail("Unable to access interface: No such device");
        if (a[0] === "show" && a[2] === "dump") {
          const pub = this.wg.privateKey === "(none)" ? "(none)" : publicKeyFromPrivate(this.wg.privateKey);
          const rows = [[this.wg.privateKey, pub, String(this.wg.listenPort), "off"].join("\t")];
          for (const p of this.wg.peers) {
            rows.push(
              [
                p.publicKey,
                p.presharedKey ?? "(none)",
                "(none)",
                p.allowedIps.join(",") || "(none)",
                "0",
                "0",
                "0",
                "off",
              ].join("\t"),
            );
          }
          return ok(rows.join("\n") + "\n");
        }
        if (a[0] === "syncconf") {
          this.wg.peers = [];
          this.loadWgConfig(readFileSync(a[2], "utf8"));
          return ok();
        }
        if (a[0] === "addconf") {
          this.loadWgConfig(readFileSync(a[2], "utf8"));
          return ok();
        }
        if (a[0] === "set") {
          for (let i = 2; i + 2 < a.length + 1; i += 3) {
            if (a[i] !== "peer" || a[i + 2] !== "remove")
              throw new Error(`FakeHub does not know wg set ${a.slice(i).join(" ")}`);
            this.wg.peers = this.wg.peers.filter((p) => p.publicKey !== a[i + 1]);
          }
          return ok();
        }
        break;
      case "nft":
        if (a[0] === "-c" && a[1] === "-f") return ok();
        if ((a[0] === "-t" || a[0] === "-s") && a[1] === "list")
          return this.nftTable !== undefined ? ok(this.nftTable) : fail("Error: No such file or directory");
        if (a[0] === "-f" && a[1] === "-") {
          this.nftTable = options.input;
          return ok();
        }
        break;
      case "unbound-checkconf":
        return ok(`unbound-checkconf: no errors in ${a[0]}\n`);
      case "unbound-control":
        if (!this.unboundRunning)
          return fail("error: connect: No such file or directory for /run/unbound.ctl");
        return ok(this.unbound(a[0], options.input ?? ""));
      case "systemctl":
        if (a[0] === "restart") {
          this.unboundRunning = true;
          this.loadZoneFile();
          return ok();
        }
        break;
    }
    throw new Error(`FakeHub does not know ${joined}`);
  }

  private loadZoneFile(): void {
    this.zones = new Map();
    this.datas = new Map();
    for (const file of [this.unboundFiles.zones, this.unboundFiles.blocklist]) {
      const z = parseUnboundZones(readFileSync(file, "utf8"));
      for (const [k, v] of z.zones) this.zones.set(k, v);
      for (const [k, v] of z.datas) this.datas.set(k, [...v]);
    }
  }

  private unbound(sub: string, input: string): string {
    const lines = input.split("\n").filter((l) => l.length > 0);
    switch (sub) {
      case "status":
        return "version: 1.17.1\nis running...\n";
      case "reload":
        this.loadZoneFile();
        return "ok\n";
      case "list_local_zones":
        // unbound's built-in zones are listed too (daemon/remote.c); the agent must leave them alone.
        return [...this.zones, ["localhost.", "redirect"]].map(([k, v]) => `${k} ${v}\n`).join("");
      case "list_local_data":
        return [...[...this.datas.values()].flat(), "localhost. 10800 IN A 127.0.0.1"]
          .map((rr) => rr.split(" ").join("\t") + "\n")
          .join("");
      case "local_zones":
        for (const l of lines) this.zones.set(l.split(" ")[0], l.split(" ")[1]);
        return "ok\n";
      case "local_zones_remove":
        for (const l of lines) this.zones.delete(l);
        return "ok\n";
      case "local_datas":
        for (const l of lines) {
          const owner = l.split(" ")[0];
          this.datas.set(owner, [...(this.datas.get(owner) ?? []), l]);
        }
        return "ok\n";
      case "local_datas_remove":
        for (const l of lines) this.datas.delete(l);
        return "ok\n";
    }
    throw new Error(`FakeHub does not know unbound-control ${sub}`);
  }

  private loadWgConfig(text: string): void {
    const peers: WgPeer[] = [];
    let current: WgPeer | undefined;
    for (const raw of text.split("\n")) {
      const line = raw.trim();
      if (line === "[Peer]") {
        current = { publicKey: "", allowedIps: [] };
        peers.push(current);
        continue;
      }
      const m = /^(\w+) = (.*)$/.exec(line);
      if (!m) continue;
      const [, k, v] = m;
      if (!current && k === "PrivateKey") this.wg.privateKey = v;
      else if (!current && k === "ListenPort") this.wg.listenPort = Number(v);
      else if (current && k === "PublicKey") current.publicKey = v;
      else if (current && k === "PresharedKey") current.presharedKey = v;
      else if (current && k === "AllowedIPs") current.allowedIps = v.split(", ");
    }
    this.wg.peers.push(...peers);
  }
}
