/**
 * The bootstrap script for existing servers is a translation of the same cloud-config the user-data
 * serialises. These tests check bash accepts it, that it carries every file, package, user and command of the
 * user-data, and run its file-writing parts for real in a temp dir.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from "fs";
import { join } from "path";
import { renderBootstrapScript, renderUserData } from "../cloud-init/render";
import { shellQuote } from "../model/shell";
import { FAIL_FAST } from "../cloud-init/types";
import { AGENT_RENDERED_FILES, DPKG_LOCK_TIMEOUT_SECONDS } from "../cloud-init/script";
import { LAYOUT } from "../model/layout";
import {
  COMBINATIONS,
  fileContent,
  parseUserData,
  run,
  runOk,
  spec,
  withTempDir,
} from "./cloud-init-helpers";

/** The lines of one `# key` section of the script, up to the blank line and header of the next one. */
function section(script: string, key: string): string {
  const start = script.indexOf(`\n# ${key}\n`);
  if (start < 0) throw new Error(`script has no '# ${key}' section`);
  const body = script.slice(start + key.length + 4);
  const end = body.search(/\n\n(# [a-z_]+\n|echo 'CloudPal bootstrap: done')/);
  return body.slice(0, end + 1);
}

/** One shell function of the script's prelude, as text. */
function shellFunction(script: string, name: string): string {
  const start = script.indexOf(`${name}() {`);
  return script.slice(start, script.indexOf("\n}\n", start) + 3);
}

describe.each(COMBINATIONS)("bootstrap script for $name", ({ spec: s }) => {
  const script = renderBootstrapScript(s);
  const config = parseUserData(renderUserData(s));

  it("is valid bash that stops at the first error", () => {
    withTempDir((dir) => {
      const file = join(dir, "bootstrap.sh");
      writeFileSync(file, script);
      runOk("bash", ["-n", file]);
    });
    expect(script.split("\n").slice(0, 6)).toContain("set -eu");
  });

  it("writes every file of the user-data, with its mode and owner", () => {
    for (const f of config.write_files) {
      expect(script).toContain(
        `put_file ${shellQuote(f.path)} ${shellQuote(f.permissions)} ${shellQuote(f.owner)} <<'CLOUDPAL_EOF'\n${f.content}CLOUDPAL_EOF\n`,
      );
    }
  });

  it("seeds the files the agent renders only while no state exists, so a second run keeps the agent's", () => {
    expect([...AGENT_RENDERED_FILES].sort()).toEqual([LAYOUT.nftablesConfig, LAYOUT.unboundConfig].sort());
    for (const f of config.write_files) {
      const put = `put_file ${shellQuote(f.path)} ${shellQuote(f.permissions)} ${shellQuote(f.owner)} <<'CLOUDPAL_EOF'\n${f.content}CLOUDPAL_EOF\n`;
      const guarded = `if [ ! -e ${shellQuote(LAYOUT.stateFile)} ]; then\n${put}fi\n`;
      if (AGENT_RENDERED_FILES.includes(f.path)) expect(script).toContain(guarded);
      else expect(script).not.toContain(guarded);
    }
  });

  it("installs every package of the user-data, keeping the files written first, unless all are installed", () => {
    const n = config.packages.length;
    expect(section(script, "packages")).toBe(
      `if [ "$installed" -ne ${n} ]; then\n\t'apt-get' 'install' '-y' '-q' '-o' 'Dpkg::Options::=--force-confold' '-o' 'DPkg::Lock::Timeout=${DPKG_LOCK_TIMEOUT_SECONDS}' ${config.packages.map(shellQuote).join(" ")}\nfi\n`,
    );
    expect(section(script, "package_update")).toBe(
      `installed=$(dpkg-query -W -f='\${db:Status-Abbrev}\\n' ${config.packages.map(shellQuote).join(" ")} 2>/dev/null | grep -c '^ii' || :)\n` +
        `if [ "$installed" -ne ${n} ]; then\n\t'apt-get' 'update' '-q'\nfi\n`,
    );
  });

  it("runs every runcmd command, in the same order", () => {
    const expected = config.runcmd
      .filter((c) => c !== FAIL_FAST)
      .map((c) => (c as string[]).map(shellQuote).join(" "))
      .join("\n");
    expect(section(script, "runcmd")).toBe(`${expected}\n`);
  });

  it("creates the same users, adds the operator's keys and sudo rule", () => {
    const users = section(script, "users");
    for (const u of config.users) {
      // Locked only when the script makes the account: an account the owner already has keeps its password.
      expect(users).toContain(
        `if ! id -u ${shellQuote(u.name)} >/dev/null 2>&1; then\n\t'useradd' '--shell' '/bin/bash' '--create-home' '--comment' 'CloudPal operator' ${shellQuote(u.name)}\n\t'usermod' '--lock' ${shellQuote(u.name)}\nfi\n`,
      );
      expect(users.split("'usermod' '--lock'").length).toBe(2);
    }
    for (const key of s.operator.sshPublicKeys)
      expect(users).toContain(`add_line_once "$home/.ssh/authorized_keys" ${shellQuote(key)}`);
    expect(users).toContain(`${s.operator.user} ALL=(ALL) NOPASSWD:ALL\nCLOUDPAL_EOF`);
    // The sudo rule is checked by visudo under a name sudo ignores, and only then put in place.
    const candidate = `/etc/sudoers.d/.90-cloudpal-${s.operator.user}.check`;
    const check = users.indexOf(`'visudo' '-c' '-q' '-f' '${candidate}'`);
    expect(check).toBeGreaterThan(0);
    expect(
      users.indexOf(
        `if same_file '${candidate}' '/etc/sudoers.d/90-cloudpal-${s.operator.user}'; then rm -f '${candidate}'; else mv -f '${candidate}' '/etc/sudoers.d/90-cloudpal-${s.operator.user}'; fi`,
      ),
    ).toBeGreaterThan(check);
    // Only the operator: every CloudPal unit runs as root under systemd's sandboxing (cloud-init/units.ts).
    expect(users).not.toContain("'useradd' '--shell' '/usr/sbin/nologin'");
  });

  it("follows cloud-init's module order: files, host name, users, locale, packages, commands", () => {
    const order = [
      "write_files",
      "hostname",
      "manage_etc_hosts",
      "users",
      "locale",
      "package_update",
      "packages",
      "runcmd",
    ];
    const positions = order.map((k) => script.indexOf(`\n# ${k}\n`));
    expect(positions.every((p) => p > 0)).toBe(true);
    expect([...positions].sort((a, b) => a - b)).toEqual(positions);
  });
});

describe("running the script's file writing for real", () => {
  const script = renderBootstrapScript(spec({ image: "ubuntu-24.04", sshPort: 2200 }));
  const config = parseUserData(renderUserData(spec({ image: "ubuntu-24.04", sshPort: 2200 })));

  it("reproduces every user-data file byte for byte (heredocs expand nothing)", () => {
    withTempDir((root) => {
      // put_file redirected under a temp root; the calls and heredocs are the script's own.
      const redirected = `set -eu\nput_file() { mkdir -p "$(dirname "$ROOT$1")"; cat >"$ROOT$1"; chmod "$2" "$ROOT$1"; }\n${section(script, "write_files")}`;
      const r = run("env", [`ROOT=${root}`, "bash", "-c", redirected]);
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
      for (const f of config.write_files) {
        const written = join(root, f.path);
        expect(readFileSync(written, "utf8")).toBe(f.content);
        expect((statSync(written).mode & 0o7777).toString(8)).toBe(f.permissions.replace(/^0/, ""));
      }
      // The unattended-upgrades file holds literal ${distro_codename}: it must reach the disk unexpanded.
      expect(
        readFileSync(join(root, "/etc/apt/apt.conf.d/52cloudpal-unattended-upgrades"), "utf8"),
      ).toContain("${distro_id}:${distro_codename}-security");
    });
  });

  it("writes a sudo rule that visudo accepts", () => {
    const rule = /\.check' '0440' 'root:root' <<'CLOUDPAL_EOF'\n(.*\n)CLOUDPAL_EOF/.exec(script)?.[1];
    expect(rule).toBe("cloudpal-admin ALL=(ALL) NOPASSWD:ALL\n");
    withTempDir((dir) => {
      const file = join(dir, "rule");
      writeFileSync(file, rule!, { mode: 0o440 });
      runOk("visudo", ["-c", "-q", "-f", file]);
      writeFileSync(file, "cloudpal-admin ALL=(ALL NOPASSWD:ALL\n");
      expect(run("visudo", ["-c", "-q", "-f", file]).status).not.toBe(0);
    });
  });

  const putFile = shellFunction(script, "put_file");
  const sameFile = shellFunction(script, "same_file");
  const addLineOnce = shellFunction(script, "add_line_once");

  it("put_file replaces atomically, keeps one copy of a foreign file, and leaves no temp files", () => {
    withTempDir((dir) => {
      const target = join(dir, "sub", "nftables.conf");
      const call = (content: string): void => {
        runOk(
          "bash",
          ["-c", `set -eu\n${sameFile}\n${putFile}\nput_file "$1" 0640 root:root`, "bash", target],
          content,
        );
      };
      call("ours 1\n");
      expect(existsSync(`${target}.pre-cloudpal`)).toBe(false);
      writeFileSync(target, "the owner's own rules\n");
      call("# Managed by CloudPal\nours 2\n");
      expect(readFileSync(`${target}.pre-cloudpal`, "utf8")).toBe("the owner's own rules\n");
      call("# Managed by CloudPal\nours 3\n");
      expect(readFileSync(`${target}.pre-cloudpal`, "utf8")).toBe("the owner's own rules\n");
      expect(readFileSync(target, "utf8")).toBe("# Managed by CloudPal\nours 3\n");
      expect((statSync(target).mode & 0o777).toString(8)).toBe("640");
      expect(readdirSync(join(dir, "sub")).sort()).toEqual(["nftables.conf", "nftables.conf.pre-cloudpal"]);
    });
  });

  it("put_file leaves a file with the same bytes, mode and owner untouched (a second run changes nothing)", () => {
    withTempDir((dir) => {
      const target = join(dir, "sub", "sysctl.conf");
      const call = (content: string, mode: string): void => {
        const owner = `${process.getuid?.() ?? 0}:${process.getgid?.() ?? 0}`;
        runOk(
          "bash",
          ["-c", `set -eu\n${sameFile}\n${putFile}\nput_file "$1" "$2" "$3"`, "bash", target, mode, owner],
          content,
        );
      };
      call("# Managed by CloudPal\nx = 1\n", "0644");
      const first = statSync(target);
      // An old mtime: a rewrite, even within the same second, would set it to now.
      utimesSync(target, first.atime, new Date(2001, 0, 1));
      const pinned = statSync(target);
      call("# Managed by CloudPal\nx = 1\n", "0644");
      const again = statSync(target);
      expect({ ino: again.ino, mtimeMs: again.mtimeMs }).toEqual({
        ino: pinned.ino,
        mtimeMs: pinned.mtimeMs,
      });
      // A different mode, or different bytes, are replaced.
      call("# Managed by CloudPal\nx = 1\n", "0600");
      expect((statSync(target).mode & 0o777).toString(8)).toBe("600");
      expect(statSync(target).ino).not.toBe(pinned.ino);
      call("# Managed by CloudPal\nx = 2\n", "0600");
      expect(readFileSync(target, "utf8")).toBe("# Managed by CloudPal\nx = 2\n");
      expect(readdirSync(join(dir, "sub"))).toEqual(["sysctl.conf"]);
    });
  });

  it("the seeded files are written on a fresh server and kept once the agent has a state", () => {
    const seeded = script.slice(script.indexOf("\n# write_files\n"), script.indexOf("\n# hostname\n"));
    withTempDir((root) => {
      // The script's own write_files section, with its absolute paths moved under a temp root.
      const moved = seeded.split("'/").join(`'${root}/`);
      const body = `set -eu\n${sameFile}\n${putFile}\n${moved}`;
      const owner = `${process.getuid?.() ?? 0}:${process.getgid?.() ?? 0}`;
      const runSection = () => runOk("bash", ["-c", body.split("'root:root'").join(`'${owner}'`)]);
      runSection();
      const nft = join(root, LAYOUT.nftablesConfig);
      expect(readFileSync(nft, "utf8")).toBe(fileContent(config, LAYOUT.nftablesConfig));
      // The agent applied a state and rendered its own ruleset and unbound settings.
      mkdirSync(join(root, LAYOUT.stateDir), { recursive: true });
      writeFileSync(join(root, LAYOUT.stateFile), "{}");
      writeFileSync(nft, "# Managed by CloudPal\nthe agent's ruleset\n");
      writeFileSync(join(root, LAYOUT.unboundConfig), "# Managed by CloudPal\nthe agent's settings\n");
      runSection();
      expect(readFileSync(nft, "utf8")).toBe("# Managed by CloudPal\nthe agent's ruleset\n");
      expect(readFileSync(join(root, LAYOUT.unboundConfig), "utf8")).toBe(
        "# Managed by CloudPal\nthe agent's settings\n",
      );
    });
  });

  it("counts the installed packages as dpkg does: every one installed skips apt, one missing runs it", () => {
    const count = section(script, "package_update").split("\n")[0];
    const installed = (names: readonly string[]): number => {
      const line = count.replace(
        /dpkg-query -W -f='([^']*)' .* 2>/,
        (_m, format: string) => `dpkg-query -W -f='${format}' ${names.map(shellQuote).join(" ")} 2>`,
      );
      const r = runOk("bash", ["-c", `set -eu\n${line}\necho "$installed"`]);
      return Number(r.trim());
    };
    // The oracle: dpkg's own status line for each package of this machine.
    const isInstalled = (name: string) =>
      /^Status: install ok installed$/m.test(run("dpkg", ["-s", name]).stdout);
    const here = ["bash", "coreutils", "dpkg"];
    expect(here.every(isInstalled)).toBe(true);
    expect(installed(here)).toBe(3);
    expect(installed([...here, "cloudpal-no-such-package"])).toBe(3);
    expect(installed(["cloudpal-no-such-package"])).toBe(0);
    expect(installed(config.packages)).toBe(config.packages.filter(isInstalled).length);
  });

  it("add_line_once adds an authorized key once, however often the script runs", () => {
    withTempDir((dir) => {
      const file = join(dir, "authorized_keys");
      writeFileSync(file, "ssh-ed25519 AAAAexisting other@host\n");
      for (let i = 0; i < 3; i++) {
        runOk("bash", [
          "-c",
          `set -eu\n${addLineOnce}\nadd_line_once "$1" "$2"`,
          "bash",
          file,
          "ssh-ed25519 AAAAnew me@laptop",
        ]);
      }
      expect(readFileSync(file, "utf8")).toBe(
        "ssh-ed25519 AAAAexisting other@host\nssh-ed25519 AAAAnew me@laptop\n",
      );
    });
  });
});
