/**
 * Checks the JSON Schema cannot express: they look at several fields at once (overlaps, references,
 * provider-specific fields) or at what a value means (an SSH key's blob, a CIDR's host bits). Each returns
 * every problem it finds as one sentence (field in quotes, value, fix); load.ts reports them all together.
 */
import * as ipaddr from "ipaddr.js";
import { DEFAULTS } from "./defaults";
import type { RawConfig, UnallocatedConfig } from "./types";
import { hubAddresses, type Subnets } from "../../model/addressing";
import { show } from "../../model/messages";
import { SSH_KEY_FIX, sshPublicKeyProblem, userNameProblem } from "../../model/rules";
import { checkProviderLimits } from "../hosts/limits";
import { checkCanonicalForms } from "./canonical-checks";
import { isGlobalIpv6Prefix } from "../../model/public-ipv6";

type Net = [ipaddr.IPv4 | ipaddr.IPv6, number];
type Sound = (path: string) => boolean;

/**
 * Ranges a tunnel subnet must never overlap: traffic to them would be routed into the tunnel (or out of it)
 * and break the cloud VM or the device.
 */
export const RESERVED_RANGES: readonly { readonly cidr: string; readonly what: string }[] = [
  { cidr: "169.254.0.0/16", what: "link-local, where clouds serve instance metadata" },
  { cidr: "127.0.0.0/8", what: "loopback" },
  { cidr: "224.0.0.0/4", what: "multicast" },
  { cidr: "10.244.0.0/16", what: "DigitalOcean's internal network" },
  { cidr: "10.245.0.0/16", what: "DigitalOcean's internal network" },
  { cidr: "192.168.128.0/17", what: "Linode's private network" },
  { cidr: "172.17.0.0/16", what: "Docker's default bridge" },
];

const RFC1918 = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"];

/**
 * `clean(fields)` says whether the schema accepted those fields whole; `sound(path)` whether it accepted the
 * value at a path such as "peers/1/name", whatever is wrong beside or below it (load.ts). A check runs only on
 * what the schema accepted, so it never echoes the schema, and the checks on lists judge every element the
 * schema accepted even when a sibling was refused.
 */
export function checkConfig(
  raw: RawConfig,
  cfg: UnallocatedConfig,
  clean: (...fields: string[]) => boolean = () => true,
  sound: Sound = () => true,
): string[] {
  const when = (fields: string[], check: () => string[]) => (clean(...fields) ? check() : []);
  const whenSound = (paths: string[], check: () => string[]) => (paths.every(sound) ? check() : []);
  return [
    ...when(["existing", "region", "size", "backups", "operatorUser"], () => checkTarget(raw)),
    ...when(["size", "hostname", "linodeReservedIpv4"], () => checkProviderLimits(raw, cfg)),
    ...when(["existing", "operatorUser"], () => checkOperatorUser(raw)),
    ...whenSound(["sshPublicKeys"], () => checkSshKeys(cfg.sshPublicKeys, sound)),
    ...whenSound(["sshAllowedCidrs", "allowWorldSsh"], () =>
      checkSshCidrs(cfg.sshAllowedCidrs, cfg.allowWorldSsh, sound),
    ),
    ...whenSound(["wireguardExtraPorts", "wireguardPort", "sshPort"], () =>
      checkWireguardExtraPorts(cfg, sound),
    ),
    ...when(["tcpPath", "tcpPort", "sshPort"], () => checkTcpPath(raw, cfg)),
    ...when(["ipv4Subnet"], () => checkIpv4Subnet(cfg.ipv4Subnet)),
    ...when(["ipv6Prefix"], () => checkIpv6Prefix(cfg.ipv6Prefix)),
    ...whenSound(["groups"], () => checkGroups(cfg, sound)),
    ...whenSound(["peers"], () => checkPeers(cfg, sound)),
    ...when(["existing"], () => checkPublicIpv6(raw, cfg, sound)),
    ...whenSound(["dns"], () => checkDns(cfg, sound, clean("ipv4Subnet", "ipv6Prefix"))),
    ...checkCanonicalForms(raw, cfg, sound),
  ];
}

/**
 * Public IPv6 (model/public-ipv6.ts): an `existing` prefix must be a global /32–/64, and "session" and
 * "per-site" need a prefix to draw addresses from: DigitalOcean gives a droplet a /124 and one reserved
 * address, an `existing` server only what the user names.
 */
function checkPublicIpv6(raw: RawConfig, cfg: UnallocatedConfig, sound: Sound): string[] {
  const out: string[] = [];
  const prefix = raw.existing?.ipv6Prefix;
  if (raw.provider === "existing" && prefix !== undefined && !isGlobalIpv6Prefix(prefix))
    out.push(
      `'existing.ipv6Prefix' (${show(prefix)}) is not a global IPv6 prefix from /32 to /64: write the prefix your provider routes to the server, in lower case and compressed as RFC 5952 says with no host bits, e.g. '2001:db8:1:2::/64', or remove it to keep devices on ULA behind NAT66.`,
    );
  if (raw.provider === "existing" && raw.existing?.ipv6OnLink === true && prefix === undefined)
    out.push(
      `'existing.ipv6OnLink' (true) has no prefix to apply to: set 'existing.ipv6Prefix' too, or remove it.`,
    );
  const noPrefix =
    raw.provider === "digitalocean"
      ? "DigitalOcean gives a droplet a /124 and one reserved IPv6, not the /64 this needs"
      : raw.provider === "existing" && prefix === undefined
        ? "the server has no 'existing.ipv6Prefix'"
        : undefined;
  if (noPrefix !== undefined)
    cfg.peers.forEach((p, i) => {
      if (sound(`peers/${i}`) && (p.publicIpv6 === "session" || p.publicIpv6 === "per-site"))
        out.push(
          `'peers[${i}].publicIpv6' (${show(p.publicIpv6)}) needs a public IPv6 prefix, and ${noPrefix}: use 'off' (the hub's own address)${raw.provider === "existing" ? ", or set 'existing.ipv6Prefix'" : ""}.`,
        );
    });
  return out;
}

/** Fields that belong to one kind of host only. */
function checkTarget(raw: RawConfig): string[] {
  const out: string[] = [];
  if (raw.provider === "existing") {
    if (raw.existing === undefined)
      out.push(
        `'existing' is missing: provider "existing" needs the server to use, e.g. { host: "203.0.113.7", user: "admin", hostKey: "ssh-ed25519 AAAA…" } (hostKey: the line 'cat /etc/ssh/ssh_host_ed25519_key.pub' prints on the server's console).`,
      );
    // The bootstrap turns root login over SSH off, so root cannot stay the operator CloudPal logs in as.
    else if (raw.existing.user === "root")
      out.push(
        `'existing.user' ("root") cannot be the operator: CloudPal turns root login over SSH off. Create a user with passwordless sudo and your SSH key, and set 'existing.user' to it.`,
      );
    // `backups: false` is what the Pulumi CLI passes by default, so only `true` is a mistake here.
    const cloudOnly: [keyof RawConfig, string][] = [
      ["region", "a server you already have has no region to choose"],
      ["size", "a server you already have has no size to choose"],
      ["operatorUser", "set 'existing.user' instead"],
    ];
    if (raw.backups === true)
      out.push(
        `'backups' (true) does not apply to provider "existing": remove it (back up your own server yourself).`,
      );
    for (const [key, why] of cloudOnly) {
      if (raw[key] !== undefined)
        out.push(`'${key}' (${show(raw[key])}) does not apply to provider "existing": remove it (${why}).`);
    }
  } else if (raw.existing !== undefined) {
    out.push(
      `'existing' (${show(raw.existing)}) only applies to provider "existing": remove it, or set 'provider' to "existing".`,
    );
  }
  return out;
}

/**
 * The operator user, by the bootstrap's own rule (model/rules.ts), named as the user wrote it: a name the
 * config accepts is never refused minutes later by the bootstrap as 'operator.user'.
 */
function checkOperatorUser(raw: RawConfig): string[] {
  const [field, user] =
    raw.provider === "existing" ? ["existing.user", raw.existing?.user] : ["operatorUser", raw.operatorUser];
  // Root on an existing server has its own message (checkTarget); an unset user is the schema's to report.
  if (user === undefined || (raw.provider === "existing" && user === "root")) return [];
  const problem = userNameProblem(user);
  return problem === undefined ? [] : [`'${field}' (${show(user)}) ${problem}.`];
}

/**
 * The size in bits of an ssh-rsa key's modulus: the blob is string "ssh-rsa", mpint e, mpint n (RFC 4253
 * section 6.6), an mpint being big-endian with a leading zero byte when the top bit is set (RFC 4251 section
 * 5). Undefined when the blob is not a complete RSA key (reported on its own).
 */
export function rsaModulusBits(blob: string): number | undefined {
  const bytes = Buffer.from(blob, "base64");
  const fields: Buffer[] = [];
  for (let at = 0; at + 4 <= bytes.length;) {
    const length = bytes.readUInt32BE(at);
    if (at + 4 + length > bytes.length) return undefined;
    fields.push(bytes.subarray(at + 4, at + 4 + length));
    at += 4 + length;
  }
  const n = fields[2];
  if (fields.length !== 3 || fields[0].toString("latin1") !== "ssh-rsa" || n === undefined) return undefined;
  let first = 0;
  while (first < n.length && n[first] === 0) first++;
  if (first === n.length) return 0;
  return (n.length - first) * 8 - (Math.clz32(n[first]) - 24);
}

/** NIST SP 800-131A: RSA below 2048 bits is disallowed for signatures; OpenSSH itself still takes 1024. */
const MIN_RSA_BITS = 2048;

function checkSshKeys(keys: readonly unknown[], sound: Sound): string[] {
  const out: string[] = [];
  keys.forEach((key, i) => {
    if (typeof key !== "string" || !sound(`sshPublicKeys/${i}`)) return;
    const problem = sshPublicKeyProblem(key);
    if (problem !== undefined) out.push(`'sshPublicKeys[${i}]' (${show(key)}) ${problem}: ${SSH_KEY_FIX}.`);
    const blob = key.split(" ")[1];
    const bits = key.startsWith("ssh-rsa ") && problem === undefined ? rsaModulusBits(blob) : undefined;
    if (bits !== undefined && bits < MIN_RSA_BITS)
      out.push(
        `'sshPublicKeys[${i}]' (${show(key)}) is a ${bits}-bit RSA key, too weak to guard the hub (at least ${MIN_RSA_BITS} bits): make a new key with 'ssh-keygen -t ed25519' and paste its '.pub' line instead.`,
      );
    const first = keys.findIndex(
      (k, j) => typeof k === "string" && sound(`sshPublicKeys/${j}`) && k.split(" ")[1] === blob,
    );
    if (first !== i)
      out.push(`'sshPublicKeys[${i}]' (${show(key)}) repeats 'sshPublicKeys[${first}]': remove one.`);
  });
  return out;
}

function parseCidr(text: string): Net | undefined {
  try {
    return ipaddr.parseCIDR(text);
  } catch {
    return undefined;
  }
}

function networkOf([addr, bits]: Net): string {
  return addr.kind() === "ipv4"
    ? `${ipaddr.IPv4.networkAddressFromCIDR(`${addr.toString()}/${bits}`).toString()}/${bits}`
    : `${ipaddr.IPv6.networkAddressFromCIDR(`${addr.toString()}/${bits}`).toString()}/${bits}`;
}

/** Whether two networks of the same family overlap: one contains the other's base address. */
function overlaps(a: Net, b: Net): boolean {
  if (a[0].kind() !== b[0].kind()) return false;
  const aBase = ipaddr.parse(networkOf(a).split("/")[0]);
  const bBase = ipaddr.parse(networkOf(b).split("/")[0]);
  return (
    (aBase as ipaddr.IPv4).match(b as [ipaddr.IPv4, number]) ||
    (bBase as ipaddr.IPv4).match(a as [ipaddr.IPv4, number])
  );
}

function hostBitsProblem(field: string, text: string, net: Net): string | undefined {
  const network = networkOf(net);
  if (network !== `${net[0].toString()}/${net[1]}`)
    return `'${field}' (${show(text)}) has host bits set: write the network address, '${network}'.`;
  return undefined;
}

function checkSshCidrs(cidrs: readonly string[], allowWorld: boolean, sound: Sound): string[] {
  const out: string[] = [];
  const nets: (Net | undefined)[] = cidrs.map((text, i) => {
    if (!sound(`sshAllowedCidrs/${i}`)) return undefined;
    const net = parseCidr(text);
    if (!net) {
      out.push(
        `'sshAllowedCidrs[${i}]' (${show(text)}) is not a CIDR: write an address with a prefix length, e.g. '203.0.113.7/32'.`,
      );
      return undefined;
    }
    const hostBits = hostBitsProblem(`sshAllowedCidrs[${i}]`, text, net);
    if (hostBits) out.push(hostBits);
    if (net[1] === 0 && !allowWorld)
      out.push(
        `'sshAllowedCidrs[${i}]' (${show(text)}) opens SSH to the whole internet: list only the addresses you run 'pulumi up' from, or set 'allowWorldSsh' to true to accept the risk.`,
      );
    for (const r of RESERVED_RANGES) {
      const reserved = ipaddr.parseCIDR(r.cidr);
      if (net[1] > 0 && overlaps(net, reserved))
        out.push(
          `'sshAllowedCidrs[${i}]' (${show(text)}) is in ${r.cidr} (${r.what}), which no SSH client comes from: use your public address.`,
        );
    }
    return net;
  });
  nets.forEach((net, i) => {
    if (!net) return;
    for (let j = 0; j < i; j++) {
      const other = nets[j];
      if (other && overlaps(net, other))
        out.push(
          `'sshAllowedCidrs[${i}]' (${show(cidrs[i])}) overlaps 'sshAllowedCidrs[${j}]' (${show(cidrs[j])}): keep only the wider one.`,
        );
    }
  });
  return out;
}

/**
 * Extra WireGuard ports are redirected to the listen port (model/public-ports.ts): the listen port itself would
 * be a second rule for the same port, and a duplicate a second provider firewall rule that the clouds refuse or
 * merge. 22 and the SSH port are kept for SSH (a TCP/443-style path may share a number, never SSH's).
 */
function checkWireguardExtraPorts(cfg: UnallocatedConfig, sound: Sound): string[] {
  const out: string[] = [];
  const ports = cfg.wireguardExtraPorts;
  ports.forEach((port, i) => {
    if (!sound(`wireguardExtraPorts/${i}`)) return;
    const field = `'wireguardExtraPorts[${i}]' (${port})`;
    if (port === cfg.wireguardPort)
      out.push(
        `${field} is 'wireguardPort', where WireGuard already listens: remove it from 'wireguardExtraPorts'.`,
      );
    else if (port === cfg.sshPort || port === DEFAULTS.sshPort)
      out.push(
        `${field} is kept for SSH: remove it from 'wireguardExtraPorts', or use another port, e.g. 443 or 53.`,
      );
    const first = ports.indexOf(port);
    if (first < i) out.push(`${field} repeats 'wireguardExtraPorts[${first}]': list each port once.`);
  });
  return out;
}

/** The TCP path's port is a TCP listener of its own: never SSH's. */
function checkTcpPath(raw: RawConfig, cfg: UnallocatedConfig): string[] {
  if (raw.tcpPath === false && raw.tcpPort !== undefined)
    return [
      `'tcpPort' (${raw.tcpPort}) is set but 'tcpPath' is false: remove 'tcpPort', or set 'tcpPath' to true to serve it.`,
    ];
  if (cfg.tcpPort !== undefined && (cfg.tcpPort === cfg.sshPort || cfg.tcpPort === DEFAULTS.sshPort))
    return [
      `'tcpPort' (${cfg.tcpPort}) is kept for SSH: use another port, e.g. 443 (the default), or set 'tcpPath' to false.`,
    ];
  return [];
}

function checkIpv4Subnet(text: string): string[] {
  const field = "ipv4Subnet";
  const net = parseCidr(text);
  if (!net || net[0].kind() !== "ipv4")
    return [`'${field}' (${show(text)}) is not an IPv4 subnet: write it like '10.77.0.0/16'.`];
  const out: string[] = [];
  const hostBits = hostBitsProblem(field, text, net);
  if (hostBits) out.push(hostBits);
  if (net[1] < 16 || net[1] > 24)
    out.push(
      `'${field}' (${show(text)}) must have a prefix length from /16 to /24: a smaller network runs out of addresses, a larger one collides with more LANs; e.g. '10.77.0.0/16'.`,
    );
  if (!RFC1918.some((r) => overlaps(net, ipaddr.parseCIDR(r)) && net[1] >= ipaddr.parseCIDR(r)[1]))
    out.push(
      `'${field}' (${show(text)}) is not a private range: use a subnet of 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16, e.g. '10.77.0.0/16'.`,
    );
  for (const r of RESERVED_RANGES) {
    if (overlaps(net, ipaddr.parseCIDR(r.cidr)))
      out.push(
        `'${field}' (${show(text)}) overlaps ${r.cidr} (${r.what}): choose another range, e.g. '10.77.0.0/16'.`,
      );
  }
  return out;
}

function checkIpv6Prefix(text: string): string[] {
  const field = "ipv6Prefix";
  const net = parseCidr(text);
  if (!net || net[0].kind() !== "ipv6")
    return [
      `'${field}' (${show(text)}) is not an IPv6 prefix: write a ULA prefix like 'fd7a:c10d:9a1::/64'.`,
    ];
  const out: string[] = [];
  const hostBits = hostBitsProblem(field, text, net);
  if (hostBits) out.push(hostBits);
  if (!overlaps(net, ipaddr.parseCIDR("fd00::/8")) || net[1] < 8)
    out.push(
      `'${field}' (${show(text)}) is not a unique local (ULA) prefix: use one inside fd00::/8 (RFC 4193), e.g. 'fd7a:c10d:9a1::/64'.`,
    );
  if (net[1] < 48 || net[1] > 64)
    out.push(
      `'${field}' (${show(text)}) must have a prefix length from /48 to /64, e.g. 'fd7a:c10d:9a1::/64'.`,
    );
  return out;
}

function checkGroups(cfg: UnallocatedConfig, sound: Sound): string[] {
  const names = new Set(cfg.groups.map((g) => g.name));
  const out: string[] = [];
  for (const g of cfg.groups) {
    g.reaches.forEach((target, i) => {
      if (sound(`groups/${g.name}/reaches/${i}`) && !names.has(target))
        out.push(
          `'groups.${g.name}.reaches[${i}]' (${show(target)}) names no group: use one of ${[...names].map((n) => `'${n}'`).join(", ")}, or add a group called '${target}'.`,
        );
    });
    out.push(...checkGroupSites(cfg, g, sound));
  }
  return out;
}

/** A group's own lists and site mode (model/state.ts SiteMode; README "Per-group site policies"). */
function checkGroupSites(
  cfg: UnallocatedConfig,
  g: UnallocatedConfig["groups"][number],
  sound: Sound,
): string[] {
  const out: string[] = [];
  const at = `groups.${g.name}`;
  const ok = (field: string) => sound(`groups/${g.name}/${field}`);
  g.blocklists.forEach((u, i) => {
    if (!ok(`blocklists/${i}`)) return;
    try {
      const url = new URL(u);
      if (url.protocol !== "https:" || !url.hostname) throw new Error("not https");
    } catch {
      out.push(
        `'${at}.blocklists[${i}]' (${show(u)}) is not an https URL: blocklists are fetched over https only, e.g. 'https://example.org/adult.txt'.`,
      );
    }
  });
  g.deny.forEach((d, i) => {
    const j = g.allow.findIndex((a, k) => ok(`allow/${k}`) && a === d);
    if (ok(`deny/${i}`) && j >= 0)
      out.push(
        `'${at}.deny[${i}]' (${show(d)}) is also '${at}.allow[${j}]': keep it in one of the two lists.`,
      );
  });
  if (!ok("sites") || g.sites === "open") return out;
  const mode = show(g.sites);
  if (g.sites === "allow-list" && g.allow.length === 0)
    out.push(
      `'${at}.sites' (${mode}) allows no site: list the sites the group may reach in '${at}.allow', e.g. ['school.example'].`,
    );
  if (g.sites === "deny" && g.deny.length === 0)
    out.push(`'${at}.sites' (${mode}) denies no site: list them in '${at}.deny', e.g. ['games.example'].`);
  if (ok("internet") && !g.internet)
    out.push(
      `'${at}.sites' (${mode}) needs '${at}.internet: true': a group without internet reaches no site anyway; set it, or leave 'sites' out.`,
    );
  else if (cfg.firewallMode === "mesh-only")
    out.push(
      `'${at}.sites' (${mode}) has no effect with 'firewallMode: mesh-only' (the hub forwards nothing to the internet): leave 'sites' out, or use 'firewallMode: vpn'.`,
    );
  if (g.sites === "allow-list" && ok("encryptedDns") && g.encryptedDns === "allow")
    out.push(
      `'${at}.encryptedDns' ("allow") cannot go with 'sites: allow-list': the group's devices must ask the hub, which learns the allowed sites' addresses from its answers; remove 'encryptedDns' or set it to "block".`,
    );
  return out;
}

function checkPeers(cfg: UnallocatedConfig, sound: Sound): string[] {
  const out: string[] = [];
  const groups = new Set(cfg.groups.map((g) => g.name));
  // Each comparison uses only values the schema accepted, element by element (see checkConfig).
  const ok = (i: number, field: string) => sound(`peers/${i}/${field}`);
  cfg.peers.forEach((p, i) => {
    const first = cfg.peers.findIndex((q, j) => ok(j, "name") && q.name === p.name);
    if (ok(i, "name") && first !== i)
      out.push(
        `'peers[${i}].name' (${show(p.name)}) is already used by 'peers[${first}]': give every device its own name.`,
      );
    if (ok(i, "name") && p.name === "hub")
      out.push(`'peers[${i}].name' ("hub") is the hub's own DNS name: choose another device name.`);
    if (sound("groups") && ok(i, "group") && !groups.has(p.group))
      out.push(
        `'peers[${i}].group' (${show(p.group)}) names no group${p.group === DEFAULTS.peerGroup ? ` (${show(DEFAULTS.peerGroup)} is the default when 'group' is left out)` : ""}: use one of ${[...groups].map((n) => `'${n}'`).join(", ") || "the groups you define"}, or add it under 'groups'.`,
      );
    if (p.publicKey !== undefined && ok(i, "publicKey")) {
      const firstKey = cfg.peers.findIndex((q, j) => ok(j, "publicKey") && q.publicKey === p.publicKey);
      if (firstKey !== i)
        out.push(
          `'peers[${i}].publicKey' (${show(p.publicKey)}) is also 'peers[${firstKey}].publicKey': each device needs its own key pair ('wg genkey | wg pubkey').`,
        );
    }
    // NAT64 translates to the internet: it needs a group that uses the hub for the internet, in vpn mode.
    if (p.nat64 && ok(i, "nat64")) {
      const group = cfg.groups.find((g) => g.name === p.group);
      if (cfg.firewallMode === "mesh-only")
        out.push(
          `'peers[${i}].nat64' (true) translates to the internet, and 'firewallMode' is "mesh-only" (the hub forwards nothing to the internet): remove 'nat64', or use "vpn".`,
        );
      else if (sound("groups") && ok(i, "group") && group !== undefined && !group.internet)
        out.push(
          `'peers[${i}].nat64' (true) translates to the internet, and group ${show(p.group)} has no internet access: remove 'nat64', or set 'groups.${p.group}.internet: true'.`,
        );
      // The filter decides a group's own lists by the asking address, and a nat64 device's queries reach it from
      // the DNS64 resolver (model/nat64.ts): its group's lists and site mode would not hold for it.
      else if (
        sound("groups") &&
        ok(i, "group") &&
        group !== undefined &&
        (group.sites !== "open" || group.blocklists.length + group.allow.length + group.deny.length > 0)
      )
        out.push(
          `'peers[${i}].nat64' (true) cannot go with group ${show(p.group)}'s own 'blocklists', 'allow', 'deny' or 'sites': DNS64 asks the filter for the device, so the filter would apply only the hub's 'dns' lists; put the device in a group without its own lists, or remove 'nat64'.`,
        );
    }
  });
  return out;
}

function checkDns(cfg: UnallocatedConfig, sound: Sound, subnetsClean: boolean): string[] {
  const out: string[] = [];
  const hub = subnetsClean ? hubAddressesOrNone(cfg) : [];
  cfg.dns.blocklists.forEach((u, i) => {
    if (!sound(`dns/blocklists/${i}`)) return;
    try {
      const url = new URL(u);
      if (url.protocol !== "https:" || !url.hostname) throw new Error("not https");
    } catch {
      out.push(
        `'dns.blocklists[${i}]' (${show(u)}) is not an https URL: blocklists are fetched over https only, e.g. 'https://example.org/hosts.txt'.`,
      );
    }
  });
  cfg.dns.upstreams.forEach((u, i) => {
    if (!sound(`dns/upstreams/${i}/address`)) return;
    const problem = upstreamProblem(u.address, hub);
    if (problem !== undefined)
      out.push(
        `'dns.upstreams[${i}].address' (${show(u.address)}) ${problem}: ${ipaddr.isValid(u.address) ? "use a public DNS-over-TLS resolver's IP" : "DNS-over-TLS needs the resolver's IP"}, e.g. '9.9.9.9'.`,
      );
  });
  cfg.dns.deny.forEach((d, i) => {
    const j = cfg.dns.allow.findIndex((a, k) => sound(`dns/allow/${k}`) && a === d);
    if (sound(`dns/deny/${i}`) && j >= 0)
      out.push(`'dns.deny[${i}]' (${show(d)}) is also 'dns.allow[${j}]': keep it in one of the two lists.`);
  });
  return out;
}

function hubAddressesOrNone(subnets: Subnets): string[] {
  try {
    const hub = hubAddresses(subnets);
    return [hub.ipv4, hub.ipv6];
  } catch {
    return []; // an unusable subnet is reported by its own check
  }
}

/**
 * Why an address cannot be the hub's upstream resolver (the tail of a sentence), or undefined. unbound on the
 * hub forwards to it, so an address that means the hub itself, or reaches no resolver at all, fails every
 * lookup; IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.
 */
function upstreamProblem(text: string, hub: readonly string[]): string | undefined {
  if (!ipaddr.isValid(text)) return "is not an IP address";
  let addr = ipaddr.parse(text);
  if (addr instanceof ipaddr.IPv6 && addr.isIPv4MappedAddress()) addr = addr.toIPv4Address();
  if (hub.includes(addr.toString()))
    return "is the hub's own tunnel address, so the hub's resolver would ask itself";
  switch (addr.range()) {
    case "loopback":
      return "is a loopback address, which on the hub is the hub itself";
    case "linkLocal":
      return addr.kind() === "ipv4"
        ? "is link-local (169.254.0.0/16, where 169.254.169.254 is the cloud's metadata service), not a resolver the hub can use"
        : "is link-local (fe80::/10), which reaches only the hub's own network segment";
    case "unspecified":
      return "is the unspecified address, which names no resolver";
    case "multicast":
    case "broadcast":
      return `is a ${addr.range()} address, which names no single resolver`;
    default:
      return undefined;
  }
}
