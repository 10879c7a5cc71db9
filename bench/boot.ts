/**
 * Boot benchmark: from a VM's first boot to the hub being ready (WireGuard up, DNS answering through the
 * tunnel, agent applied), with cloud-init's own timing per stage and module, the split into package install,
 * bootstrap commands and agent apply, and the sizes of the rendered user-data and the agent bundle.
 *
 *   npx ts-node --transpile-only bench/boot.ts
 *
 * Needs root and the VM test's tools (scripts/install-test-deps.sh); uses the cached image from
 * test/e2e/vm/build-image.sh. Under QEMU's TCG (no usable KVM here) the absolute figures are several times a
 * real cloud VM's; compare them with each other, not with a provider.
 */
import { createHash } from "crypto";
import { readFile } from "fs/promises";
import { gzipSync } from "zlib";
import { privateKeyFromBytes, publicKeyFromPrivate } from "../model/keys";
import { Device, deviceNames } from "../test/e2e/vm/device";
import { bootHubVm, deliver, stepMs, type HubVm } from "../test/e2e/vm/hub-vm";
import { runProgram } from "../test/e2e/vm/program";
import {
  formatTimings,
  moduleSeconds,
  PACKAGE_MODULE,
  readCloudInitTimings,
  RUNCMD_MODULE,
} from "../test/e2e/vm/timings";
import { ensureImage, makeRunDir, makeSshKey, removeRunDir, sleep, tail } from "../test/e2e/vm/vm";

/** The limit the providers document for user-data. */
const USER_DATA_LIMIT = 64 * 1024;

function s(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

async function main(): Promise<void> {
  const dir = await makeRunDir();
  const device = new Device(deviceNames());
  let hub: HubVm | undefined;
  let ok = false;
  try {
    const key = await makeSshKey(dir);
    const phone = publicKeyFromPrivate(
      privateKeyFromBytes(createHash("sha256").update("bench-phone").digest()),
    );
    const stack = await runProgram(
      {
        provider: "digitalocean",
        sshPublicKeys: [key.publicKey],
        sshAllowedCidrs: ["10.0.2.2/32"],
        peers: [{ name: "laptop" }, { name: "phone", publicKey: phone }],
        dns: { blocklists: [], deny: ["blocked.example"] },
      },
      await readFile(key.privateKeyPath, "utf8"),
    );
    const image = await ensureImage();
    await device.create();

    hub = await bootHubVm({
      image: image.image,
      dir,
      name: "bench",
      userData: stack.userData,
      instanceId: `i-cloudpal-bench-${process.pid}`,
      operatorUser: "cloudpal-admin",
      identityFile: key.privateKeyPath,
      hostKey: stack.hostKey,
      sshGuestPort: 22,
      wireguardGuestPort: 51820,
      deviceHostAddress: device.names.hostAddress,
    });
    const delivery = await deliver(hub, stack.steps, stack.payloads);

    // Ready means a device gets a DNS answer through the tunnel: WireGuard, firewall and unbound all work.
    const laptop = stack.clientConfigs.laptop;
    const hubIp = /^DNS\s*=\s*([^,\s]+)/m.exec(laptop)?.[1];
    if (!hubIp) throw new Error("the laptop's client config has no DNS line");
    await device.connect(laptop, hub.wireguardEndpoint);
    await device.waitForHandshake(hubIp, 0, 3 * 60_000);
    let readyMs = 0;
    for (let i = 0; i < 60 && !readyMs; i++) {
      const r = await device.exec("dig", [`@${hubIp}`, "phone.pal", "+short", "+time=2", "+tries=1"], {
        allowFailure: true,
        quiet: true,
      });
      if (r.code === 0 && /^\d+\.\d+\.\d+\.\d+$/m.test(r.stdout)) readyMs = Date.now() - hub.vm.bootedAt;
      else await sleep(500);
    }
    if (!readyMs) throw new Error("no DNS answer through the tunnel within 30 s of delivery");
    const t = await readCloudInitTimings(hub.ssh);

    const userData = Buffer.from(stack.userData);
    const bundle = Buffer.from(stack.payloads.agentBundle ?? "");
    const out = [
      "CloudPal boot benchmark (QEMU TCG, -smp 2 -m 2048: relative figures only)",
      `image:            ${s(image.ms)} (${image.ms > 10_000 ? "built" : "cached"}) ${image.image.dir}`,
      `user-data:        ${userData.length} bytes (${((100 * userData.length) / USER_DATA_LIMIT).toFixed(1)}% of 64 KiB), ${gzipSync(userData).length} gzipped`,
      `agent bundle:     ${bundle.length} bytes, ${gzipSync(bundle).length} gzipped`,
      `ssh answers:      ${s(delivery.sshMs)} after QEMU start`,
      `cloud-init done:  ${s(delivery.sshMs + stepMs(delivery, "wait-cloud-init"))}`,
      `agent installed:  +${s(stepMs(delivery, "agent-bundle"))}`,
      `state applied:    +${s(stepMs(delivery, "state"))}  (delivery done ${s(delivery.totalMs)})`,
      `hub ready:        ${s(readyMs)} after QEMU start (device handshake + DNS answer through the tunnel)`,
      "split:",
      `  package install   ${moduleSeconds(t, PACKAGE_MODULE).toFixed(1)} s (cloud-init package_update_upgrade_install)`,
      `  bootstrap cmds    ${moduleSeconds(t, RUNCMD_MODULE).toFixed(1)} s (cloud-init runcmd script)`,
      `  other cloud-init  ${(t.stages.reduce((a, x) => a + x.seconds, 0) - moduleSeconds(t, PACKAGE_MODULE) - moduleSeconds(t, RUNCMD_MODULE)).toFixed(1)} s`,
      `  agent install     ${(stepMs(delivery, "agent-bundle") / 1000).toFixed(1)} s`,
      `  agent apply       ${(stepMs(delivery, "state") / 1000).toFixed(1)} s`,
      formatTimings(t, 12),
    ];
    process.stdout.write(out.join("\n") + "\n");
    ok = true;
  } finally {
    if (hub) {
      if (!ok) process.stderr.write(`--- serial log tail:\n${await tail(hub.vm.serialLog, 60)}\n`);
      await hub.vm.stop();
    }
    await device.destroy();
    if (ok) await removeRunDir(dir);
    else process.stderr.write(`kept ${dir} for inspection\n`);
  }
}

main().catch((e: Error) => {
  process.stderr.write(`bench/boot.ts failed: ${e.message}\n`);
  process.exitCode = 1;
});
