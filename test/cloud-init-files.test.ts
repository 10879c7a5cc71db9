/**
 * The files the user-data writes, run through the real tools: nft (check mode, then a real load, in a network
 * namespace this test creates), unbound-checkconf, systemd-sysctl (in a namespace) and apt-config.
 */
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "fs";
import { join } from "path";
import { LAYOUT } from "../model/layout";
import { APT_DROP_IN } from "../cloud-init/packages";
import { renderUserData } from "../cloud-init/render";
import { JOURNALD_DROP_IN, SYSCTL_FILE, UNATTENDED_UPGRADES_FILE } from "../cloud-init/system";
import { fileContent, parseUserData, run, runOk, spec, withNetns, withTempDir } from "./cloud-init-helpers";

const config = parseUserData(renderUserData(spec({ sshPort: 2222, wireguardPort: 51999 })));

const baseline = (): string => fileContent(config, LAYOUT.nftablesConfig);

describe("nftables baseline", () => {
  it("passes `nft -c -f` in a fresh network namespace", () => {
    withTempDir((dir) => {
      const file = join(dir, "nftables.conf");
      writeFileSync(file, baseline());
      withNetns((ns) => runOk("ip", ["netns", "exec", ns, "nft", "-c", "-f", file]));
    });
  });

  it("fails `nft -c -f` when a rule is broken (so the check can fail)", () => {
    withTempDir((dir) => {
      const file = join(dir, "nftables.conf");
      writeFileSync(file, baseline().replace("policy drop;", "policy dorp;"));
      withNetns((ns) => {
        const r = run("ip", ["netns", "exec", ns, "nft", "-c", "-f", file]);
        expect(r.status).not.toBe(0);
        expect(r.stderr).toMatch(/dorp/);
      });
    });
  });

  it("loads for real, twice, and leaves other tables alone", () => {
    withTempDir((dir) => {
      const file = join(dir, "nftables.conf");
      writeFileSync(file, baseline());
      withNetns((ns) => {
        const nft = (...args: string[]): string => runOk("ip", ["netns", "exec", ns, "nft", ...args]);
        nft("add", "table", "inet", "someone-else");
        nft("add", "chain", "inet", "someone-else", "keep");
        nft("-f", file);
        nft("-f", file); // the agent and nftables.service reload it again and again
        const tables = nft("list", "tables");
        expect(tables).toContain(`table inet ${LAYOUT.nftTable}`);
        expect(tables).toContain("table inet someone-else");
        const ours = nft("list", "table", "inet", LAYOUT.nftTable);
        expect(ours).toMatch(/hook input priority filter; policy drop;/);
        expect(ours).toMatch(/hook forward priority filter; policy drop;/);
        expect(ours).toContain("udp dport 51999 accept");
        expect(ours).toContain("tcp dport 2222 accept");
        // Loaded twice, defined once: the delete-and-redefine replaced the table rather than adding to it.
        expect(ours.match(/tcp dport 2222 accept/g)).toHaveLength(1);
      });
    });
  });
});

describe("nftables baseline, as traffic sees it", () => {
  /**
   * Three namespaces this test creates: the hub (baseline loaded), "internet" on its eth0, and a stand-in for a
   * peer on an interface named wg0 (the rule matches the name; no WireGuard needed). With nothing listening,
   * a TCP probe that passes the firewall is refused at once, and one the firewall drops times out.
   */
  function probe(ns: string, address: string, port: number): "passed" | "dropped" {
    const r = run("ip", [
      "netns",
      "exec",
      ns,
      "timeout",
      "2",
      "bash",
      "-c",
      `exec 3<>/dev/tcp/${address}/${port}`,
    ]);
    if (r.status === 124) return "dropped";
    if (/Connection refused/.test(r.stderr)) return "passed";
    throw new Error(`probe ${address}:${port} from ${ns}: exit ${r.status}, ${r.stderr}`);
  }

  it("lets only SSH in from the internet, DNS only from wg0, and answers ping", () => {
    withTempDir((dir) => {
      const file = join(dir, "nftables.conf");
      writeFileSync(file, baseline());
      withNetns((hub) =>
        withNetns((internet) =>
          withNetns((peer) => {
            const ip = (ns: string, ...args: string[]): string => runOk("ip", ["-n", ns, ...args]);
            ip(hub, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", internet);
            ip(hub, "link", "add", "wg0", "type", "veth", "peer", "name", "t0", "netns", peer);
            ip(hub, "addr", "add", "10.200.0.1/24", "dev", "eth0");
            ip(hub, "addr", "add", "10.201.0.1/24", "dev", "wg0");
            ip(internet, "addr", "add", "10.200.0.2/24", "dev", "eth0");
            ip(peer, "addr", "add", "10.201.0.2/24", "dev", "t0");
            for (const [ns, dev] of [
              [hub, "eth0"],
              [hub, "wg0"],
              [internet, "eth0"],
              [peer, "t0"],
            ] as const) {
              ip(ns, "link", "set", dev, "up");
            }
            // Before the baseline everything is refused rather than dropped: the probes can tell the two apart.
            expect(probe(internet, "10.200.0.1", 53)).toBe("passed");
            runOk("ip", ["netns", "exec", hub, "nft", "-f", file]);
            expect(probe(internet, "10.200.0.1", 2222)).toBe("passed");
            expect(probe(internet, "10.200.0.1", 53)).toBe("dropped");
            expect(probe(internet, "10.200.0.1", 8953)).toBe("dropped");
            expect(probe(peer, "10.201.0.1", 53)).toBe("passed");
            expect(probe(peer, "10.201.0.1", 8953)).toBe("dropped");
            runOk("ip", ["netns", "exec", internet, "ping", "-c", "1", "-W", "2", "10.200.0.1"]);
          }),
        ),
      );
    });
  });
});

describe("unbound baseline", () => {
  const unboundBaseline = fileContent(config, LAYOUT.unboundConfig);

  /** A full unbound.conf laid out like Debian's, in a temp dir: its own settings, then the baseline included. */
  function checkconf(content: string): { status: number | null; output: string } {
    return withTempDir((dir) => {
      const confD = join(dir, "unbound.conf.d");
      runOk("mkdir", ["-p", confD]);
      writeFileSync(join(confD, "cloudpal.conf"), content);
      // The Debian package's own drop-ins. Its trust anchor file is the copy of dns-root-data's root.key that
      // unbound's start-up helper makes in /var/lib/unbound; here the copy goes to the temp dir.
      copyFileSync("/etc/unbound/unbound.conf.d/remote-control.conf", join(confD, "remote-control.conf"));
      copyFileSync("/usr/share/dns/root.key", join(dir, "root.key"));
      writeFileSync(
        join(confD, "root-auto-trust-anchor-file.conf"),
        readFileSync("/etc/unbound/unbound.conf.d/root-auto-trust-anchor-file.conf", "utf8").replace(
          "/var/lib/unbound/root.key",
          join(dir, "root.key"),
        ),
      );
      const main = join(dir, "unbound.conf");
      writeFileSync(
        main,
        `server:\n    directory: "${dir}"\n    chroot: ""\n    username: ""\n    pidfile: "${dir}/unbound.pid"\n` +
          `include-toplevel: "${confD}/*.conf"\n`,
      );
      const r = run("unbound-checkconf", [main]);
      return { status: r.status, output: `${r.stdout}${r.stderr}` };
    });
  }

  it("passes unbound-checkconf together with Debian's own unbound.conf.d files", () => {
    const r = checkconf(unboundBaseline);
    expect(r.output).toContain("no errors");
    expect(r.status).toBe(0);
  });

  it("fails unbound-checkconf with a misspelt option (so the check can fail)", () => {
    const r = checkconf(unboundBaseline.replace("hide-version", "hide-versoin"));
    expect(r.status).not.toBe(0);
    expect(r.output).toMatch(/hide-versoin/);
  });

  it("listens on loopback only and logs no queries", () => {
    const interfaces = unboundBaseline.match(/^\s*interface:.*$/gm)?.map((l) => l.trim());
    expect(interfaces).toEqual(["interface: 127.0.0.1", "interface: ::1"]);
    expect(unboundBaseline).toMatch(/log-queries: no/);
    expect(unboundBaseline).toMatch(/log-replies: no/);
    expect(unboundBaseline).toMatch(/control-interface: \/run\/unbound\.ctl/);
  });
});

describe("forwarding sysctls", () => {
  it("turn on IPv4 and IPv6 forwarding when systemd-sysctl applies them in a fresh namespace", () => {
    withTempDir((dir) => {
      const file = join(dir, "90-cloudpal.conf");
      writeFileSync(file, fileContent(config, SYSCTL_FILE));
      withNetns((ns) => {
        const read = (key: string): string => runOk("ip", ["netns", "exec", ns, "sysctl", "-n", key]).trim();
        expect(read("net.ipv4.ip_forward")).toBe("0");
        runOk("ip", ["netns", "exec", ns, "/usr/lib/systemd/systemd-sysctl", file]);
        expect(read("net.ipv4.ip_forward")).toBe("1");
        expect(read("net.ipv6.conf.all.forwarding")).toBe("1");
        // The glob reached an interface by name: router adverts keep working with forwarding on.
        expect(read("net.ipv6.conf.lo.accept_ra")).toBe("2");
      });
    });
  });
});

describe("apt settings", () => {
  it("turn off Recommends, Suggests and translations, as apt reads them", () => {
    withTempDir((dir) => {
      const file = join(dir, "90cloudpal-apt");
      writeFileSync(file, fileContent(config, APT_DROP_IN));
      const dump = runOk("apt-config", ["-c", file, "dump"]);
      expect(dump).toContain('APT::Install-Recommends "false";');
      expect(dump).toContain('APT::Install-Suggests "false";');
      expect(dump).toContain('Acquire::Languages:: "none";');
    });
  });

  it("make `apt-get update` fetch gzip indexes and no source indexes for deb-src lines", () => {
    withTempDir((dir) => {
      const file = join(dir, "90cloudpal-apt");
      writeFileSync(file, fileContent(config, APT_DROP_IN));
      // A deb-src line next to the deb, as cloud-init's Debian template writes them. Nothing is downloaded.
      const sources = join(dir, "sources.list");
      writeFileSync(
        sources,
        "deb http://deb.debian.org/debian bookworm main\ndeb-src http://deb.debian.org/debian bookworm main\n",
      );
      mkdirSync(join(dir, "parts"));
      mkdirSync(join(dir, "lists", "partial"), { recursive: true });
      const uris = (...extra: string[]): string =>
        runOk("apt-get", [
          "-o",
          `Dir::Etc::SourceList=${sources}`,
          "-o",
          `Dir::Etc::SourceParts=${join(dir, "parts")}`,
          "-o",
          `Dir::State::Lists=${join(dir, "lists")}`,
          ...extra,
          "--print-uris",
          "update",
        ]);
      // Control: without the file apt would fetch the source index.
      expect(uris()).toContain("/main/source/Sources");
      const ours = uris("-c", file);
      expect(ours).not.toContain("/source/Sources");
      // gzip, not xz: cheaper to decompress on a small vCPU.
      expect(uris()).toContain("/main/binary-amd64/Packages.xz");
      expect(ours).toContain("/main/binary-amd64/Packages.gz");
    });
  });
});

describe("unattended-upgrades and journald settings", () => {
  it.each([true, false])("apt parses the unattended-upgrades file (autoReboot %s)", (autoReboot) => {
    const c = parseUserData(
      renderUserData(spec({ unattendedUpgrades: { autoReboot, rebootTime: "05:15" } })),
    );
    withTempDir((dir) => {
      const file = join(dir, "52cloudpal-unattended-upgrades");
      writeFileSync(file, fileContent(c, UNATTENDED_UPGRADES_FILE));
      const dump = runOk("apt-config", ["-c", file, "dump"]);
      expect(dump).toContain(`Unattended-Upgrade::Automatic-Reboot "${autoReboot}";`);
      expect(dump).toContain('Unattended-Upgrade::Automatic-Reboot-Time "05:15";');
      expect(dump).toContain('APT::Periodic::Unattended-Upgrade "1";');
      expect(dump).toMatch(/Unattended-Upgrade::Origins-Pattern:: ".*-security.*Debian-Security"/);
    });
  });

  it("journald keeps nothing on disk", () => {
    const lines = fileContent(config, JOURNALD_DROP_IN).split("\n");
    expect(lines).toEqual(expect.arrayContaining(["[Journal]", "Storage=volatile", "ForwardToSyslog=no"]));
  });
});
