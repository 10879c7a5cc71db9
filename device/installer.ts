/**
 * The device installer that `npm run device -- NAME --helper --out FILE` writes: one POSIX shell script, run
 * once as root on a Linux or macOS device (`sudo sh FILE`). It holds the device's WireGuard config (with its
 * private key: the file is written 0600) and the helper bundle, and installs:
 *
 * - /etc/wireguard/cloudpal.conf (0600), brought up by wg-quick (systemd `wg-quick@cloudpal` on Linux, the
 *   helper's launchd job on macOS);
 * - /usr/local/lib/cloudpal/cloudpal-helper.js and /usr/local/bin/cloudpal-helper (`cloudpal-helper status`);
 * - a service that runs the helper after the tunnel: systemd `cloudpal-helper.service`, or launchd
 *   `net.cloudpal.helper`.
 *
 * Needs wireguard-tools (wg, wg-quick) and Node.js 18 or later; it checks both first and says what to install.
 * CLOUDPAL_INSTALL_ROOT (a directory) and CLOUDPAL_NO_SERVICE=1 install the files only, under that root (tests).
 */

export const TUNNEL_NAME = "cloudpal";

export class InstallerError extends Error {}

/** The hub's tunnel IPv4 (the config's first DNS server) and public key (the [Peer] section's). */
export function hubOfConfig(config: string): { hubV4: string; hubKey: string } {
  const dns = /^DNS\s*=\s*([0-9.]+)/m.exec(config)?.[1];
  const key = /\[Peer\][^[]*?^PublicKey\s*=\s*([A-Za-z0-9+/]{43}=)/ms.exec(config)?.[1];
  if (dns === undefined || key === undefined)
    throw new InstallerError(
      "the device config has no 'DNS =' IPv4 or no [Peer] PublicKey: re-run 'pulumi up'.",
    );
  return { hubV4: dns, hubKey: key };
}

function heredoc(marker: string, text: string): string {
  if (text.split("\n").includes(marker))
    throw new InstallerError(`the text contains the heredoc marker ${marker}`);
  return `<<'${marker}'\n${text.endsWith("\n") ? text : text + "\n"}${marker}`;
}

export function renderInstaller(name: string, config: string, helperCode: string): string {
  const { hubV4, hubKey } = hubOfConfig(config);
  if (!/^PrivateKey\s*=\s*[A-Za-z0-9+/]{43}=\s*$/m.test(config))
    throw new InstallerError(
      `device ${JSON.stringify(name)} made its own key: the stack has no private key to put in its installer; write it into the installer's 'PrivateKey =' line on the device.`,
    );
  const helperB64 = Buffer.from(helperCode, "utf8")
    .toString("base64")
    .replace(/(.{76})/g, "$1\n");
  const args = `run --interface ${TUNNEL_NAME} --hub ${hubV4} --hub-key ${hubKey}`;
  return `#!/bin/sh
# CloudPal device installer for "${name}": the WireGuard config and the direct-connection helper.
# Holds the device's private key: keep it 0600 and delete it after installing. Run as root: sudo sh <this file>
set -eu
umask 077
ROOT="\${CLOUDPAL_INSTALL_ROOT:-}"
PATH="$PATH:/usr/local/bin:/opt/homebrew/bin"
need() { command -v "$1" >/dev/null 2>&1 || { echo "cloudpal: '$1' is missing: $2" >&2; exit 1; }; }
need wg "install wireguard-tools (Debian/Ubuntu: apt install wireguard-tools; macOS: brew install wireguard-tools)"
need node "install Node.js 18 or later (Debian/Ubuntu: apt install nodejs; macOS: brew install node)"
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)' || {
  echo "cloudpal: Node.js $(node --version) is too old: the helper needs 18 or later" >&2; exit 1; }
if [ -z "$ROOT" ] && [ "$(id -u)" != 0 ]; then echo "cloudpal: run as root: sudo sh $0" >&2; exit 1; fi

mkdir -p "$ROOT/etc/wireguard" "$ROOT/usr/local/lib/cloudpal" "$ROOT/usr/local/bin"
cat > "$ROOT/etc/wireguard/${TUNNEL_NAME}.conf.tmp" ${heredoc("CLOUDPAL_CONFIG_END", config)}
mv "$ROOT/etc/wireguard/${TUNNEL_NAME}.conf.tmp" "$ROOT/etc/wireguard/${TUNNEL_NAME}.conf"
umask 022
node -e 'process.stdout.write(Buffer.from(require("fs").readFileSync(0, "utf8"), "base64"))' \\
  > "$ROOT/usr/local/lib/cloudpal/cloudpal-helper.js.tmp" ${heredoc("CLOUDPAL_HELPER_END", helperB64)}
mv "$ROOT/usr/local/lib/cloudpal/cloudpal-helper.js.tmp" "$ROOT/usr/local/lib/cloudpal/cloudpal-helper.js"
cat > "$ROOT/usr/local/bin/cloudpal-helper" <<'CLOUDPAL_WRAPPER_END'
#!/bin/sh
exec node /usr/local/lib/cloudpal/cloudpal-helper.js "$@"
CLOUDPAL_WRAPPER_END
chmod 0755 "$ROOT/usr/local/bin/cloudpal-helper"
[ "\${CLOUDPAL_NO_SERVICE:-}" = 1 ] && { echo "cloudpal: files installed under $ROOT (no service)"; exit 0; }

case "$(uname -s)" in
Linux)
  cat > /etc/systemd/system/cloudpal-helper.service <<'CLOUDPAL_UNIT_END'
[Unit]
Description=CloudPal direct connections (device helper)
Requires=wg-quick@${TUNNEL_NAME}.service
After=wg-quick@${TUNNEL_NAME}.service

[Service]
ExecStart=/usr/local/bin/cloudpal-helper ${args}
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
CLOUDPAL_UNIT_END
  systemctl daemon-reload
  systemctl enable --now wg-quick@${TUNNEL_NAME}.service cloudpal-helper.service
  ;;
Darwin)
  cat > /Library/LaunchDaemons/net.cloudpal.helper.plist <<'CLOUDPAL_PLIST_END'
<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict>
  <key>Label</key><string>net.cloudpal.helper</string>
  <key>EnvironmentVariables</key><dict><key>PATH</key><string>/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin</string></dict>
  <key>ProgramArguments</key><array><string>/bin/sh</string><string>-c</string>
    <string>wg show ${TUNNEL_NAME} >/dev/null 2>&amp;1 || wg-quick up ${TUNNEL_NAME}; exec /usr/local/bin/cloudpal-helper ${args}</string></array>
  <key>RunAtLoad</key><true/>
  <key>KeepAlive</key><true/>
</dict></plist>
CLOUDPAL_PLIST_END
  launchctl bootout system/net.cloudpal.helper 2>/dev/null || true
  launchctl bootstrap system /Library/LaunchDaemons/net.cloudpal.helper.plist
  ;;
*) echo "cloudpal: $(uname -s) is not supported: use the WireGuard app with 'npm run device -- ${name}'" >&2; exit 1 ;;
esac
echo "cloudpal: ${name} installed; 'cloudpal-helper status' shows each pair's path"
`;
}
