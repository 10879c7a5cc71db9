import { mkdtempSync, readFileSync, statSync } from "fs";
import { tmpdir } from "os";
import * as path from "path";
import { CommandError, realRunner, type Runner } from "../lib/runner";
import { DeviceError, main, parseConfigs, parsePorts, pickConfig, renderQr } from "../scripts/device";

// Tests here start node as a child process (device.test: with ts-node): seconds each on a loaded 2-core machine.
jest.setTimeout(30_000);

const outputs = JSON.stringify({ laptop: "[Interface]\nAddress = 10.77.0.9/32\n", phone: "[Interface]\n" });

describe("npm run device", () => {
  it("picks one device's config from the stack output", () => {
    expect(pickConfig(outputs, "laptop")).toBe("[Interface]\nAddress = 10.77.0.9/32\n");
  });

  it("names the known devices when asked for an unknown one", () => {
    expect(() => pickConfig(outputs, "tablet")).toThrow(
      "device \"tablet\" is not in this stack's 'cloudpal:peers': known devices are laptop, phone.",
    );
  });

  it("explains output that is not a config map", () => {
    expect(() => parseConfigs("not json")).toThrow(DeviceError);
    expect(() => parseConfigs("[1]")).toThrow(/not a map of device name to config/);
  });

  it("renders a terminal QR code that encodes the config", async () => {
    const qr = await renderQr("[Interface]\nPrivateKey = x\n");
    const lines = qr.trim().split("\n");
    // A version-2+ QR code in half-block characters: square-ish, and made of block glyphs only.
    expect(lines.length).toBeGreaterThan(10);
    expect(qr).toMatch(/[█▀▄]/);
    expect(await renderQr("other text")).not.toBe(qr);
  });
});

describe("npm run device: a user's mistake is one line, never a stack trace", () => {
  /** A runner whose `pulumi` prints `stdout`, or fails as the real runner does. */
  function runner(result: { stdout?: string; fail?: { code: number; stderr: string } }): Runner {
    return {
      run: (command, args) =>
        result.fail
          ? Promise.reject(new CommandError(`${command} ${args.join(" ")}`, { stdout: "", ...result.fail }))
          : Promise.resolve({ code: 0, stdout: result.stdout ?? "", stderr: "" }),
    };
  }
  const USAGE =
    "use 'npm run device -- laptop [--qr] [--out laptop.conf] [--port 443 | --tcp] [--stack STACK]', or '--list'.";

  it("says to install the Pulumi CLI when there is none", async () => {
    // What lib/runner.ts reports when execFile cannot find the program.
    const missing = runner({ fail: { code: 1, stderr: "spawn pulumi ENOENT" } });
    await expect(main(["laptop"], missing)).rejects.toThrow(
      new DeviceError(
        "the Pulumi CLI ('pulumi') is not installed or not on PATH: install it (https://www.pulumi.com/docs/install/), run 'pulumi login', then run this again.",
      ),
    );
  });

  it("passes on the CLI's own first line when it fails, with what to do", async () => {
    const noStack = runner({ fail: { code: 255, stderr: "error: no stack selected\nmore detail\n" } });
    await expect(main(["laptop"], noStack)).rejects.toThrow(
      new DeviceError(
        "'pulumi stack output clientConfigs' failed (error: no stack selected): pick the stack with '--stack NAME' (see 'pulumi stack ls'), and run 'pulumi up' on it first.",
      ),
    );
  });

  it("names an unknown option or a missing name, with the usage", async () => {
    const ok = runner({ stdout: outputs });
    await expect(main(["laptop", "--qrr"], ok)).rejects.toThrow(
      new DeviceError(`Unknown option '--qrr': ${USAGE}`),
    );
    await expect(main([], ok)).rejects.toThrow(
      new DeviceError(`name a device: ${USAGE.slice("use ".length)}`),
    );
  });

  it("writes --out as 0600, and names an --out it cannot write", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "device-"));
    const out = path.join(dir, "laptop.conf");
    await main(["laptop", "--out", out], runner({ stdout: outputs }));
    expect(readFileSync(out, "utf8")).toBe("[Interface]\nAddress = 10.77.0.9/32\n");
    expect(statSync(out).mode & 0o777).toBe(0o600);
    const bad = path.join(out, "laptop.conf"); // under a file, not a directory
    await expect(main(["laptop", "--out", bad], runner({ stdout: outputs }))).rejects.toThrow(
      new DeviceError(
        `'--out' (${JSON.stringify(bad)}) cannot be written (EEXIST): name a file in a directory that exists and you can write to.`,
      ),
    );
  });

  it("without pulumi on PATH, the script prints that one line and exits 1", async () => {
    const script = path.join(__dirname, "..", "scripts", "device.ts");
    // The child inherits this process's environment: node is named by its full path, pulumi cannot be found.
    const saved = process.env.PATH;
    process.env.PATH = "/nonexistent";
    try {
      const run = await realRunner(() => undefined).run(
        process.execPath,
        ["-r", "ts-node/register/transpile-only", script, "laptop"],
        { allowFailure: true },
      );
      expect([run.code, run.stdout, run.stderr]).toEqual([
        1,
        "",
        "the Pulumi CLI ('pulumi') is not installed or not on PATH: install it (https://www.pulumi.com/docs/install/), run 'pulumi login', then run this again.\n",
      ]);
    } finally {
      process.env.PATH = saved;
    }
  });
});

describe("npm run device -- NAME --port PORT", () => {
  const config = [
    "[Interface]",
    "PrivateKey = kkk",
    "Address = 10.77.0.9/32, fd7a:c10d:9a1::9/128",
    "",
    "[Peer]",
    "Endpoint = vpn.example.com:51820",
    "PersistentKeepalive = 25",
    "",
  ].join("\n");
  /** A `pulumi` that prints each stack output, and records what it was asked. */
  function stack(ports: unknown) {
    const asked: string[][] = [];
    const runner: Runner = {
      run: (_command, args) => {
        asked.push([...args]);
        const stdout =
          args[2] === "wireguardPorts" ? JSON.stringify(ports) : JSON.stringify({ laptop: config });
        return Promise.resolve({ code: 0, stdout, stderr: "" });
      },
    };
    return { runner, asked };
  }
  async function printed(argv: string[], runner: Runner): Promise<string> {
    let out = "";
    const spy = jest.spyOn(process.stdout, "write").mockImplementation((t) => {
      out += String(t);
      return true;
    });
    try {
      await main(argv, runner);
    } finally {
      spy.mockRestore();
    }
    return out;
  }

  it("prints the same config with the endpoint's port replaced, and a QR code of that config", async () => {
    const { runner, asked } = stack([51820, 443, 53]);
    const text = await printed(["laptop", "--port", "443"], runner);
    expect(text).toBe(config.replace("vpn.example.com:51820", "vpn.example.com:443"));
    // The ports list is not secret: read without --show-secrets.
    expect(asked[1]).toEqual(["stack", "output", "wireguardPorts", "--json"]);
    expect(await printed(["laptop", "--port", "53", "--qr"], stack([51820, 443, 53]).runner)).toBe(
      await renderQr(config.replace(":51820", ":53")),
    );
  });

  it("refuses a port the hub does not answer on, naming the ones it does", async () => {
    await expect(main(["laptop", "--port", "8443"], stack([51820, 443, 53]).runner)).rejects.toThrow(
      new DeviceError(
        "'--port' (8443) is not a port the hub's WireGuard answers on: use one of 51820, 443, 53 (add it to 'cloudpal:wireguardExtraPorts' and run 'pulumi up' to open another).",
      ),
    );
    await expect(main(["laptop", "--port", "443"], stack([51820]).runner)).rejects.toThrow(
      /use one of 51820 \(/,
    );
    await expect(main(["laptop", "--port", "https"], stack([51820]).runner)).rejects.toThrow(
      new DeviceError(`'--port' ("https") is not a port: give a number from 1 to 65535, e.g. '--port 443'.`),
    );
    // A stack last updated before the output existed.
    expect(() => parsePorts("null")).toThrow(/run 'pulumi up' with this version of CloudPal first/);
  });
});

describe("npm run device -- NAME --tcp", () => {
  const KEY = "ss://Y2hhY2hhMjAtaWV0Zi1wb2x5MTMwNTpwdw@vpn.example.com:443#CloudPal%20laptop";
  function stack(tcpKeys: unknown) {
    const asked: string[][] = [];
    const runner: Runner = {
      run: (_command, args) => {
        asked.push([...args]);
        const stdout =
          args[2] === "tcpAccessKeys" ? JSON.stringify(tcpKeys) : JSON.stringify({ laptop: "[Interface]\n" });
        return Promise.resolve({ code: 0, stdout, stderr: "" });
      },
    };
    return { runner, asked };
  }
  async function printed(argv: string[], runner: Runner): Promise<string> {
    let out = "";
    const spy = jest.spyOn(process.stdout, "write").mockImplementation((t) => {
      out += String(t);
      return true;
    });
    try {
      await main(argv, runner);
    } finally {
      spy.mockRestore();
    }
    return out;
  }

  it("prints the device's ss:// key, read as a secret output, or its QR code without a newline", async () => {
    const { runner, asked } = stack({ laptop: KEY });
    expect(await printed(["laptop", "--tcp"], runner)).toBe(`${KEY}\n`);
    expect(asked[1]).toEqual(["stack", "output", "tcpAccessKeys", "--json", "--show-secrets"]);
    expect(await printed(["laptop", "--tcp", "--qr"], stack({ laptop: KEY }).runner)).toBe(
      await renderQr(KEY),
    );
  });

  it("says why there is no key, and refuses --port with --tcp", async () => {
    await expect(main(["laptop", "--tcp"], stack({}).runner)).rejects.toThrow(
      new DeviceError(
        "device \"laptop\" has no TCP-path key in this stack: the path is off ('cloudpal:tcpPath' is false) or 'pulumi up' has not run since it was turned on; set 'cloudpal:tcpPath' to true and run 'pulumi up'.",
      ),
    );
    await expect(main(["laptop", "--tcp", "--port", "443"], stack({ laptop: KEY }).runner)).rejects.toThrow(
      /'--port' and '--tcp' do not go together/,
    );
  });
});
