/**
 * `npm run plan`, in-process: the tree names every resource with its key properties, secrets show as
 * [secret], and the hub's private key (known here because the mocks derive random bytes from the resource
 * name) appears nowhere in the text.
 */
import { createHash } from "crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import * as path from "path";
import { privateKeyFromBytes } from "../model/keys";

jest.setTimeout(60_000);

type PlanModule = typeof import("../scripts/plan");

/** Each plan loads the program, so each gets a fresh module registry. */
function planIn(stack: string, dir?: string): Promise<{ code: number; text: string }> {
  let result: Promise<{ code: number; text: string }> | undefined;
  jest.isolateModules(() => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- a fresh copy per plan
    result = (require("../scripts/plan") as PlanModule).plan(stack, dir);
  });
  if (!result) throw new Error("isolateModules did not run");
  return result;
}

it("prints the DigitalOcean example as a tree with key properties and masked secrets", async () => {
  const { code, text } = await planIn("example-digitalocean");
  expect(code).toBe(0);
  expect(text).toContain("cloudpal:index:Hub  hub\n");
  for (const line of [
    "├─ digitalocean:index/droplet:Droplet  hub-droplet",
    '│       size: "s-1vcpu-512mb-10gb"',
    "│       monitoring: false",
    // A secret since it carries the hub's SSH host key (README "Delivery trust").
    "│       userData: [secret]",
    "├─ digitalocean:index/firewall:Firewall  hub-firewall",
    '│         - {"portRange":"22","protocol":"tcp","sourceAddresses":["203.0.113.7/32"]}',
    "└─ command:remote:Command  hub-state",
    "        stdin: [secret]",
    "  clientConfigs: [secret] (laptop, phone, nas)",
  ]) {
    expect(text).toContain(line);
  }
  // +2 for delivery trust and state size: the SSH host key seed and the agent bundle's CopyToRemote.
  expect(text).toMatch(/\n24 resources\n/);
  // The mocks make the hub key from sha256("random:hub-wireguard-key"): it must not leak into the plan.
  const hubPrivateKey = privateKeyFromBytes(createHash("sha256").update("random:hub-wireguard-key").digest());
  expect(text).not.toContain(hubPrivateKey);
  expect(text).not.toMatch(/PrivateKey = |PresharedKey = |PRIVATE KEY-----/);
});

it("prints every problem of a bad stack and exits 1, registering nothing", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "cloudpal-plan-"));
  try {
    const example = readFileSync(path.join(__dirname, "..", "stacks", "Pulumi.example-linode.yaml"), "utf8");
    writeFileSync(
      path.join(dir, "Pulumi.bad.yaml"),
      example.replace("eu-central", "eu-centre").replace("- 203.0.113.7/32", "- 0.0.0.0/0"),
    );
    const { code, text } = await planIn("bad", dir);
    expect(code).toBe(1);
    expect(text.split("\n")).toEqual([
      "Stack bad: nothing would be created.",
      "The cloudpal stack config has 2 problems:",
      expect.stringMatching(/^ {2}- 'region' \("eu-centre"\) is not a Linode \(Akamai\) region: use one of /),
      expect.stringMatching(
        /^ {2}- 'sshAllowedCidrs\[0\]' \("0\.0\.0\.0\/0"\) opens SSH to the whole internet/,
      ),
      "",
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it("names the stacks it knows when asked for one that does not exist", async () => {
  await expect(planIn("no-such-stack")).rejects.toThrow(
    "'--stack' (\"no-such-stack\") has no stack file stacks/Pulumi.no-such-stack.yaml: use one of example-digitalocean, example-existing, example-linode, example-vultr.",
  );
});

describe("the plan command line", () => {
  function load(): PlanModule {
    let m: PlanModule | undefined;
    jest.isolateModules(() => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- a fresh copy
      m = require("../scripts/plan") as PlanModule;
    });
    return m!;
  }

  it("takes the stack as --stack, as a bare name (npm run plan NAME), or from npm's own --stack", () => {
    const { parseCli } = load();
    expect(parseCli(["--stack", "home"]).stack).toBe("home");
    expect(parseCli(["example-linode"]).stack).toBe("example-linode");
    const saved = process.env.npm_config_stack;
    process.env.npm_config_stack = "from-npm";
    try {
      expect(parseCli([]).stack).toBe("from-npm");
    } finally {
      if (saved === undefined) delete process.env.npm_config_stack;
      else process.env.npm_config_stack = saved;
    }
    expect(parseCli(["--change", "region=ams3", "--replace", "hub-droplet"])).toMatchObject({
      change: ["region=ams3"],
      replace: ["hub-droplet"],
    });
    expect(() => parseCli(["--bogus"])).toThrow(/Unknown option '--bogus'[\s\S]*usage: npm run plan/);
    expect(() => parseCli(["a", "b"])).toThrow(/name one stack/);
  });

  it("names the file and the line of a YAML mistake, in one sentence", () => {
    const { readStackFile } = load();
    const dir = mkdtempSync(path.join(tmpdir(), "cloudpal-yaml-"));
    try {
      writeFileSync(
        path.join(dir, "Pulumi.bad.yaml"),
        "config:\n  cloudpal:provider: digitalocean\n   cloudpal:region: [fra1\n",
      );
      expect(() => readStackFile("bad", dir)).toThrow(
        /Pulumi\.bad\.yaml:2:\d+: not valid YAML: [^\n]*[^:]\. Fix that line, then run the plan again\.$/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

it("shows each group's site policy among the outputs (README 'Per-group site policies')", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "cloudpal-plan-"));
  try {
    const example = readFileSync(
      path.join(__dirname, "..", "stacks", "Pulumi.example-digitalocean.yaml"),
      "utf8",
    );
    const kids = [
      "    kids:",
      "      reaches: [kids]",
      "      internet: true",
      "      sites: allow-list",
      "      allow: [school.example, wikipedia.org]",
      "      blocklists: [https://lists.example.org/adult.txt]",
    ].join("\n");
    expect(example).toContain("  cloudpal:groups:\n");
    writeFileSync(
      path.join(dir, "Pulumi.kids.yaml"),
      example.replace("  cloudpal:groups:\n", `  cloudpal:groups:\n${kids}\n`),
    );
    const { code, text } = await planIn("kids", dir);
    expect(code).toBe(0);
    expect(text).toContain(
      '  groupPolicies: {"kids":{"sites":"allow-list","allow":["school.example","wikipedia.org"],"deny":[],"blocklists":["https://lists.example.org/adult.txt"]}}',
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

describe("npm run plan -- --change", () => {
  it("changes a group's site policy without touching the machine: it travels in the hub state only", async () => {
    let m: typeof import("../simulate/report") | undefined;
    jest.isolateModules(() => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- a fresh copy
      m = require("../simulate/report") as typeof import("../simulate/report");
    });
    const { readStackConfig } = await import("../components/config");
    const { readStackFile } = await import("../scripts/plan");
    const raw = readStackConfig(readStackFile("example-digitalocean").config);
    const groups = JSON.stringify({
      family: {
        reaches: ["family", "servers"],
        internet: true,
        allow: ["school.example"],
        deny: ["games.example"],
        blocklists: ["https://lists.example.org/adult.txt"],
        sites: "allow-list",
      },
      servers: { reaches: [], internet: false, deny: ["games.example"] },
    });
    const { code, text } = await m!.planChange("example-digitalocean", raw, [`groups=${groups}`], []);
    expect(text).toContain("No step clashes");
    expect(code).toBe(0);
    // The one step replaced is the state delivery; the droplet, its user-data and addresses stay.
    expect(text).toContain(
      "Replaced (a new one is made):\n  command:remote:Command  hub-state\n      triggers changed, which forces a new resource",
    );
    expect(text).toContain("\n\nKept as they are: 23 resources.");
    expect(text).not.toContain("hub-droplet");
  });

  it("shows a region move: the machine replaced, new addresses, the old ones retained, devices unharmed", async () => {
    let m: typeof import("../simulate/report") | undefined;
    jest.isolateModules(() => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- a fresh copy
      m = require("../simulate/report") as typeof import("../simulate/report");
    });
    const { readStackConfig } = await import("../components/config");
    const { readStackFile } = await import("../scripts/plan");
    const raw = readStackConfig(readStackFile("example-digitalocean").config);
    const { code, text } = await m!.planChange("example-digitalocean", raw, ["region=ams3"], []);
    expect(code).toBe(0);
    expect(text).toContain(
      "digitalocean:index/droplet:Droplet  hub-droplet\n      region changed, which forces a new resource",
    );
    expect(text).toContain("digitalocean:index/reservedIp:ReservedIp  hub-ipv4-ams3");
    expect(text).toMatch(/retainOnDelete[\s\S]*hub-ipv4-fra1/);
    expect(text).toContain("keep their keys and addresses. No step clashes with a provider rule.");
    await expect(m!.planChange("example-digitalocean", raw, ["region"], [])).rejects.toThrow(
      `'--change' ("region") is not KEY=VALUE: write e.g. --change region=ams3.`,
    );
    await expect(m!.planChange("example-digitalocean", raw, [], ["hub-nothing"])).rejects.toThrow(
      /'--replace' \("hub-nothing"\) names no resource of this stack: use one of .*hub-droplet/,
    );
  });
});
