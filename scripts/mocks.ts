/**
 * Deterministic Pulumi mocks for `npm run plan` and the program tests. They THROW on any resource type not in
 * the list, so a new resource cannot slip into the program unnoticed, and they record every registration
 * with secrets unwrapped so tests can assert on real values.
 */
import { createHash } from "crypto";
import * as pulumi from "@pulumi/pulumi";

/** Every resource type the CloudPal program may register. */
export const KNOWN_TYPES = [
  "cloudpal:index:Hub",
  "random:index/randomBytes:RandomBytes",
  "command:remote:Command",
  "command:remote:CopyToRemote",
  "digitalocean:index/sshKey:SshKey",
  "digitalocean:index/droplet:Droplet",
  "digitalocean:index/firewall:Firewall",
  "digitalocean:index/reservedIp:ReservedIp",
  "digitalocean:index/reservedIpAssignment:ReservedIpAssignment",
  "digitalocean:index/reservedIpv6:ReservedIpv6",
  "digitalocean:index/reservedIpv6Assignment:ReservedIpv6Assignment",
  "digitalocean:index/volume:Volume",
  "digitalocean:index/volumeAttachment:VolumeAttachment",
  "linode:index/instance:Instance",
  "linode:index/firewall:Firewall",
  "linode:index/firewallDevice:FirewallDevice",
  "linode:index/networkingIp:NetworkingIp",
  "linode:index/reservedIpAssignment:ReservedIpAssignment",
  "linode:index/ipv6Range:Ipv6Range",
  "vultr:index/instance:Instance",
  "vultr:index/firewallGroup:FirewallGroup",
  "vultr:index/firewallRule:FirewallRule",
  "vultr:index/reservedIp:ReservedIp",
  "vultr:index/blockStorage:BlockStorage",
] as const;

/** Addresses from the documentation ranges (RFC 5737 / RFC 3849): never a real host. */
export const MOCK_ADDRESSES = {
  digitalocean: { ipv4: "203.0.113.10", ipv6: "2001:db8:10::1" },
  linode: { ipv4: "203.0.113.20", ipv6: "2001:db8:20::1", ipv6Range: "2001:db8:21::" },
  vultr: { ipv4: "203.0.113.30", ipv6: "2001:db8:30::1" },
} as const;

export interface Registered {
  readonly type: string;
  readonly name: string;
  /** Inputs with Pulumi's secret wrappers removed. */
  readonly inputs: Record<string, unknown>;
  /** Names of inputs that arrived as secrets (top level). */
  readonly secretInputs: readonly string[];
  /** Inputs with every secret replaced by "[secret]": safe to print. */
  readonly masked: Record<string, unknown>;
}

/** Options seen by a transformation (mocks do not receive them): protect and dependsOn, by resource name. */
export interface SeenOptions {
  readonly protect: boolean;
  readonly retainOnDelete: boolean;
  readonly deleteBeforeReplace: boolean;
  readonly replaceOnChanges: readonly string[];
  readonly dependsOn: readonly pulumi.Resource[];
  /** The names of the resource's aliases (those given as `{ name }`). */
  readonly aliasNames: readonly string[];
}

/**
 * Pulumi's serialised special values carry this key; its value says which kind: a secret, an asset, an
 * archive (@pulumi/pulumi runtime/rpc.js specialSigKey, specialSecretSig, specialAssetSig). Only secrets
 * are unwrapped: an asset keeps its `path` or `text`.
 */
const SPECIAL_SIG_KEY = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";

function isSecretWrapper(v: unknown): v is { value: unknown } {
  return (
    typeof v === "object" && v !== null && (v as Record<string, unknown>)[SPECIAL_SIG_KEY] === SECRET_SIG
  );
}

/** A plain object or map, as opposed to an instance (a FileAsset, its path's Promise) that must stay whole. */
function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

export function maskSecrets(value: unknown): unknown {
  if (isSecretWrapper(value)) return "[secret]";
  if (Array.isArray(value)) return value.map(maskSecrets);
  if (isPlainObject(value)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, maskSecrets(v)]));
  }
  return value;
}

export function unwrapSecrets(value: unknown): unknown {
  if (isSecretWrapper(value)) return unwrapSecrets(value.value);
  if (Array.isArray(value)) return value.map(unwrapSecrets);
  if (isPlainObject(value)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, unwrapSecrets(v)]));
  }
  return value;
}

function digest(name: string): Buffer {
  return createHash("sha256").update(name).digest();
}

/** Numeric ids for the providers whose references are numbers (DigitalOcean, Linode). */
function mockId(type: string, name: string): string {
  if (type.startsWith("digitalocean:") || type.startsWith("linode:")) {
    return String(digest(name).readUInt32BE(0));
  }
  return `${name}-id`;
}

function computed(type: string, name: string, inputs: Record<string, unknown>): Record<string, unknown> {
  switch (type) {
    case "random:index/randomBytes:RandomBytes": {
      const bytes = digest(`random:${name}`).subarray(0, Number(inputs.length ?? 32));
      return { base64: bytes.toString("base64"), hex: bytes.toString("hex") };
    }
    case "digitalocean:index/reservedIp:ReservedIp":
      return { ipAddress: MOCK_ADDRESSES.digitalocean.ipv4 };
    case "digitalocean:index/reservedIpv6:ReservedIpv6":
      return { ip: MOCK_ADDRESSES.digitalocean.ipv6 };
    case "linode:index/networkingIp:NetworkingIp":
      return { address: MOCK_ADDRESSES.linode.ipv4 };
    case "linode:index/instance:Instance":
      // `ipv4s` echoes a reserved address handed in at creation, else the instance's own.
      return {
        ipv6: `${MOCK_ADDRESSES.linode.ipv6}/128`,
        ipAddress: "198.51.100.20",
        ipv4s: (inputs.ipv4s as string[] | undefined) ?? ["198.51.100.20"],
      };
    case "linode:index/ipv6Range:Ipv6Range":
      return { range: MOCK_ADDRESSES.linode.ipv6Range };
    case "vultr:index/reservedIp:ReservedIp":
      return { subnet: MOCK_ADDRESSES.vultr.ipv4 };
    case "vultr:index/instance:Instance":
      return {
        v6MainIp: MOCK_ADDRESSES.vultr.ipv6,
        mainIp: MOCK_ADDRESSES.vultr.ipv4,
        v6Network: "2001:db8:30::",
        v6NetworkSize: 64,
      };
    case "command:remote:Command":
      return { stdout: "", stderr: "" };
    default:
      return {};
  }
}

export interface MockRecorder {
  readonly registered: Registered[];
  readonly options: Map<string, SeenOptions>;
  /** Pass in the component's `transformations` to record each child's options. */
  readonly transformation: pulumi.ResourceTransformation;
  reset(): void;
}

/** The mock handlers: record each registration; throw on any type not in KNOWN_TYPES and on any call. */
export function createMocks(registered: Registered[]): pulumi.runtime.Mocks {
  const known = new Set<string>(KNOWN_TYPES);
  return {
    newResource(args: pulumi.runtime.MockResourceArgs): { id: string; state: Record<string, unknown> } {
      if (!known.has(args.type)) {
        throw new Error(
          `unexpected resource type ${args.type} (${args.name}): add it to KNOWN_TYPES on purpose`,
        );
      }
      const raw = args.inputs as Record<string, unknown>;
      const inputs = unwrapSecrets(raw) as Record<string, unknown>;
      registered.push({
        type: args.type,
        name: args.name,
        inputs,
        secretInputs: Object.entries(raw)
          .filter(([, v]) => isSecretWrapper(v))
          .map(([k]) => k),
        masked: maskSecrets(raw) as Record<string, unknown>,
      });
      return {
        id: mockId(args.type, args.name),
        state: { ...raw, ...computed(args.type, args.name, inputs) },
      };
    },
    call(args: pulumi.runtime.MockCallArgs): Record<string, unknown> {
      throw new Error(`unexpected function call ${args.token}`);
    },
  };
}

/**
 * Installs the mocks on the given @pulumi/pulumi instance (pass the one the program will load: under
 * jest.isolateModules that is a fresh copy). Call before creating any resource.
 */
export function installMocks(
  p: typeof pulumi = pulumi,
  options: { project?: string; stack?: string; preview?: boolean } = {},
): MockRecorder {
  const registered: Registered[] = [];
  const seen = new Map<string, SeenOptions>();
  void p.runtime.setMocks(
    createMocks(registered),
    options.project ?? "cloudpal",
    options.stack ?? "test",
    options.preview ?? false,
  );
  return {
    registered,
    options: seen,
    transformation: (args) => {
      const dependsOn = args.opts.dependsOn;
      seen.set(args.name, {
        protect: Boolean(args.opts.protect),
        retainOnDelete: Boolean(args.opts.retainOnDelete),
        deleteBeforeReplace: Boolean((args.opts as pulumi.CustomResourceOptions).deleteBeforeReplace),
        replaceOnChanges: [...(args.opts.replaceOnChanges ?? [])],
        dependsOn: Array.isArray(dependsOn) ? (dependsOn as pulumi.Resource[]) : [],
        aliasNames: (args.opts.aliases ?? [])
          .map((a) => (typeof a === "object" && a !== null && "name" in a ? a.name : undefined))
          .filter((n): n is string => typeof n === "string"),
      });
      return undefined;
    },
    reset() {
      registered.length = 0;
      seen.clear();
    },
  };
}

/** Resolves an Output's value (mocks must be installed). */
export function valueOf<T>(output: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => output.apply((v) => resolve(v)));
}

/** Waits until no new resource has been registered for a few event-loop turns. */
export async function settle(recorder: MockRecorder): Promise<void> {
  let last = -1;
  let quiet = 0;
  while (quiet < 5) {
    await new Promise((r) => setTimeout(r, 5));
    if (recorder.registered.length === last) quiet++;
    else {
      quiet = 0;
      last = recorder.registered.length;
    }
  }
}
