/**
 * What CloudPal knows about each cloud: region slugs, the cheapest size that runs a hub, and how an image
 * family is spelled. Config validation (region check, defaults) and the host files both read this table, so
 * a slug is written down once.
 *
 * Region lists were taken from each provider's public API listings (November 2026). A provider that opens a
 * region later needs one line here; until then the error message names the list so the user knows why.
 */
import type { ImageFamily } from "../cloud-init/spec";

export type CloudProvider = "digitalocean" | "linode" | "vultr";
export type ProviderName = CloudProvider | "existing";

export const PROVIDERS: readonly ProviderName[] = ["digitalocean", "linode", "vultr", "existing"];
export const IMAGE_FAMILIES: readonly ImageFamily[] = ["debian-12", "ubuntu-24.04"];

export interface CloudCatalog {
  /** Human name for messages and docs. */
  readonly title: string;
  readonly regions: readonly string[];
  /** Defaults to Frankfurt everywhere: one jurisdiction, whichever cloud is picked. */
  readonly defaultRegion: string;
  /** The cheapest size that runs the hub (WireGuard, unbound, a Node.js agent). */
  readonly defaultSize: string;
  /** Image identifier per family; Vultr's are numeric OS ids. */
  readonly images: Readonly<Record<ImageFamily, string | number>>;
  /**
   * How the provider spells a size slug. The full lists change every few months and differ by region, so the
   * config checks the family (a Linode type on DigitalOcean is caught before `pulumi up`) and the provider
   * itself refuses a slug of the right shape that it does not sell.
   */
  readonly sizePattern: RegExp;
  /** Small sizes that run a hub, cheapest first (the first is `defaultSize`), for messages and docs. */
  readonly smallSizes: readonly string[];
  /** The command that lists every size, for messages. */
  readonly sizeCommand: string;
}

export const CATALOG: Readonly<Record<CloudProvider, CloudCatalog>> = {
  digitalocean: {
    title: "DigitalOcean",
    regions: [
      "nyc1",
      "nyc2",
      "nyc3",
      "sfo1",
      "sfo2",
      "sfo3",
      "ams2",
      "ams3",
      "sgp1",
      "lon1",
      "fra1",
      "tor1",
      "blr1",
      "syd1",
      "atl1",
    ],
    defaultRegion: "fra1",
    // $4/month: 1 vCPU, 512 MB, 10 GB. Enough for WireGuard + unbound for one person's devices.
    defaultSize: "s-1vcpu-512mb-10gb",
    images: { "debian-12": "debian-12-x64", "ubuntu-24.04": "ubuntu-24-04-x64" },
    // Slugs as GET /v2/sizes lists them (docs.digitalocean.com/reference/doctl/reference/compute/size/list):
    // basic "s-<n>vcpu-<ram>[-<disk>][-amd|-intel]", and the dedicated families "c-", "c2-", "g-", "gd-",
    // "m-", "m3-", "m6-", "so-".
    sizePattern:
      /^(s-\d+vcpu-\d+(mb|gb)(-\d+gb)?(-(amd|intel))?|(c|c2|g|gd|m|m3|m6|so)-\d+(vcpu-\d+gb)?(-(amd|intel))?)$/,
    smallSizes: ["s-1vcpu-512mb-10gb", "s-1vcpu-1gb", "s-1vcpu-1gb-amd", "s-1vcpu-1gb-intel", "s-1vcpu-2gb"],
    sizeCommand: "doctl compute size list",
  },
  linode: {
    title: "Linode (Akamai)",
    // Only regions with the Metadata service: Linode hands user-data to cloud-init through it, and without
    // it cloud-init never creates the operator user. GET /v4/regions lists it as the capability "Metadata"
    // (linode/linode-api-docs#841); every region below, eu-central included, lists it in the API recording
    // linode/linodego test/integration/fixtures/TestVPC_ListIPAddresses.yaml (commit bf32ea64, 2026-07-30).
    // A region missing here is refused by the config with this list (components/config/schema.ts).
    regions: [
      "ap-west",
      "ca-central",
      "ap-southeast",
      "us-central",
      "us-west",
      "us-southeast",
      "us-east",
      "eu-west",
      "ap-south",
      "eu-central",
      "ap-northeast",
      "us-iad",
      "us-ord",
      "fr-par",
      "us-sea",
      "br-gru",
      "nl-ams",
      "se-sto",
      "es-mad",
      "in-maa",
      "jp-osa",
      "it-mil",
      "us-mia",
      "id-cgk",
      "us-lax",
      "gb-lon",
      "au-mel",
      "in-bom-2",
      "de-fra-2",
      "sg-sin-2",
      "jp-tyo-3",
    ],
    defaultRegion: "eu-central",
    // Nanode: $5/month, 1 GB; Linode's smallest shared plan.
    defaultSize: "g6-nanode-1",
    images: { "debian-12": "linode/debian12", "ubuntu-24.04": "linode/ubuntu24.04" },
    // Types as GET /v4/linode/types lists them: "g<generation>-<class>-<n>", e.g. g6-nanode-1,
    // g6-standard-2, g6-dedicated-4, g7-highmem-1, g1-gpu-rtx6000-1.
    sizePattern: /^g\d+-[a-z0-9]+(-[a-z0-9]+)*-\d+$/,
    smallSizes: ["g6-nanode-1", "g6-standard-1", "g6-standard-2"],
    sizeCommand: "linode-cli linodes types",
  },
  vultr: {
    title: "Vultr",
    regions: [
      "ams",
      "atl",
      "blr",
      "bom",
      "cdg",
      "del",
      "dfw",
      "ewr",
      "fra",
      "hnl",
      "icn",
      "itm",
      "jnb",
      "lax",
      "lhr",
      "mad",
      "man",
      "mel",
      "mex",
      "mia",
      "nrt",
      "ord",
      "sao",
      "scl",
      "sea",
      "sgp",
      "sjc",
      "sto",
      "syd",
      "tlv",
      "waw",
      "yto",
    ],
    defaultRegion: "fra",
    // $5/month, 1 GB. The $3.50 vc2-1c-0.5gb plan exists but is sold in only a few regions (and the
    // $2.50 one is IPv6-only), so it would make the default region fail to deploy.
    defaultSize: "vc2-1c-1gb",
    // Vultr's OS ids from GET /v2/os: 2136 "Debian 12 x64 (bookworm)", 2284 "Ubuntu 24.04 LTS x64".
    images: { "debian-12": 2136, "ubuntu-24.04": 2284 },
    // Plans as GET /v2/plans lists them (docs.vultr.com/reference/vultr-cli/plans): "<family>-<n>c-<ram>gb…"
    // for the families vc2 (regular), vhf (high frequency), vhp (high performance), voc (optimized), vdc
    // (dedicated), vcg (GPU).
    sizePattern: /^(vc2|vhf|vhp|voc|vdc|vcg)-[a-z0-9.-]+$/,
    smallSizes: ["vc2-1c-1gb", "vc2-1c-2gb", "vhf-1c-1gb", "vhp-1c-1gb-amd", "vhp-1c-1gb-intel"],
    sizeCommand: "vultr-cli plans list",
  },
};
