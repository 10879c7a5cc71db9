/**
 * The engine model on small hand-made stacks: each rule kind (replace-forcing inputs, protect, retainOnDelete,
 * unique names, one-at-a-time attachments, delete-before-replace) makes the simulation fail exactly where a
 * real `pulumi up` would, and pass where it would not.
 */
import { type ResourceRecord, simulate, type Snapshot, urnOf } from "../simulate/engine";
import { RULES, ruleFor } from "../simulate/rules";
import { KNOWN_TYPES } from "../scripts/mocks";

const LINODE = "linode:index/instance:Instance";
const VULTR = "vultr:index/instance:Instance";
const VULTR_IP = "vultr:index/reservedIp:ReservedIp";
const DO_IP = "digitalocean:index/reservedIp:ReservedIp";

function record(
  type: string,
  name: string,
  inputs: Record<string, unknown>,
  extra: Partial<ResourceRecord> = {},
): ResourceRecord {
  return {
    urn: urnOf(type, name),
    type,
    name,
    id: `${name}-1`,
    inputs,
    protect: false,
    retainOnDelete: false,
    deleteBeforeReplace: undefined,
    replaceOnChanges: [],
    dependsOn: [],
    ...extra,
  };
}
const snap = (...resources: ResourceRecord[]): Snapshot => ({ resources });

it("has a rule, with its upstream source, for every resource type the program may register", () => {
  for (const type of KNOWN_TYPES) expect(ruleFor(type).source.length).toBeGreaterThan(10);
  expect(new Set(RULES.map((r) => r.type)).size).toBe(RULES.length);
  expect(() => ruleFor("aws:s3/bucket:Bucket")).toThrow("no provider rule for aws:s3/bucket:Bucket");
});

it("updates in place when no replace-forcing input changed, and replaces when one did", () => {
  const before = snap(record(LINODE, "vm", { label: "hub", type: "g6-nanode-1", image: "linode/debian12" }));
  const resize = simulate(
    before,
    snap(record(LINODE, "vm", { label: "hub", type: "g6-standard-1", image: "linode/debian12" })),
  );
  expect(resize.steps.map((s) => s.kind)).toEqual(["update"]);
  const reimage = simulate(
    before,
    snap(record(LINODE, "vm", { label: "hub", type: "g6-nanode-1", image: "linode/ubuntu24.04" })),
  );
  expect(reimage.steps.map((s) => s.kind)).toEqual(["replace-create", "delete-replaced"]);
  expect(reimage.steps[0].why).toContain("image changed, which forces a new resource");
});

it("stops on a protected resource that must be replaced or deleted, and retains what says retainOnDelete", () => {
  const ip = (region: string, extra: Partial<ResourceRecord>) => record(DO_IP, "ip", { region }, extra);
  const replaced = simulate(snap(ip("fra1", { protect: true })), snap(ip("ams3", { protect: true })));
  expect(replaced.violations.map((v) => v.message)).toEqual([
    expect.stringContaining("unable to replace resource"),
  ]);
  const deleted = simulate(snap(ip("fra1", { protect: true })), snap());
  expect(deleted.violations.map((v) => v.message)).toEqual([expect.stringContaining("is protected")]);
  const retained = simulate(snap(ip("fra1", { retainOnDelete: true })), snap());
  expect(retained.violations).toEqual([]);
  expect(retained.steps.map((s) => s.kind)).toEqual(["retain"]);
});

it("fails a create-before-delete replacement that reuses a unique label, and passes it delete-before-replace", () => {
  const vm = (image: string, extra: Partial<ResourceRecord> = {}) =>
    record(LINODE, "vm", { label: "hub", image }, { ...extra, id: image });
  const clash = simulate(snap(vm("linode/debian12")), snap(vm("linode/ubuntu24.04")));
  expect(clash.violations.map((v) => v.message)).toEqual([
    expect.stringContaining("Label must be unique among your Linodes"),
  ]);
  const dbr = simulate(
    snap(vm("linode/debian12")),
    snap(vm("linode/ubuntu24.04", { deleteBeforeReplace: true })),
  );
  expect(dbr.violations).toEqual([]);
  expect(dbr.steps.map((s) => s.kind)).toEqual(["delete-replaced", "replace-create"]);
});

it("fails a new instance that takes a reserved IP still attached to the old one", () => {
  const ip = record(VULTR_IP, "ip", { region: "fra" }, { id: "ip-1" });
  const vm = (osId: number, extra: Partial<ResourceRecord> = {}) =>
    record(VULTR, "vm", { osId, reservedIpId: "ip-1" }, { id: `vm-${osId}`, dependsOn: [ip.urn], ...extra });
  const clash = simulate(snap(ip, vm(2136)), snap(ip, vm(2284)));
  expect(clash.violations.map((v) => v.message)).toEqual([
    expect.stringContaining("Floating IPv4 address is already attached"),
  ]);
  expect(simulate(snap(ip, vm(2136)), snap(ip, vm(2284, { deleteBeforeReplace: true }))).violations).toEqual(
    [],
  );
});

it("deletes a delete-before-replace resource's replaced dependents first, and removed resources last", () => {
  const vm = (image: string) =>
    record(LINODE, "vm", { label: "hub", image }, { id: image, deleteBeforeReplace: true });
  const dev = (linodeId: string) =>
    record(
      "linode:index/firewallDevice:FirewallDevice",
      "fwd",
      { entityId: linodeId, firewallId: 7 },
      {
        id: `fwd-${linodeId}`,
        dependsOn: [urnOf(LINODE, "vm")],
        inputDeps: { entityId: [urnOf(LINODE, "vm")] },
      },
    );
  const gone = record(VULTR_IP, "old-ip", { region: "fra" });
  const plan = simulate(snap(vm("a"), dev("a"), gone), snap(vm("b"), dev("b")));
  expect(plan.steps.map((s) => `${s.kind} ${s.urn.split("::")[1]}`)).toEqual([
    "delete-replaced fwd",
    "delete-replaced vm",
    "replace-create vm",
    "replace-create fwd",
    "delete old-ip",
  ]);
  expect(plan.violations).toEqual([]);
});

it("keeps a dependent up that takes the replaced resource only in an in-place input, and fails deleting what it holds", () => {
  const DROPLET = "digitalocean:index/droplet:Droplet";
  const VOLUME = "digitalocean:index/volume:Volume";
  const volume = (region: string, extra: Partial<ResourceRecord> = {}) =>
    record(VOLUME, "vol", { name: "state-hub", region }, { id: `vol-${region}`, ...extra });
  const droplet = (region: string, volumeId: string) =>
    record(
      DROPLET,
      "vm",
      { name: "hub", region, volumeIds: [volumeId] },
      {
        id: `vm-${region}`,
        dependsOn: [urnOf(VOLUME, "vol")],
        inputDeps: { volumeIds: [urnOf(VOLUME, "vol")] },
      },
    );
  // The provider asks for delete-first (explicit `name`): the old volume goes first, still attached.
  const bridgeDefault = simulate(
    snap(volume("fra1", { deleteBeforeReplace: undefined }), droplet("fra1", "vol-fra1")),
    snap(volume("ams3", { deleteBeforeReplace: undefined }), droplet("ams3", "vol-ams3")),
  );
  expect(bridgeDefault.steps[0]).toMatchObject({ kind: "delete-replaced", urn: urnOf(VOLUME, "vol") });
  expect(bridgeDefault.violations.map((v) => v.message)).toEqual([
    expect.stringContaining("409 A volume that's attached to a Droplet cannot be deleted"),
  ]);
  // The program's explicit deleteBeforeReplace: false overrides the provider: new volume first, old one last.
  const createFirst = simulate(
    snap(volume("fra1", { deleteBeforeReplace: false }), droplet("fra1", "vol-fra1")),
    snap(volume("ams3", { deleteBeforeReplace: false }), droplet("ams3", "vol-ams3")),
  );
  expect(createFirst.violations).toEqual([]);
  expect(createFirst.steps.at(-1)).toMatchObject({ kind: "delete-replaced", urn: urnOf(VOLUME, "vol") });
});
