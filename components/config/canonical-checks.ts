/**
 * The hub state's rules on address forms and filter entries (model/canonical.ts, model/domain-rules.ts),
 * applied to the stack config, so the config refuses exactly what the agent would refuse on the hub, and says
 * so before anything is created.
 */
import * as ipaddr from "ipaddr.js";
import type { RawConfig, UnallocatedConfig } from "./types";
import { hostProblem, isCanonicalCidr, isCanonicalIp, nonCanonicalFix } from "../../model/canonical";
import { filterEntryProblem } from "../../model/domain-rules";
import { show } from "../../model/messages";

type Sound = (path: string) => boolean;

export function checkCanonicalForms(raw: RawConfig, cfg: UnallocatedConfig, sound: Sound): string[] {
  const out: string[] = [];
  // Text no parser reads as an address is reported by the field's own check ("is not a CIDR"); this one
  // speaks only of what ipaddr.js reads but the hub's tools may read differently.
  const canonical = (
    field: string,
    path: string,
    text: string,
    ok: (t: string) => boolean,
    example: string,
  ) => {
    const readable = text.includes("/") ? ipaddr.isValidCIDR(text) : ipaddr.isValid(text);
    if (sound(path) && readable && !ok(text))
      out.push(`'${field}' (${show(text)}) ${nonCanonicalFix(text, example)}.`);
  };
  cfg.sshAllowedCidrs.forEach((c, i) =>
    canonical(`sshAllowedCidrs[${i}]`, `sshAllowedCidrs/${i}`, c, isCanonicalCidr, "203.0.113.7/32"),
  );
  if (raw.ipv4Subnet !== undefined)
    canonical("ipv4Subnet", "ipv4Subnet", raw.ipv4Subnet, isCanonicalCidr, "10.77.0.0/16");
  if (raw.ipv6Prefix !== undefined)
    canonical("ipv6Prefix", "ipv6Prefix", raw.ipv6Prefix, isCanonicalCidr, "fd7a:c10d:9a1::/64");
  // 'peers[i].address' needs no line here: the allocator reads only dotted decimal without leading zeros.
  cfg.dns.upstreams.forEach((u, i) =>
    canonical(
      `dns.upstreams[${i}].address`,
      `dns/upstreams/${i}/address`,
      u.address,
      isCanonicalIp,
      "9.9.9.9",
    ),
  );
  for (const list of ["allow", "deny"] as const)
    cfg.dns[list].forEach((d, i) => {
      const problem = sound(`dns/${list}/${i}`) ? filterEntryProblem(d) : undefined;
      if (problem !== undefined) out.push(`'dns.${list}[${i}]' (${show(d)}) ${problem}.`);
    });
  for (const g of cfg.groups)
    for (const list of ["allow", "deny"] as const)
      g[list].forEach((d, i) => {
        const problem = sound(`groups/${g.name}/${list}/${i}`) ? filterEntryProblem(d) : undefined;
        if (problem !== undefined) out.push(`'groups.${g.name}.${list}[${i}]' (${show(d)}) ${problem}.`);
      });
  const host = raw.existing?.host;
  if (host !== undefined && sound("existing/host")) {
    const problem = hostProblem(host);
    if (problem !== undefined) out.push(`'existing.host' (${show(host)}) ${problem}.`);
  }
  // The same rule the agent's state schema applies to the endpoint the hub hands out (model/canonical.ts):
  // refused here, before anything is created, not at the `state` delivery step after the server exists.
  const endpointHost = raw.endpointHostname;
  if (typeof endpointHost === "string" && sound("endpointHostname")) {
    const problem = hostProblem(endpointHost);
    if (problem !== undefined) out.push(`'endpointHostname' (${show(endpointHost)}) ${problem}.`);
  }
  return out;
}
