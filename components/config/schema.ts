/**
 * The JSON Schema of the `cloudpal:` stack config: shapes, types and formats. Checks that need more than
 * one field (overlaps, references, allocation) live in checks.ts.
 *
 * Each property may carry `fix`: the tail of the sentence shown when that property's value is wrong
 * ("is not a WireGuard public key: expected … Generate one with …"). ajv errors are translated into such
 * sentences in messages.ts, never shown raw.
 */
import {
  DOMAIN_PATTERN,
  NAME_FIX as NAME_RULE,
  NAME_PATTERN,
  SSH_KEY_TYPES,
  USER_NAME_PATTERN,
  WIREGUARD_KEY_PATTERN as WG_KEY_PATTERN,
} from "../../model/rules";
import { CATALOG, IMAGE_FAMILIES, PROVIDERS, type CloudProvider } from "../catalog";
import { DEFAULTS } from "./defaults";

// The agent validates the state it receives, and the bootstrap its spec, with the same rules (model/rules.ts),
// so a name, domain or user the config accepts can never be refused later.
const NAME_FIX = `is not a valid name: ${NAME_RULE}`;
// The reserved names are refused by checks.ts, with the same words as the bootstrap's validator.
const USER_FIX =
  "is not a valid user name: start with a lower-case letter, then up to 31 lower-case letters, digits, '_' or '-'";
const DOMAIN_FIX =
  "is not a domain name: write it in lower case without a scheme or path, e.g. 'example.com'";
const CIDR_V4_OR_V6 = "^[0-9a-fA-F.:]+/[0-9]{1,3}$";

const port = (what: string, fix: string) => ({
  type: "integer",
  minimum: 1,
  maximum: 65535,
  description: what,
  fix,
});

/** Region slugs depend on the provider, so the schema checks them per provider with if/then. */
const regionPerProvider = (Object.keys(CATALOG) as CloudProvider[]).map((provider) => ({
  if: { properties: { provider: { const: provider } }, required: ["provider"] },
  then: {
    properties: {
      region: {
        enum: CATALOG[provider].regions,
        fix: `is not a ${CATALOG[provider].title} region: use one of ${CATALOG[provider].regions.join(", ")}`,
      },
    },
  },
}));

export const CONFIG_SCHEMA = {
  type: "object",
  additionalProperties: false,
  required: ["provider", "sshPublicKeys", "sshAllowedCidrs"],
  allOf: regionPerProvider,
  properties: {
    provider: {
      enum: PROVIDERS,
      missing: `set it to ${PROVIDERS.map((p) => `"${p}"`).join(", ")}`,
      description: "Where the hub runs.",
      fix: `is not a supported provider: use one of ${PROVIDERS.map((p) => `"${p}"`).join(", ")}`,
    },
    region: {
      type: "string",
      description: "Provider region slug, e.g. fra1 (DigitalOcean), eu-central (Linode), fra (Vultr).",
      fix: "is not a region slug: see components/catalog.ts for each provider's list",
    },
    size: {
      type: "string",
      pattern: "^[a-z0-9][a-z0-9.-]*$",
      description: "Provider size/plan slug, e.g. s-1vcpu-512mb-10gb, g6-nanode-1, vc2-1c-1gb.",
      fix: "is not a size slug: use the provider's slug as its API lists it, e.g. 's-1vcpu-512mb-10gb'",
    },
    image: {
      enum: IMAGE_FAMILIES,
      description: "Operating system family.",
      fix: `is not a supported image: use ${IMAGE_FAMILIES.map((i) => `"${i}"`).join(" or ")}`,
    },
    existing: {
      type: "object",
      additionalProperties: false,
      required: ["host", "user", "hostKey"],
      description: "The server to use when provider is existing; its SSH port is 'sshPort'.",
      properties: {
        host: {
          type: "string",
          minLength: 1,
          pattern: "^[A-Za-z0-9.:-]+$",
          description: "IP address or DNS name of the server.",
          missing: "set it to the server's IP address or DNS name",
          fix: "is not a host: use the server's IP address or DNS name",
        },
        user: {
          type: "string",
          pattern: USER_NAME_PATTERN,
          description:
            "User to log in as; needs passwordless sudo. Not root: the bootstrap turns root login off.",
          missing:
            "set it to a user with passwordless sudo and your SSH key (not root: CloudPal turns root login off)",
          fix: USER_FIX,
        },
        // Delivery pins it (pulumi-command `hostKey`) so the keys are sent to this server only, never to
        // whatever answers at the address; sshd is set to offer the ed25519 key alone (cloud-init/ssh.ts).
        hostKey: {
          type: "string",
          pattern: "^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI[A-Za-z0-9+/]{43}( [^\\n]*)?$",
          description:
            "The server's SSH host key, the line in /etc/ssh/ssh_host_ed25519_key.pub; delivery talks to no other.",
          missing:
            "set it to the server's ed25519 host key, read on its console (not over the network) with 'cat /etc/ssh/ssh_host_ed25519_key.pub'",
          fix: "is not an ed25519 public key line: paste the whole line 'cat /etc/ssh/ssh_host_ed25519_key.pub' prints on the server's console",
        },
        ipv6Prefix: {
          type: "string",
          pattern: "^[0-9a-f:]+/[0-9]{1,3}$",
          description:
            "A global IPv6 prefix (/32 to /64) that reaches the server, for devices' global addresses; absent: devices use ULA behind NAT66.",
          fix: "is not an IPv6 prefix: write the prefix your provider routes to the server, like '2001:db8:1:2::/64'",
        },
        ipv6OnLink: {
          type: "boolean",
          description:
            "true when 'ipv6Prefix' is on the server's link rather than routed to it (the hub then answers neighbour discovery).",
          fix: "must be true or false",
        },
      },
    },
    hostname: {
      type: "string",
      pattern: NAME_PATTERN,
      description: "The hub's host name.",
      fix: NAME_FIX,
    },
    sshPublicKeys: {
      type: "array",
      minItems: 1,
      items: {
        type: "string",
        pattern: `^(${SSH_KEY_TYPES.map((t) => t.replace(/\./g, "\\.")).join("|")}) [A-Za-z0-9+/]+={0,3}( [^\\n]*)?$`,
        fix: "is not an SSH public key: paste one line of your '~/.ssh/id_ed25519.pub' (create it with 'ssh-keygen -t ed25519')",
      },
      description: "OpenSSH public keys of the operator.",
      missing: "paste the line from '~/.ssh/id_ed25519.pub' (create it with 'ssh-keygen -t ed25519')",
      fix: "must list at least one SSH public key: paste the line from '~/.ssh/id_ed25519.pub'",
    },
    sshAllowedCidrs: {
      type: "array",
      minItems: 1,
      items: {
        type: "string",
        pattern: CIDR_V4_OR_V6,
        fix: "is not a CIDR: write an address with a prefix length, e.g. '203.0.113.7/32'",
      },
      description: "Where SSH may come from (the machine that runs pulumi up).",
      missing:
        "list where you run 'pulumi up' from, e.g. [\"203.0.113.7/32\"] (find your address with 'curl -4 https://ifconfig.me'); SSH stays closed to everyone else",
      fix: "must list where you run 'pulumi up' from, e.g. [\"203.0.113.7/32\"] (find your address with 'curl -4 https://ifconfig.me')",
    },
    allowWorldSsh: {
      type: "boolean",
      description: "Explicitly allow 0.0.0.0/0 or ::/0 in sshAllowedCidrs.",
      fix: "must be true or false",
    },
    sshPort: port(
      "SSH port on the hub.",
      `is not a port: use a number from 1 to 65535 (default ${DEFAULTS.sshPort})`,
    ),
    operatorUser: {
      type: "string",
      pattern: USER_NAME_PATTERN,
      description: "Login user created on the hub.",
      fix: USER_FIX,
    },
    wireguardPort: port(
      "WireGuard UDP port.",
      `is not a port: use a number from 1 to 65535 (default ${DEFAULTS.wireguardPort})`,
    ),
    wireguardExtraPorts: {
      type: "array",
      // Each port is one more rule in every provider firewall (Linode allows 25 per firewall, inbound and
      // outbound together: Linode API v4, Firewall "rules"); 8 leaves room for SSH, WireGuard and the rest.
      maxItems: 8,
      items: port(
        "A UDP port the hub's WireGuard also answers on.",
        "is not a port: use a number from 1 to 65535, e.g. 443",
      ),
      description:
        "UDP ports the hub's WireGuard also answers on (redirected to wireguardPort), for networks that block other UDP.",
      fix: `must be a list of at most 8 UDP ports, e.g. [${DEFAULTS.wireguardExtraPorts.join(", ")}] (the default), or [] for none`,
    },
    tcpPath: {
      type: "boolean",
      description:
        "Serve the TCP path (Shadowsocks, one key per device) for networks that let only TCP 443 out.",
      fix: `must be true or false (default ${DEFAULTS.tcpPath})`,
    },
    tcpPort: port(
      "Public TCP port of the TCP path.",
      `is not a port: use a number from 1 to 65535 (default ${DEFAULTS.tcpPort})`,
    ),
    ipv4Subnet: {
      type: "string",
      pattern: "^[0-9.]+/[0-9]{1,2}$",
      description: "Private IPv4 subnet of the tunnel network.",
      fix: "is not an IPv4 subnet: write it like '10.77.0.0/16'",
    },
    ipv6Prefix: {
      type: "string",
      pattern: "^[0-9a-fA-F:]+/[0-9]{1,3}$",
      description: "Private IPv6 ULA prefix of the tunnel network.",
      fix: "is not an IPv6 prefix: write a ULA prefix like 'fd7a:c10d:9a1::/64'",
    },
    peers: {
      type: "array",
      description: "Devices.",
      items: {
        type: "object",
        additionalProperties: false,
        required: ["name"],
        properties: {
          name: {
            type: "string",
            pattern: NAME_PATTERN,
            fix: NAME_FIX,
            missing: "give the device a name such as 'laptop'",
          },
          publicKey: {
            type: "string",
            pattern: WG_KEY_PATTERN,
            fix: "is not a WireGuard public key: expected 44 base64 characters ending in '='. Generate one with 'wg genkey | wg pubkey'",
          },
          group: { type: "string", pattern: NAME_PATTERN, fix: NAME_FIX },
          address: {
            type: "string",
            pattern: "^[0-9]{1,3}(\\.[0-9]{1,3}){3}$",
            fix: "is not an IPv4 address: write it like '10.77.0.23', or remove it to derive one from the name",
          },
          publicIpv6: {
            enum: ["off", "session", "per-site"],
            fix: "is not a public IPv6 mode: use 'off' (the hub's address), 'session' (a new address per session) or 'per-site' (an address per destination)",
          },
          nat64: {
            type: "boolean",
            description:
              "An IPv6-only device: the hub answers its DNS with DNS64 and translates 64:ff9b::/96 to IPv4 (NAT64). Never for dual-stack devices.",
            fix: "must be true (an IPv6-only device: DNS64 and NAT64) or false",
          },
        },
      },
    },
    groups: {
      type: "object",
      description: "Groups of peers and what they may reach.",
      propertyNames: { pattern: NAME_PATTERN },
      fix: NAME_FIX,
      additionalProperties: {
        type: "object",
        additionalProperties: false,
        properties: {
          reaches: { type: "array", items: { type: "string", pattern: NAME_PATTERN, fix: NAME_FIX } },
          internet: { type: "boolean", fix: "must be true or false" },
          encryptedDns: {
            enum: ["allow", "block"],
            fix: `is not an encrypted-DNS choice: use "block" (default: DNS-over-TLS and known DNS-over-HTTPS resolvers refused, so devices use the hub's filter) or "allow"`,
          },
          blocklists: {
            type: "array",
            items: {
              type: "string",
              pattern: "^https://[^\\s]+$",
              fix: "is not an https URL: blocklists are fetched over https only, e.g. 'https://example.org/adult.txt'",
            },
          },
          allow: { type: "array", items: { type: "string", pattern: DOMAIN_PATTERN, fix: DOMAIN_FIX } },
          deny: { type: "array", items: { type: "string", pattern: DOMAIN_PATTERN, fix: DOMAIN_FIX } },
          sites: {
            enum: ["open", "deny", "allow-list"],
            fix: `is not a site mode: use "open" (default: every site, the group's lists act in DNS), "deny" (the group's 'deny' sites also dropped by address) or "allow-list" (only the group's 'allow' sites)`,
          },
        },
      },
    },
    dns: {
      type: "object",
      additionalProperties: false,
      description: "Private DNS filter.",
      properties: {
        blocklists: {
          type: "array",
          items: {
            type: "string",
            pattern: "^https://[^\\s]+$",
            fix: "is not an https URL: blocklists are fetched over https only, e.g. 'https://example.org/hosts.txt'",
          },
        },
        allow: { type: "array", items: { type: "string", pattern: DOMAIN_PATTERN, fix: DOMAIN_FIX } },
        deny: { type: "array", items: { type: "string", pattern: DOMAIN_PATTERN, fix: DOMAIN_FIX } },
        upstreams: {
          type: "array",
          minItems: 1,
          fix: "must list at least one DNS-over-TLS resolver, or be left out to use Quad9 and Cloudflare",
          items: {
            type: "object",
            additionalProperties: false,
            required: ["address", "tlsName"],
            properties: {
              address: {
                type: "string",
                pattern: "^[0-9a-fA-F.:]+$",
                fix: "is not an IP address: DNS-over-TLS needs the resolver's IP, e.g. '9.9.9.9'",
                missing: "set the resolver's IP address, e.g. '9.9.9.9'",
              },
              tlsName: {
                type: "string",
                pattern: DOMAIN_PATTERN,
                fix: "is not a TLS name: use the name on the resolver's certificate, e.g. 'dns.quad9.net'",
                missing: "set the name on the resolver's certificate, e.g. 'dns.quad9.net'",
              },
              port: port("DNS-over-TLS port.", "is not a port: DNS-over-TLS uses 853"),
            },
          },
        },
        dnssec: { type: "boolean", fix: "must be true or false" },
        queryLog: { type: "boolean", fix: "must be true or false" },
      },
    },
    firewallMode: {
      enum: ["vpn", "mesh-only"],
      description: "vpn: full tunnel plus mesh; mesh-only: the hub forwards nothing to the internet.",
      fix: `is not a firewall mode: use "vpn" or "mesh-only"`,
    },
    endpointHostname: {
      type: "string",
      pattern: DOMAIN_PATTERN,
      description: "DNS name devices use to reach the hub.",
      fix: "is not a host name: use a DNS name you control, e.g. 'vpn.example.com'",
    },
    backups: {
      type: "boolean",
      description: "Provider backups (off: your data stays off the provider's backup systems).",
      fix: "must be true or false",
    },
    linodeReservedIpv4: {
      type: "boolean",
      description:
        "Linode only: the account has IP reservation, so the hub keeps one IPv4 across rebuilds (off: set endpointHostname).",
      fix: "must be true or false",
    },
    autoReboot: {
      type: "object",
      additionalProperties: false,
      description: "Reboot after unattended security upgrades that need it.",
      properties: {
        enabled: { type: "boolean", fix: "must be true or false" },
        time: {
          type: "string",
          pattern: "^([01][0-9]|2[0-3]):[0-5][0-9]$",
          fix: "is not a time: write it as HH:MM in UTC, e.g. '04:00'",
        },
      },
    },
    persistentKeepalive: {
      type: "integer",
      minimum: 0,
      maximum: 65535,
      description: "Seconds between keepalives from devices (0 turns them off).",
      fix: `is not a keepalive interval: use seconds from 0 to 65535 (default ${DEFAULTS.persistentKeepalive})`,
    },
    ipv6DeviceAddresses: {
      type: "boolean",
      description:
        "Give devices a global IPv6 from the hub's prefix (Linode, Vultr, existing.ipv6Prefix); on Linode and Vultr a rebuild changes it, and the device configs with it.",
      fix: `must be true or false (default ${DEFAULTS.ipv6DeviceAddresses})`,
    },
    ipv6SessionIdle: {
      type: "integer",
      // Above WireGuard's re-handshake every 120 s (plus its 5 s timeout and jitter) while a tunnel carries
      // traffic, so an active device never looks silent.
      minimum: 180,
      maximum: 86400,
      description:
        "Seconds a 'session' device must be silent before its next handshake gives it a new public IPv6.",
      fix: `is not a session idle time: use seconds from 180 to 86400 (default ${DEFAULTS.ipv6SessionIdle})`,
    },
  },
} as const;

/** Top-level keys, in schema order: Pulumi.yaml declares exactly these (tested). */
export const CONFIG_KEYS = Object.keys(CONFIG_SCHEMA.properties) as readonly string[];
