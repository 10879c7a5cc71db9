/**
 * The runbook's scenarios, simulated step by step against what the providers enforce (simulate/rules.ts,
 * each rule citing its upstream source), for every provider: a first `pulumi up`, adding and removing a
 * device, a rebuild with `--replace`, a region move, a provider switch, a hub key rotation and an SSH key
 * change. Every step must be one the engine and the provider accept, nothing protected may be replaced or
 * deleted, and every device keeps its keys and addresses.
 */
import { CATALOG, type CloudProvider } from "../components/catalog";
import type { Plan } from "../simulate/engine";
import { capture, type Capture } from "../simulate/capture";
import { loadConfig } from "../components/config";
import {
  firstUp,
  HUB_KEY_URN,
  machineUrn,
  type Outcome,
  type RawConfig,
  runChange,
} from "../simulate/scenarios";
import { minimalConfig, sshPublicKey, wireguardPublicKey } from "./helpers/fixtures";

jest.setTimeout(120_000);

const PROVIDERS = ["digitalocean", "linode", "vultr", "existing"] as const;
type Provider = (typeof PROVIDERS)[number];

function stack(provider: Provider, extra: RawConfig = {}): RawConfig {
  return minimalConfig(provider, {
    peers: [{ name: "laptop" }, { name: "phone", publicKey: wireguardPublicKey("phone") }],
    ...extra,
  });
}

/** Another region of the same cloud than the catalog default. */
function otherRegion(provider: CloudProvider): string {
  const c = CATALOG[provider];
  return c.regions.find((r) => r !== c.defaultRegion)!;
}

const kinds = (plan: Plan, urn: string) => plan.steps.filter((s) => s.urn === urn).map((s) => s.kind);
const byType = (c: Capture, type: string) => c.snapshot.resources.filter((r) => r.type === type);

function expectSafe(outcome: Outcome): void {
  // One message per broken promise: the test output says exactly what a real `pulumi up` would hit.
  expect(outcome.problems).toEqual([]);
}

const bases = new Map<Provider, Capture>();
async function base(provider: Provider): Promise<Capture> {
  let c = bases.get(provider);
  if (!c) {
    c = await capture(loadConfig(stack(provider)));
    bases.set(provider, c);
  }
  return c;
}

describe.each(PROVIDERS)("%s", (provider) => {
  it("a first pulumi up creates everything, and no step clashes", async () => {
    const outcome = await firstUp(stack(provider));
    expectSafe(outcome);
    expect(outcome.plan.steps.every((s) => s.kind === "create")).toBe(true);
    expect(outcome.plan.steps.length).toBe(outcome.after.snapshot.resources.length);
  });

  it("adding a device creates its keys, re-sends the state and touches nothing else", async () => {
    const from = await base(provider);
    const raw = stack(provider);
    const next = { ...raw, peers: [...(raw.peers as object[]), { name: "tablet" }] };
    const outcome = await runChange(raw, next, undefined, { from });
    expectSafe(outcome);
    const touched = [...new Set(outcome.plan.steps.map((s) => s.urn))].sort();
    expect(touched).toEqual(
      [
        "random:index/randomBytes:RandomBytes::hub-peer-tablet-key",
        "random:index/randomBytes:RandomBytes::hub-peer-tablet-psk",
        "random:index/randomBytes:RandomBytes::hub-peer-tablet-tcp",
        // Only the step that hands the agent its state runs again (its trigger is the state's hash).
        "command:remote:Command::hub-state",
      ].sort(),
    );
    for (const urn of machineUrn(from.snapshot)) expect(kinds(outcome.plan, urn)).toEqual([]);
    expect(Object.keys(outcome.after.outputs.clientConfigs).sort()).toEqual(["laptop", "phone", "tablet"]);
  });

  it("removing a device deletes only its keys; the others keep theirs", async () => {
    const from = await base(provider);
    const raw = stack(provider);
    const next = { ...raw, peers: [{ name: "laptop" }] };
    const outcome = await runChange(raw, next, undefined, { from });
    expectSafe(outcome);
    expect(outcome.plan.removed.filter((u) => u.includes("RandomBytes")).sort()).toEqual([
      "random:index/randomBytes:RandomBytes::hub-peer-phone-psk",
      "random:index/randomBytes:RandomBytes::hub-peer-phone-tcp",
    ]);
    for (const urn of machineUrn(from.snapshot)) expect(kinds(outcome.plan, urn)).toEqual([]);
  });

  it("rotating the hub key changes only the hub key; devices keep theirs and their addresses", async () => {
    const from = await base(provider);
    const raw = stack(provider);
    const outcome = await runChange(raw, raw, () => [HUB_KEY_URN], { from, rotatesHubKey: true });
    expectSafe(outcome);
    expect(kinds(outcome.plan, HUB_KEY_URN)).toContain("replace-create");
    expect(outcome.after.outputs.hubPublicKey).not.toBe(from.outputs.hubPublicKey);
    for (const urn of machineUrn(from.snapshot)) expect(kinds(outcome.plan, urn)).toEqual([]);
  });

  it("changing the operator's SSH key is accepted by every provider, and devices keep their configs", async () => {
    const from = await base(provider);
    const raw = stack(provider);
    const next = { ...raw, sshPublicKeys: [sshPublicKey("operator-2")] };
    const outcome = await runChange(raw, next, undefined, { from });
    expectSafe(outcome);
  });
});

describe.each(["digitalocean", "linode", "vultr"] as const)("%s (a cloud)", (provider) => {
  it("a rebuild with --replace builds a new machine on the same addresses, and devices keep their configs", async () => {
    const from = await base(provider);
    const raw = stack(provider);
    const outcome = await runChange(raw, raw, machineUrn, { from });
    expectSafe(outcome);
    const [machine] = machineUrn(from.snapshot);
    expect(kinds(outcome.plan, machine)).toEqual(expect.arrayContaining(["replace-create"]));
    // The endpoint is the reserved address (or the hostname): a rebuild never changes what devices dial,
    // except on Linode without IP reservation, where the README asks for a hostname.
    if (provider !== "linode") expect(outcome.after.outputs.endpoint).toBe(from.outputs.endpoint);
  });

  it("a region move is one pulumi up: a new machine and new addresses, the old addresses kept in the account", async () => {
    const from = await base(provider);
    const raw = stack(provider);
    const next = { ...raw, region: otherRegion(provider) };
    const outcome = await runChange(raw, next, undefined, { from });
    expectSafe(outcome);
    const [machine] = machineUrn(from.snapshot);
    expect(kinds(outcome.plan, machine)).toEqual(expect.arrayContaining(["replace-create"]));
    // Nothing that holds an address is destroyed by a move: it is retained, or it stays.
    const addresses = from.snapshot.resources.filter((r) => /reservedIp(v6)?:|networkingIp:/.test(r.type));
    for (const r of addresses) expect(kinds(outcome.plan, r.urn)).not.toContain("delete");
  });

  it.each(PROVIDERS.filter((p) => p !== provider))(
    "a switch to %s builds the new hub first, then removes the old one",
    async (to) => {
      const from = await base(provider);
      const raw = stack(provider);
      const outcome = await runChange(raw, stack(to), undefined, { from });
      expectSafe(outcome);
      const firstDelete = outcome.plan.steps.findIndex((s) => s.kind === "delete" || s.kind === "retain");
      const lastCreate = outcome.plan.steps.map((s) => s.kind).lastIndexOf("create");
      expect(firstDelete).toBeGreaterThan(lastCreate);
      expect(byType(outcome.after, "random:index/randomBytes:RandomBytes").map((r) => r.id)).toEqual(
        expect.arrayContaining(
          byType(from, "random:index/randomBytes:RandomBytes")
            .filter((r) => r.name.startsWith("hub-peer-") || r.name === "hub-wireguard-key")
            .map((r) => r.id),
        ),
      );
    },
  );
});

describe("existing", () => {
  it("a switch to a cloud builds the cloud hub; the existing server is left as it is", async () => {
    const from = await base("existing");
    const outcome = await runChange(stack("existing"), stack("digitalocean"), undefined, { from });
    expectSafe(outcome);
  });
});
