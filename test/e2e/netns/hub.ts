/**
 * The hub side of the network-namespace lab, shared by the end-to-end test (test/e2e/netns-agent.test.ts) and
 * the agent benchmarks (bench/agent-hub-lab.ts): the hub's unbound base config, an "internet" namespace with
 * an authoritative server that answers over DNS-over-TLS, and the environment that moves the agent's paths
 * under the lab's directory.
 *
 * The upstream speaks TLS with a certificate made for this run, and the hub's unbound checks it against that
 * run's CA (AgentPaths.caBundle, moved under the lab root like every other path), so the agent renders the very
 * settings a production hub uses: no test-only branch in the renderer.
 */
import { mkdirSync, readFileSync, writeFileSync } from "fs";
import * as path from "path";
import type { DnsUpstream } from "../../../model/state";
import { type Lab, waitFor } from "./lab";

/** The hub's and the internet's ends of the link between them. */
export const INTERNET_HUB = "198.51.100.1";
export const INTERNET = "198.51.100.2";
/** The name the upstream's certificate carries (not *.test: unbound answers RFC 6761's "test." itself). */
export const UPSTREAM_TLS_NAME = "dns.lab.example";
/** The upstream to put in the hub state: the internet namespace's authoritative server, over TLS. */
export const LAB_UPSTREAM: DnsUpstream = { address: INTERNET, tlsName: UPSTREAM_TLS_NAME, port: 853 };

/** Where the agent writes and reads when CLOUDPAL_ROOT is `<dir>/hub`. */
export function hubRoot(dir: string): string {
  return path.join(dir, "hub");
}

/**
 * The hub's unbound: no daemon user, no chroot, a control socket without certificates, and the directory the
 * agent writes its files to included, as /etc/unbound/unbound.conf includes unbound.conf.d on a hub.
 * Returns the config path (for unbound -c and unbound-control -c).
 */
export function writeHubUnboundConfig(dir: string): string {
  const unboundDir = path.join(dir, "unbound-hub");
  mkdirSync(unboundDir, { recursive: true });
  const file = path.join(unboundDir, "unbound.conf");
  writeFileSync(
    file,
    [
      "server:",
      `  directory: "${unboundDir}"`,
      '  username: ""',
      '  chroot: ""',
      `  pidfile: "${unboundDir}/unbound.pid"`,
      "  do-daemonize: no",
      "  use-syslog: no",
      "remote-control:",
      "  control-enable: yes",
      `  control-interface: "${unboundDir}/control.sock"`,
      "  control-use-cert: no",
      `include-toplevel: "${hubRoot(dir)}/etc/unbound/unbound.conf.d/*.conf"`,
      "",
    ].join("\n"),
  );
  return file;
}

/** The agent's environment for a hub in this lab. */
export function agentEnv(dir: string, hubIf: string): string[] {
  return [
    `CLOUDPAL_ROOT=${hubRoot(dir)}`,
    `CLOUDPAL_INTERFACE=${hubIf}`,
    `CLOUDPAL_UNBOUND_CONTROL_CONFIG=${path.join(dir, "unbound-hub", "unbound.conf")}`,
  ];
}

/**
 * The internet: a namespace linked to the hub's, with an authoritative server for lab.example answering
 * `records` (name → IPv4, each with `ttl` seconds) over DNS-over-TLS on 853 and plain DNS on 53. Its certificate is made for this run
 * and written as the hub's CA bundle. Returns the namespace.
 */
export async function startInternet(
  lab: Lab,
  hubNs: string,
  dir: string,
  records: Readonly<Record<string, string>>,
  ttl = 60,
): Promise<string> {
  const internetNs = await lab.namespace("inet");
  await lab.link(
    { ns: hubNs, ifname: `vhi${lab.tag}`, cidr: `${INTERNET_HUB}/24` },
    { ns: internetNs, ifname: `vi${lab.tag}`, cidr: `${INTERNET}/24` },
  );
  const auth = path.join(dir, "auth");
  mkdirSync(auth, { recursive: true });
  const key = path.join(auth, "tls.key");
  const cert = path.join(auth, "tls.pem");
  // Self-signed, so the certificate is its own CA; the name is in subjectAltName, where unbound checks it.
  await lab.run("openssl", [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-days",
    "2",
    "-subj",
    `/CN=${UPSTREAM_TLS_NAME}`,
    "-addext",
    `subjectAltName=DNS:${UPSTREAM_TLS_NAME}`,
    "-keyout",
    key,
    "-out",
    cert,
  ]);
  const caBundle = path.join(hubRoot(dir), "etc", "ssl", "certs", "ca-certificates.crt");
  mkdirSync(path.dirname(caBundle), { recursive: true });
  writeFileSync(caBundle, readFileSync(cert));
  writeFileSync(
    path.join(auth, "unbound.conf"),
    [
      "server:",
      `  directory: "${auth}"`,
      '  username: ""',
      '  chroot: ""',
      `  pidfile: "${auth}/unbound.pid"`,
      "  do-daemonize: no",
      "  use-syslog: no",
      `  interface: ${INTERNET}@53`,
      `  interface: ${INTERNET}@853`,
      "  tls-port: 853",
      `  tls-service-key: "${key}"`,
      `  tls-service-pem: "${cert}"`,
      "  access-control: 0.0.0.0/0 allow",
      '  local-zone: "lab.example." static',
      ...Object.entries(records).map(([name, ipv4]) => `  local-data: "${name}. ${ttl} IN A ${ipv4}"`),
      "remote-control:",
      "  control-enable: no",
      "",
    ].join("\n"),
  );
  lab.daemon("auth-dns", internetNs, "unbound", ["-d", "-c", path.join(auth, "unbound.conf")]);
  return internetNs;
}

/** Serves `dir/www` over HTTP on INTERNET:8080 in the internet namespace (blocklists, pages), once listening. */
export async function startFixtureHttp(lab: Lab, internetNs: string, dir: string): Promise<void> {
  lab.daemon("http", internetNs, process.execPath, [
    path.join(__dirname, "fixture-http.js"),
    INTERNET,
    "8080",
    path.join(dir, "www"),
  ]);
  await waitFor(async () => lab.daemonOutput("http").includes("listening"), 5000, "fixture http server");
}

/** The hub's and the internet's IPv6 ends of the same link (a provider's network, seen from the hub). */
export const INTERNET6_HUB = "2001:db8:ffff::1";
export const INTERNET6 = "2001:db8:ffff::2";

/**
 * IPv6 on the hub–internet link: both ends' addresses, the hub's default route through the internet (the agent
 * finds its internet interface by that route), and in the internet the routes a provider keeps to the hub:
 * `routed` prefixes and addresses (Linode's range, DigitalOcean's reserved IPv6) point at the hub's link
 * address. `onLink` prefixes are put on the internet's end of the link as a connected /64 (Vultr), so the
 * internet asks for each address by neighbour discovery and only the hub's proxy answers.
 */
export async function linkInternetIpv6(
  lab: Lab,
  hubNs: string,
  internetNs: string,
  opts: { routed?: readonly string[]; onLink?: readonly { prefix: string; internet: string; hub: string }[] },
): Promise<void> {
  const [hubIf, inetIf] = [`vhi${lab.tag}`, `vi${lab.tag}`];
  await lab.exec(hubNs, "ip", ["-6", "addr", "add", `${INTERNET6_HUB}/64`, "dev", hubIf, "nodad"]);
  await lab.exec(internetNs, "ip", ["-6", "addr", "add", `${INTERNET6}/64`, "dev", inetIf, "nodad"]);
  await lab.exec(hubNs, "ip", ["-6", "route", "add", "default", "via", INTERNET6, "dev", hubIf]);
  for (const r of opts.routed ?? [])
    await lab.exec(internetNs, "ip", ["-6", "route", "add", r, "via", INTERNET6_HUB, "dev", inetIf]);
  for (const l of opts.onLink ?? []) {
    const bits = l.prefix.split("/")[1];
    await lab.exec(internetNs, "ip", ["-6", "addr", "add", `${l.internet}/${bits}`, "dev", inetIf, "nodad"]);
    await lab.exec(hubNs, "ip", ["-6", "addr", "add", `${l.hub}/${bits}`, "dev", hubIf, "nodad"]);
  }
}

/** A /whoami server (fixture-http.js) on `host:port` in `ns`, once listening; `name` tells daemons apart. */
export async function startWhoami(
  lab: Lab,
  ns: string,
  host: string,
  port: number,
  dir: string,
  name: string,
): Promise<void> {
  lab.daemon(name, ns, process.execPath, [path.join(__dirname, "fixture-http.js"), host, String(port), dir]);
  await waitFor(async () => lab.daemonOutput(name).includes("listening"), 5000, name);
}
