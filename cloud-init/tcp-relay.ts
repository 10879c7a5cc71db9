/**
 * The TCP path's service (agent/src/tcp-relay/): the agent bundle's `tcp serve` as its own system user, which
 * may bind the public port (CAP_NET_BIND_SERVICE) and nothing else. It starts with no key; ExecStartPost, as
 * root (`+`), pushes the saved state's keys over the control socket in its runtime directory, so a restarted
 * relay never serves older keys than the last apply. The nftables output chain holds this user to what devices
 * may reach (agent/src/tcp-relay/nft.ts), which is why the user exists before the agent's first apply.
 */
import { LAYOUT } from "../model/layout";
import type { UnitFile } from "./units";

const header = "# Managed by CloudPal; do not edit.";

/** systemd-sysusers creates the user (no home, no shell, no password) when the bootstrap runs it. */
export function tcpRelaySysusers(): UnitFile {
  return {
    path: `/etc/sysusers.d/${LAYOUT.tcpRelay.user}.conf`,
    content: `${header}\nu ${LAYOUT.tcpRelay.user} - "CloudPal TCP path relay" / /usr/sbin/nologin\n`,
  };
}

export function tcpRelayUnit(): UnitFile {
  const runtime = LAYOUT.tcpRelay.runtimeDir.replace(/^\/run\//, "");
  return {
    path: `/etc/systemd/system/${LAYOUT.tcpRelay.unit}`,
    content: `${header}
[Unit]
Description=CloudPal: TCP path relay (Shadowsocks, one key per device)
After=network-online.target nftables.service unbound.service ${LAYOUT.units.agent}
Wants=network-online.target
RequiresMountsFor=${LAYOUT.stateDir}
StartLimitIntervalSec=0

[Service]
Type=simple
User=${LAYOUT.tcpRelay.user}
Group=${LAYOUT.tcpRelay.user}
RuntimeDirectory=${runtime}
RuntimeDirectoryMode=0700
Environment=MALLOC_ARENA_MAX=2
ExecStart=/usr/bin/node --max-old-space-size=128 ${LAYOUT.agentBundle} tcp serve
ExecStartPost=+${LAYOUT.agentBin} tcp push
Restart=always
RestartSec=2
MemoryMax=256M
AmbientCapabilities=CAP_NET_BIND_SERVICE
CapabilityBoundingSet=CAP_NET_BIND_SERVICE
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6

[Install]
WantedBy=multi-user.target
`,
  };
}
