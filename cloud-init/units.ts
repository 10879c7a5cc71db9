/**
 * systemd units for the hub. The bootstrap (cloud-init, or the same script on an existing server) writes them
 * once; they only name commands of the agent, so they never change when the desired state changes.
 */
import { LAYOUT } from "../model/layout";

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

export function agentUnits(): UnitFile[] {
  return [
    {
      path: `/etc/systemd/system/${LAYOUT.units.agent}`,
      content: `${header}
[Unit]
Description=CloudPal agent: re-apply the persisted hub state at boot
After=network-online.target nftables.service unbound.service
Wants=network-online.target
ConditionPathExists=${LAYOUT.stateFile}

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=${LAYOUT.agentBin} reconcile

[Install]
WantedBy=multi-user.target
`,
    },
    {
      path: `/etc/systemd/system/${LAYOUT.units.blocklists}`,
      content: `${header}
[Unit]
Description=CloudPal: refresh DNS blocklists
After=network-online.target unbound.service
Wants=network-online.target
ConditionPathExists=${LAYOUT.stateFile}

[Service]
Type=oneshot
ExecStart=${LAYOUT.agentBin} blocklists refresh
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
ReadWritePaths=${LAYOUT.stateDir} /etc/unbound/unbound.conf.d /run/unbound
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
  ];
}
