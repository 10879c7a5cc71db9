/**
 * systemd units for the hub. The bootstrap (cloud-init, or the same script on an existing server) writes them
 * once; they only name commands of the agent, so they never change when the desired state changes.
 */
import { DNS_FILTER_NODE_FLAGS, DNS_MEMORY_SHARE, LAYOUT, REFRESH_NODE_OPTIONS } from "../model/layout";
import { NAT64, nat64TunCommands } from "../model/nat64";

export interface UnitFile {
  readonly path: string;
  readonly content: string;
}

const header = "# Managed by CloudPal; do not edit.";

/** The `cloudpal-agent` command on PATH: runs the bundle with the distribution's Node.js. */
export const AGENT_WRAPPER = `#!/bin/sh
${header}
exec /usr/bin/node ${LAYOUT.agentBundle} "$@"
`;

/**
 * Mounts the provider's volume (found by its filesystem label) on the state directory. `nofail`: a volume that
 * is missing or late never holds up boot, so sshd comes up and the operator can repair it; systemd then does not
 * order the mount before local-fs.target (systemd src/core/mount.c, mount_is_nofail reads the unit's Options=).
 * The agent's units RequiresMountsFor= the directory, and the agent itself refuses to write a key while it is
 * not mounted (agent/src/secret-storage.ts), so the keys never fall through to the root disk underneath.
 */
export function stateMountUnit(): UnitFile {
  const volume = LAYOUT.stateVolume;
  return {
    path: `/etc/systemd/system/${volume.mountUnit}`,
    content: `${header}
[Unit]
Description=CloudPal: the hub's keys on the provider's encrypted volume

[Mount]
What=/dev/disk/by-label/${volume.label}
Where=${LAYOUT.stateDir}
Type=${volume.fsType}
Options=nofail,nodev,nosuid,noexec,noatime
DirectoryMode=0700

[Install]
WantedBy=local-fs.target
`,
  };
}

export function agentUnits(): UnitFile[] {
  return [
    {
      path: `/etc/systemd/system/${LAYOUT.units.agent}`,
      content: `${header}
[Unit]
Description=CloudPal agent: re-apply the persisted hub state at boot
After=network-online.target nftables.service unbound.service
Wants=network-online.target
# Where the state is on a volume, the agent waits for its mount and does not start without it.
RequiresMountsFor=${LAYOUT.stateDir}
ConditionPathExists=${LAYOUT.stateFile}

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=${LAYOUT.agentBin} reconcile

[Install]
WantedBy=multi-user.target
`,
    },
    // Endpoint discovery for direct connections (agent/src/discovery.ts): it waits for the state and the tunnel
    // address itself, so it starts at boot before either exists. Root: it reads the state (0600) and `wg show`.
    {
      path: `/etc/systemd/system/${LAYOUT.units.discovery}`,
      content: `${header}
[Unit]
Description=CloudPal: endpoint discovery for direct connections between devices
After=network-online.target ${LAYOUT.units.agent}
Wants=network-online.target
RequiresMountsFor=${LAYOUT.stateDir}
StartLimitIntervalSec=0

[Service]
ExecStart=${LAYOUT.agentBin} discovery
Restart=always
RestartSec=5
MemoryMax=128M
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
ReadWritePaths=${LAYOUT.stateDir}

[Install]
WantedBy=multi-user.target
`,
    },
    // Bounded whatever a list host sends: 64 sources of 60 s each at most (TimeoutStartSec), and the agent's
    // memory below half the hub's (MemoryMax; the entry cap, agent/src/blocklist.ts maxBlocklistEntries, keeps a
    // refresh near a quarter of it). systemd kills a run past either; the last good copies stay loaded.
    // As root, sandboxed: the same run reads the state (0600, it holds the keys) and reloads unbound through its
    // root-only control key, so the download cannot drop to a user of its own without splitting the command.
    {
      path: `/etc/systemd/system/${LAYOUT.units.blocklists}`,
      content: `${header}
[Unit]
Description=CloudPal: refresh DNS blocklists
After=network-online.target unbound.service
Wants=network-online.target
RequiresMountsFor=${LAYOUT.stateDir}
ConditionPathExists=${LAYOUT.stateFile}

[Service]
Type=oneshot
Environment=MALLOC_ARENA_MAX=2 NODE_OPTIONS=${REFRESH_NODE_OPTIONS}
ExecStart=${LAYOUT.agentBin} blocklists refresh
TimeoutStartSec=20min
MemoryMax=50%
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
ReadWritePaths=${LAYOUT.stateDir} /etc/unbound/unbound.conf.d
`,
    },
    // The DNS filter (agent/src/dns-filter.ts). The redirect of the tunnel's DNS to it is added once it answers
    // (ExecStartPost waits for that) and removed whenever it stops, crash included (ExecStopPost), so unbound
    // answers directly while it is down: never no DNS. Restarted forever; before the first apply it has no
    // state to serve and exits, to be started again. MALLOC_ARENA_MAX and the heap cap keep Node's RSS flat
    // across table swaps. MemoryMax is DNS_MEMORY_SHARE of the hub's memory, the share the entry cap gives all
    // DNS processes (agent/src/blocklist.ts maxBlocklistEntries): a fixed 160M would kill the filter while it swaps in a
    // list the cap allows on a 1 GB hub (6 million names: 2 x 48 MB of table over ~70 MiB of Node).
    // It runs as root for its 0600 files but keeps one capability, CAP_NET_ADMIN (also for ExecStartPost and
    // ExecStopPost): enough to change the per-group site sets (agent/src/site-policy.ts) and the redirect; its
    // port is above 1024. test/e2e/netns-site-policy.test.ts runs it under the same bounding set (setpriv).
    {
      path: `/etc/systemd/system/${LAYOUT.units.dnsFilter}`,
      content: `${header}
[Unit]
Description=CloudPal: DNS filter before unbound
After=network-online.target nftables.service unbound.service ${LAYOUT.units.agent}
Wants=unbound.service
# Debian's nftables.service flushes the whole ruleset when it stops, the redirect and the per-group site sets
# with it: stopped and restarted with it (PartOf), and started with it (WantedBy below), the filter adds them
# again (ExecStartPost, and the sets as it starts).
PartOf=nftables.service
# Its table is in the state directory, on the state volume where there is one.
RequiresMountsFor=${LAYOUT.stateDir}
StartLimitIntervalSec=0

[Service]
Type=simple
Environment=MALLOC_ARENA_MAX=2
ExecStart=/usr/bin/node ${DNS_FILTER_NODE_FLAGS.join(" ")} ${LAYOUT.agentBundle} dns-filter serve
ExecStartPost=${LAYOUT.agentBin} dns-filter redirect on
ExecStopPost=${LAYOUT.agentBin} dns-filter redirect off
Restart=always
RestartSec=2
MemoryMax=${Math.round(DNS_MEMORY_SHARE * 100)}%
CapabilityBoundingSet=CAP_NET_ADMIN
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes

[Install]
WantedBy=multi-user.target nftables.service
`,
    },
    {
      path: `/etc/systemd/system/${LAYOUT.units.blocklistsTimer}`,
      content: `${header}
[Unit]
Description=CloudPal: refresh DNS blocklists daily, at a random time

[Timer]
OnBootSec=10min
OnUnitActiveSec=1d
RandomizedDelaySec=2h
Persistent=true

[Install]
WantedBy=timers.target
`,
    },
    // The public-IPv6 session watcher (agent/src/session-watch.ts): one `wg show dump` a second while a device
    // uses "session", nothing else otherwise. It reloads the firewall table, so it runs as root like `apply`.
    {
      path: `/etc/systemd/system/${LAYOUT.units.sessions}`,
      content: `${header}
[Unit]
Description=CloudPal: a new public IPv6 for each device session
After=${LAYOUT.units.agent}
RequiresMountsFor=${LAYOUT.stateDir}

[Service]
Type=simple
ExecStart=${LAYOUT.agentBin} sessions watch
Restart=always
RestartSec=5
MemoryMax=96M

[Install]
WantedBy=multi-user.target
`,
    },
    ...nat64Units(),
  ];
}

/**
 * NAT64 and DNS64 for devices with `nat64` (model/nat64.ts). Not enabled here: the agent writes their configs,
 * enables and starts them while some device has nat64, and stops, disables and removes them when none has
 * (agent/src/nat64.ts); without a config they do not start (ConditionPathExists). Debian's own tayga package
 * installs its SysV script disabled (only K01tayga links in /etc/rc?.d) and never runs with this config.
 * - The translator: tayga on its TUN device, made persistent first (`--mktun`) so the host side can be set up
 *   before it runs (tayga(8)); root, for the TUN device, but with no capability other than CAP_NET_ADMIN.
 * - The DNS64 resolver: a second unbound (a server-wide module, see model/nat64.ts), which drops to the
 *   unbound user itself after binding its sockets.
 */
function nat64Units(): UnitFile[] {
  const conf = NAT64.files.tayga;
  const tunSetup = nat64TunCommands()
    .map((args) => `ExecStartPre=/usr/bin/ip ${args.join(" ")}`)
    .join("\n");
  const sandbox = `NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
ProtectKernelTunables=yes
ProtectControlGroups=yes`;
  return [
    {
      path: `/etc/systemd/system/${NAT64.units.translator}`,
      content: `${header}
[Unit]
Description=CloudPal: NAT64 translator (tayga) for IPv6-only devices
After=network-online.target ${LAYOUT.units.agent}
Wants=network-online.target
RequiresMountsFor=${LAYOUT.stateDir}
ConditionPathExists=${conf}
StartLimitIntervalSec=0

[Service]
Type=simple
StateDirectory=${NAT64.dataDir.replace(/^\/var\/lib\//, "")}
StateDirectoryMode=0700
ExecStartPre=/usr/sbin/tayga --mktun --config ${conf}
${tunSetup}
ExecStart=/usr/sbin/tayga --nodetach --config ${conf}
ExecStopPost=-/usr/sbin/tayga --rmtun --config ${conf}
Restart=always
RestartSec=2
MemoryMax=32M
CapabilityBoundingSet=CAP_NET_ADMIN
${sandbox}

[Install]
WantedBy=multi-user.target
`,
    },
    {
      path: `/etc/systemd/system/${NAT64.units.dns64}`,
      content: `${header}
[Unit]
Description=CloudPal: DNS64 resolver for IPv6-only devices
After=network-online.target unbound.service ${LAYOUT.units.agent}
Wants=network-online.target
RequiresMountsFor=${LAYOUT.stateDir}
ConditionPathExists=${NAT64.files.dns64}
StartLimitIntervalSec=0

[Service]
Type=simple
ExecStart=/usr/sbin/unbound -d -p -c ${NAT64.files.dns64}
Restart=always
RestartSec=2
MemoryMax=64M
CapabilityBoundingSet=CAP_SETUID CAP_SETGID CAP_NET_BIND_SERVICE
${sandbox}

[Install]
WantedBy=multi-user.target
`,
    },
  ];
}
