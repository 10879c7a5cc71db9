/**
 * What each cloud refuses, checked in the config before anything is registered (components/hosts/limits.ts):
 * sizes of another cloud, Linode labels, IPv6-only Vultr plans, and the Linode-only reservation flag.
 */
import { CATALOG, type CloudProvider } from "../components/catalog";
import { loadConfig } from "../components/config";
import { LINODE_HOSTNAME_MAX } from "../components/hosts/limits";
import { minimalConfig } from "./helpers/fixtures";
import { configProblems as problems } from "./helpers/config-problems";

const CLOUDS: CloudProvider[] = ["digitalocean", "linode", "vultr"];

describe.each(CLOUDS)("%s sizes", (provider) => {
  it("accepts the default and every small size the catalog names", () => {
    for (const size of [CATALOG[provider].defaultSize, ...CATALOG[provider].smallSizes]) {
      expect([size, problems(minimalConfig(provider, { size }))]).toEqual([size, []]);
    }
  });

  it.each(CLOUDS.filter((p) => p !== provider))(
    "refuses a %s size, naming the field, the value and a fix",
    (other) => {
      const size = CATALOG[other].defaultSize;
      expect(problems(minimalConfig(provider, { size }))).toEqual([
        `'size' ("${size}") is not a ${CATALOG[provider].title} size: use one of ${CATALOG[
          provider
        ].smallSizes
          .map((s) => `'${s}'`)
          .join(
            ", ",
          )} (the default is '${CATALOG[provider].defaultSize}'), or another from '${CATALOG[provider].sizeCommand}'.`,
      ]);
    },
  );
});

it("accepts larger sizes of the right family (the provider refuses what it does not sell)", () => {
  expect(problems(minimalConfig("digitalocean", { size: "s-2vcpu-4gb" }))).toEqual([]);
  expect(problems(minimalConfig("digitalocean", { size: "c-2" }))).toEqual([]);
  expect(problems(minimalConfig("linode", { size: "g6-dedicated-4" }))).toEqual([]);
  expect(problems(minimalConfig("linode", { size: "g1-gpu-rtx6000-1" }))).toEqual([]);
  expect(problems(minimalConfig("vultr", { size: "vhp-2c-4gb-amd" }))).toEqual([]);
});

it("refuses an IPv6-only Vultr plan: the hub needs a reserved IPv4", () => {
  const [problem] = problems(minimalConfig("vultr", { size: "vc2-1c-0.5gb-v6" }));
  expect(problem).toMatch(/^'size' \("vc2-1c-0\.5gb-v6"\) is a Vultr plan without IPv4/);
});

describe("Linode labels", () => {
  it(`accepts a hostname of 3 to ${LINODE_HOSTNAME_MAX} characters (the firewall label adds '-fw', 32 at most)`, () => {
    expect(problems(minimalConfig("linode", { hostname: "hub" }))).toEqual([]);
    expect(problems(minimalConfig("linode", { hostname: "h".repeat(LINODE_HOSTNAME_MAX) }))).toEqual([]);
  });

  it.each([
    ["hb", "3 to 29 characters long"],
    ["h".repeat(30), "3 to 29 characters long"],
    ["1hub", "starting with a letter"],
    ["my--hub", "without '--'"],
  ])("refuses %j (%s)", (hostname, rule) => {
    const found = problems(minimalConfig("linode", { hostname }));
    expect(found).toHaveLength(1);
    expect(found[0]).toContain(`'hostname' (${JSON.stringify(hostname)}) cannot be a Linode label`);
    expect(found[0]).toContain(rule);
  });

  it("leaves the same hostnames alone on the other clouds", () => {
    for (const provider of ["digitalocean", "vultr"] as const) {
      expect(problems(minimalConfig(provider, { hostname: "h".repeat(30) }))).toEqual([]);
      expect(problems(minimalConfig(provider, { hostname: "hb" }))).toEqual([]);
    }
  });
});

describe("linodeReservedIpv4", () => {
  it("turns the reservation on for Linode only", () => {
    const host = loadConfig(minimalConfig("linode", { linodeReservedIpv4: true })).host;
    expect(host).toMatchObject({ provider: "linode", reservedIpv4: true });
    expect(loadConfig(minimalConfig("linode")).host).not.toHaveProperty("reservedIpv4");
    // false is what the Pulumi CLI passes for every stack (Pulumi.yaml default): never a mistake.
    expect(problems(minimalConfig("vultr", { linodeReservedIpv4: false }))).toEqual([]);
  });

  it("refuses true on another cloud", () => {
    expect(problems(minimalConfig("digitalocean", { linodeReservedIpv4: true }))).toEqual([
      `'linodeReservedIpv4' (true) does not apply to provider "digitalocean": remove it (this cloud's hub always has a reserved IPv4).`,
    ]);
  });
});

it("keeps Linode to regions with the Metadata service, the default among them", () => {
  // The catalog lists only regions whose GET /v4/regions capabilities include "Metadata" (catalog.ts).
  expect(CATALOG.linode.regions).toContain(CATALOG.linode.defaultRegion);
  const [problem] = problems(minimalConfig("linode", { region: "xx-nowhere" }));
  expect(problem).toContain(`'region' ("xx-nowhere")`);
  expect(problem).toContain(CATALOG.linode.regions.join(", "));
});

describe("backups of the hub's keys", () => {
  it("refuses Linode backups (not encrypted, and the keys live on the instance disk)", () => {
    expect(problems(minimalConfig("linode", { backups: true }))).toEqual([
      `'backups' (true) is refused on Linode: Linode backups are not encrypted, and they would copy the hub's keys off its encrypted disk; remove it (the stack holds everything needed to rebuild the hub).`,
    ]);
    expect(problems(minimalConfig("linode", { backups: false }))).toEqual([]);
  });

  it.each(["digitalocean", "vultr"])(
    "allows %s backups: the keys live on a volume those backups leave out",
    (p) => {
      expect(problems(minimalConfig(p, { backups: true }))).toEqual([]);
    },
  );
});
