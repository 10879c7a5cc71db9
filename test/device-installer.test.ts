/**
 * The device installer (`npm run device -- NAME --helper --out FILE`): a real `sh` runs it with
 * CLOUDPAL_INSTALL_ROOT and CLOUDPAL_NO_SERVICE, so it writes its files under a temporary root and starts no
 * service; the helper it installs is the bundle, and runs.
 */
// eslint-disable-next-line no-restricted-imports -- the installer is a shell script: run it as a device would.
import { execFileSync } from "child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import * as path from "path";
import { buildHelperBundle } from "../components/helper-bundle";
import { DEVICE_KEY_PLACEHOLDER } from "../model/client-config";
import { hubOfConfig, InstallerError, renderInstaller } from "../device/installer";

// Tests here start node as a child process (device.test: with ts-node): seconds each on a loaded 2-core machine.
jest.setTimeout(30_000);

const HUB_KEY = "HubPublicKeyHubPublicKeyHubPublicKeyHubPub0=";
const CONFIG = `[Interface]
PrivateKey = DevicePrivateKeyDevicePrivateKeyDevicePriv0=
Address = 10.77.1.7/32, fd7a:c10d:9a1::107/128
DNS = 10.77.0.1, fd7a:c10d:9a1::1

[Peer]
PublicKey = ${HUB_KEY}
Endpoint = vpn.example.com:51820
AllowedIPs = 0.0.0.0/0, ::/0
PersistentKeepalive = 25
`;

describe("the device installer", () => {
  const helper = buildHelperBundle().code;
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(path.join(tmpdir(), "cloudpal-installer-"))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("installs the config 0600 and the helper bundle, which runs", () => {
    const file = path.join(dir, "laptop-install.sh");
    writeFileSync(file, renderInstaller("laptop", CONFIG, helper), { mode: 0o600 });
    const root = path.join(dir, "root");
    // The installer checks for `wg`; a stand-in on PATH lets it run where wireguard-tools is not installed.
    writeFileSync(path.join(dir, "wg"), "#!/bin/sh\nexit 0\n", { mode: 0o755 });
    const out = execFileSync("sh", [file], {
      env: {
        ...process.env,
        CLOUDPAL_INSTALL_ROOT: root,
        CLOUDPAL_NO_SERVICE: "1",
        PATH: `${dir}:${process.env.PATH}`,
      },
      encoding: "utf8",
    });
    expect(out).toContain("files installed");
    const conf = path.join(root, "etc/wireguard/cloudpal.conf");
    expect(readFileSync(conf, "utf8")).toBe(CONFIG);
    expect(statSync(conf).mode & 0o777).toBe(0o600);
    expect(readFileSync(path.join(root, "usr/local/lib/cloudpal/cloudpal-helper.js"), "utf8")).toBe(helper);
    const status = (() => {
      try {
        execFileSync(
          process.execPath,
          [
            path.join(root, "usr/local/lib/cloudpal/cloudpal-helper.js"),
            "status",
            "--status",
            path.join(dir, "none.json"),
          ],
          { encoding: "utf8", stdio: "pipe" },
        );
        return "";
      } catch (e) {
        return String((e as { stderr: string }).stderr);
      }
    })();
    expect(status).toContain("is cloudpal-helper running?");
  });

  it("passes the hub's tunnel address and key to the helper's service", () => {
    expect(hubOfConfig(CONFIG)).toEqual({ hubV4: "10.77.0.1", hubKey: HUB_KEY });
    expect(renderInstaller("laptop", CONFIG, helper)).toContain(
      `ExecStart=/usr/local/bin/cloudpal-helper run --interface cloudpal --hub 10.77.0.1 --hub-key ${HUB_KEY}`,
    );
  });

  it("refuses a device that made its own key: the stack has no private key for it", () => {
    const own = CONFIG.replace(/^PrivateKey = .*$/m, `PrivateKey = ${DEVICE_KEY_PLACEHOLDER}`);
    expect(() => renderInstaller("phone", own, helper)).toThrow(InstallerError);
    expect(() => renderInstaller("phone", own, helper)).toThrow(/made its own key/);
  });
});
