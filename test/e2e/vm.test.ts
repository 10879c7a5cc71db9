/**
 * The whole product on a real machine: a Debian 12 VM (QEMU, TCG) boots the user-data the CloudPal program
 * renders for a DigitalOcean stack, the program's own delivery steps run against it over ssh, and a device in a
 * network namespace connects with the client config the program produced. Then the VM reboots, and then it is
 * thrown away and rebuilt from the same stack state: the same device config must connect again.
 *
 * Needs root, QEMU, debootstrap, genisoimage, wireguard-go, wireguard-tools, iproute2 and dig
 * (scripts/install-test-deps.sh), and Debian's mirror (the image build and the VM's apt). The image is cached
 * under $CLOUDPAL_CACHE. Traffic goes only to loopback, to the namespace and to the VMs this test creates.
 *
 * The steps share one VM and run in order; each records its figures, which are printed at the end (they are
 * the benchmark's numbers too: bench/boot.ts runs the first half on its own).
 */
import { createHash } from "crypto";
import { LAYOUT } from "../../model/layout";
import { privateKeyFromBytes, publicKeyFromPrivate } from "../../model/keys";
import { Device, deviceNames, parseClientConfig } from "./vm/device";
import {
  bootHubVm,
  deliver,
  hubServices,
  stepMs,
  CONTROL_PORT,
  type Delivery,
  type HubVm,
} from "./vm/hub-vm";
import { dnsOverTcp, HTTP_REQUEST, probeTcp, probeUdpDns } from "./vm/probe";
import { runProgram, type RenderedStack } from "./vm/program";
import { bootId } from "./vm/ssh";
import {
  formatTimings,
  moduleSeconds,
  PACKAGE_MODULE,
  readCloudInitTimings,
  RUNCMD_MODULE,
  type CloudInitTimings,
} from "./vm/timings";
import {
  ensureImage,
  makeRunDir,
  makeSshKey,
  removeRunDir,
  sleep,
  tail,
  type TestKey,
  type VmImage,
} from "./vm/vm";
import { readFile } from "fs/promises";

const MINUTE = 60_000;
jest.setTimeout(30 * MINUTE);

/** A device that brought its own key: only its public half is in the stack. */
const PHONE_PUBLIC_KEY = publicKeyFromPrivate(
  privateKeyFromBytes(createHash("sha256").update(`cloudpal-e2e-phone-${process.pid}`).digest()),
);
const BLOCKED = "blocked.example";
/** The guest sees the host (and so the operator) as QEMU's user-network gateway. */
const OPERATOR_CIDR = "10.0.2.2/32";

function stackConfig(key: TestKey): Record<string, unknown> {
  return {
    provider: "digitalocean",
    sshPublicKeys: [key.publicKey],
    sshAllowedCidrs: [OPERATOR_CIDR],
    peers: [{ name: "laptop" }, { name: "phone", publicKey: PHONE_PUBLIC_KEY }],
    // No blocklist download and no upstream query is ever needed: the test resolves only names the hub
    // answers itself (peer names, denied domains).
    dns: { blocklists: [], deny: [BLOCKED] },
  };
}

/** "Endpoint = …" removed: the one line a rebuild may change. */
function withoutEndpoint(config: string): string {
  return config
    .split("\n")
    .filter((l) => !/^Endpoint\s*=/.test(l))
    .join("\n");
}

/** The hub's tunnel addresses, from the device config's DNS line (the hub serves DNS on them). */
function hubAddressesOf(config: string): { ipv4: string; ipv6: string } {
  const line = config.split("\n").find((l) => /^DNS\s*=/.test(l));
  if (!line) throw new Error("the client config has no DNS line");
  const [ipv4, ipv6] = line
    .replace(/^DNS\s*=/, "")
    .split(",")
    .map((s) => s.trim());
  return { ipv4, ipv6 };
}

interface Figures {
  imageMs?: number;
  userDataBytes?: number;
  agentBundleBytes?: number;
  first?: Delivery;
  firstTimings?: CloudInitTimings;
  firstHandshakeMs?: number;
  rebootMs?: number;
  rebuild?: Delivery;
  rebuildHandshakeMs?: number;
}

describe("a CloudPal hub on a real Debian VM", () => {
  const figures: Figures = {};
  const device = new Device(deviceNames());
  const hubs: HubVm[] = [];
  let failed = false;
  let dir = "";
  let key: TestKey;
  let image: VmImage;
  let first: RenderedStack;
  let hub: HubVm;
  let laptop: string;
  let hubTunnel: { ipv4: string; ipv6: string };

  /** Marks the run failed (logs are kept) and rethrows. */
  async function step<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      failed = true;
      throw e;
    }
  }

  beforeAll(async () => {
    await step(async () => {
      dir = await makeRunDir();
      key = await makeSshKey(dir);
      first = await runProgram(stackConfig(key), await readFile(key.privateKeyPath, "utf8"), (load) =>
        jest.isolateModules(load),
      );
      laptop = first.clientConfigs.laptop;
      hubTunnel = hubAddressesOf(laptop);
      figures.userDataBytes = Buffer.byteLength(first.userData);
      figures.agentBundleBytes = Buffer.byteLength(first.payloads.agentBundle ?? "");
      const built = await ensureImage();
      image = built.image;
      figures.imageMs = built.ms;
      await device.create();
    });
  }, 40 * MINUTE);

  afterAll(async () => {
    for (const h of hubs) {
      if (failed) {
        process.stderr.write(`--- serial log tail of ${h.vm.name}:\n${await tail(h.vm.serialLog, 60)}\n`);
      }
      await h.vm.stop();
    }
    await device.destroy();
    if (dir && !failed) await removeRunDir(dir);
    else if (dir) process.stderr.write(`kept the run directory for inspection: ${dir}\n`);
    process.stderr.write(report(figures));
  }, 5 * MINUTE);

  /** The files holding keys are on the volume labelled for the state (DigitalOcean's encrypted volume). */
  async function expectKeysOnStateVolume(): Promise<void> {
    for (const file of [LAYOUT.stateFile, LAYOUT.wireguardConfig]) {
      const r = await hub.ssh.exec(`sudo findmnt -n -o TARGET,LABEL,FSTYPE -T ${file}`);
      expect(r.stdout.trim().split(/\s+/)).toEqual([LAYOUT.stateDir, LAYOUT.stateVolume.label, "ext4"]);
    }
  }

  async function bootAndDeliver(name: string, stack: RenderedStack, instanceId: string): Promise<Delivery> {
    hub = await bootHubVm({
      image,
      dir,
      name,
      userData: stack.userData,
      instanceId,
      operatorUser: "cloudpal-admin",
      identityFile: key.privateKeyPath,
      hostKey: stack.hostKey,
      sshGuestPort: 22,
      wireguardGuestPort: 51820,
      deviceHostAddress: device.names.hostAddress,
    });
    hubs.push(hub);
    return deliver(hub, stack.steps, stack.payloads);
  }

  it("boots the program's user-data and delivers the agent and state over ssh", () =>
    step(async () => {
      // The program renders for DigitalOcean; what the droplet would get is what the VM gets.
      const droplet = first.resources.find((r) => r.type === "digitalocean:index/droplet:Droplet");
      expect(droplet?.inputs.userData).toBe(first.userData);
      const names = ["wait-cloud-init", "agent-bundle", "storage", "state"];
      expect(first.steps.map((s) => s.name)).toEqual(names);
      figures.first = await bootAndDeliver("hub1", first, `i-cloudpal-e2e-${process.pid}-1`);
      expect(figures.first.steps.map((s) => s.name)).toEqual(names);
      await expectKeysOnStateVolume();
    }));

  it("(1) finishes cloud-init with status done and no errors", () =>
    step(async () => {
      const status = await hub.ssh.exec("cloud-init status --long");
      expect(status.stdout).toMatch(/^status: done$/m);
      const result = JSON.parse((await hub.ssh.exec("sudo cat /run/cloud-init/result.json")).stdout) as {
        v1: { errors: string[] };
      };
      expect(result.v1.errors).toEqual([]);
      const tracebacks = await hub.ssh.exec("sudo grep -c Traceback /var/log/cloud-init.log", {
        allowFailure: true,
      });
      expect(tracebacks.stdout.trim()).toBe("0");
      figures.firstTimings = await readCloudInitTimings(hub.ssh);
    }));

  it("(2) runs the hub services: WireGuard up, firewall loaded, unbound and the agent unit", () =>
    step(async () => {
      const s = await hubServices(hub.ssh);
      expect(s.active["unbound.service"]).toBe("active");
      expect(s.active["nftables.service"]).toBe("active");
      expect(s.active["ssh.service"]).toBe("active");
      // The boot-time unit ran before any state existed (its condition failed); it must be enabled for the
      // next boot. After the reboot below it must be active.
      expect(s.agentEnabled).toBe("enabled");
      expect(s.wireguardListenPort).toBe(51820);
      expect(s.wireguardPeers).toBe(2);
      expect(s.wireguardLink.split(/[<>,\s]+/)).toContain("UP");
      expect(s.nftTableLoaded).toBe(true);
      // The daily refresh unit starts in its sandbox (ProtectSystem=strict, ReadWritePaths) and finishes:
      // a path systemd cannot set up fails it with 226/NAMESPACE, which no unit-file check catches.
      const refresh = await hub.ssh.exec(
        `sudo systemctl start ${LAYOUT.units.blocklists} && systemctl show -p Result --value ${LAYOUT.units.blocklists}`,
        { allowFailure: true },
      );
      expect({ code: refresh.code, stdout: refresh.stdout.trim(), stderr: refresh.stderr.trim() }).toEqual({
        code: 0,
        stdout: "success",
        stderr: "",
      });
    }));

  it("(3) connects the device with the program's client config, resolves peer names, refuses a denied domain", () =>
    step(async () => {
      const before = Math.floor(Date.now() / 1000) - 1;
      const config = await device.connect(laptop, hub.wireguardEndpoint);
      const started = Date.now();
      await device.waitForHandshake(hubTunnel.ipv4, before, 2 * MINUTE);
      figures.firstHandshakeMs = Date.now() - started;

      const laptopAddress = config.addresses[0].split("/")[0];
      const phoneAddress = parseClientConfig(
        first.clientConfigs.phone.replace(/^PrivateKey = .*$/m, "PrivateKey = unused"),
      ).addresses[0].split("/")[0];
      const dig = (name: string, server = hubTunnel.ipv4) =>
        device.exec("dig", [`@${server}`, name, "A", "+time=3", "+tries=2"], { allowFailure: true });

      const phone = await dig("phone.pal");
      expect(phone.stdout).toMatch(/status: NOERROR/);
      expect(phone.stdout).toMatch(
        new RegExp(`^phone\\.pal\\.\\s+\\d+\\s+IN\\s+A\\s+${phoneAddress.replace(/\./g, "\\.")}$`, "m"),
      );
      const self = await dig("laptop.pal", hubTunnel.ipv6);
      expect(self.stdout).toMatch(new RegExp(`IN\\s+A\\s+${laptopAddress.replace(/\./g, "\\.")}$`, "m"));

      const blocked = await dig(BLOCKED);
      expect(blocked.stdout).toMatch(/status: REFUSED/);
      const blockedSub = await dig(`ads.${BLOCKED}`);
      expect(blockedSub.stdout).toMatch(/status: REFUSED/);
    }));

  it("(4) answers only on SSH and WireGuard from outside the tunnel", () =>
    step(async () => {
      // A control: a real listener on a port nothing else uses, reachable inside the VM, must stay silent
      // through the firewall. Without it "no answer" could just mean "nothing listens".
      await hub.ssh.exec(
        `sudo systemd-run --unit=cloudpal-e2e-listener --property=RuntimeMaxSec=600 python3 -m http.server ${CONTROL_PORT} --bind 0.0.0.0`,
      );
      const inside = await hub.ssh.exec(
        `for i in 1 2 3 4 5 6 7 8 9 10; do python3 -c 'import urllib.request,sys; urllib.request.urlopen("http://127.0.0.1:${CONTROL_PORT}/", timeout=3); print("listening")' 2>/dev/null && exit 0; sleep 2; done; exit 1`,
        { allowFailure: true },
      );
      expect(inside.stdout).toContain("listening");

      const ssh = await probeTcp(hub.ssh.target.port, undefined);
      expect(ssh.toString("latin1")).toMatch(/^SSH-2\.0-/);

      const port = (guest: number) => {
        const p = hub.tcpProbe.get(guest);
        if (p === undefined) throw new Error(`no forward for guest port ${guest}`);
        return p;
      };
      const answers = {
        "53/tcp": (await probeTcp(port(53), dnsOverTcp())).length,
        "53/udp": (await probeUdpDns(hub.udpProbe.get(53) ?? 0)).length,
        "80/tcp": (await probeTcp(port(80), HTTP_REQUEST)).length,
        "8953/tcp (unbound-control)": (
          await probeTcp(port(8953), Buffer.from([0x16, 0x03, 0x01, 0x00, 0x00]))
        ).length,
        [`${CONTROL_PORT}/tcp (listening inside)`]: (await probeTcp(port(CONTROL_PORT), HTTP_REQUEST)).length,
      };
      expect(answers).toEqual({
        "53/tcp": 0,
        "53/udp": 0,
        "80/tcp": 0,
        "8953/tcp (unbound-control)": 0,
        [`${CONTROL_PORT}/tcp (listening inside)`]: 0,
      });
      // WireGuard answered in (3): the handshake came back through its forward.
      expect(await device.lastHandshake()).toBeGreaterThan(0);
      await hub.ssh.exec("sudo systemctl stop cloudpal-e2e-listener", { allowFailure: true });
    }));

  it("(2) keeps the hub services and the tunnel after a reboot", () =>
    step(async () => {
      const before = await bootId(hub.ssh);
      const started = Date.now();
      // ssh may report the connection dropping; the boot id, not the exit code, says whether it rebooted.
      await hub.ssh
        .exec("sudo systemctl reboot", { allowFailure: true, timeoutMs: 60_000 })
        .catch(() => undefined);
      let after = before;
      while (after === before) {
        if (Date.now() - started > 10 * MINUTE)
          throw new Error("the VM did not come back from the reboot in 10 minutes");
        await sleep(3000);
        after = await bootId(hub.ssh).catch(() => before);
      }
      // cloud-init runs again on every boot; same instance-id, so it only re-checks and must end "done".
      await hub.ssh.exec("timeout 600 cloud-init status --wait");
      const services = await hubServices(hub.ssh);
      figures.rebootMs = Date.now() - started;
      expect(services.active).toEqual({
        "unbound.service": "active",
        "nftables.service": "active",
        "cloudpal-agent.service": "active",
        "ssh.service": "active",
      });
      expect(services.wireguardListenPort).toBe(51820);
      expect(services.wireguardPeers).toBe(2);
      expect(services.nftTableLoaded).toBe(true);
      // The mount unit brought the volume back by itself, before the agent re-applied the state from it.
      await expectKeysOnStateVolume();

      const t = Math.floor(Date.now() / 1000);
      await device.waitForHandshake(hubTunnel.ipv4, t, 3 * MINUTE);
      const r = await device.exec("dig", [`@${hubTunnel.ipv4}`, BLOCKED, "+time=3", "+tries=2"], {
        allowFailure: true,
      });
      expect(r.stdout).toMatch(/status: REFUSED/);
    }));

  it("(5) rebuilds the hub from the same stack state, and the same device config connects again", () =>
    step(async () => {
      // A second program run stands for the next `pulumi up`: keys come from the stack, not from the VM.
      const again = await runProgram(stackConfig(key), await readFile(key.privateKeyPath, "utf8"), (load) =>
        jest.isolateModules(load),
      );
      expect(again.userData).toBe(first.userData);
      expect(again.payloads.state).toBe(first.payloads.state);
      // The same pinned host key: ssh below checks it strictly, so the rebuilt hub must present it.
      expect(again.hostKey).toBe(first.hostKey);
      expect(Object.keys(again.clientConfigs).sort()).toEqual(Object.keys(first.clientConfigs).sort());
      for (const name of Object.keys(first.clientConfigs)) {
        expect(withoutEndpoint(again.clientConfigs[name])).toBe(withoutEndpoint(first.clientConfigs[name]));
      }

      const old = hub;
      await old.vm.stop();
      expect(old.vm.running()).toBe(false);

      figures.rebuild = await bootAndDeliver("hub2", again, `i-cloudpal-e2e-${process.pid}-2`);
      expect(hub.vm.overlay).not.toBe(old.vm.overlay);
      expect(hub.wireguardEndpoint).not.toBe(old.wireguardEndpoint);

      // The device keeps its config; only where the hub is has changed (a new forward port stands for a new IP).
      const t = Math.floor(Date.now() / 1000);
      const started = Date.now();
      await device.connect(again.clientConfigs.laptop, hub.wireguardEndpoint);
      await device.waitForHandshake(hubTunnel.ipv4, t, 3 * MINUTE);
      figures.rebuildHandshakeMs = Date.now() - started;
      const r = await device.exec("dig", [
        `@${hubTunnel.ipv4}`,
        "phone.pal",
        "+short",
        "+time=3",
        "+tries=2",
      ]);
      expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    }));
});

function seconds(ms: number | undefined): string {
  return ms === undefined ? "n/a" : `${(ms / 1000).toFixed(1)} s`;
}

function report(f: Figures): string {
  const lines = ["", "=== CloudPal VM end-to-end figures (QEMU TCG: relative only) ==="];
  lines.push(`image (build or cache hit): ${seconds(f.imageMs)}`);
  lines.push(
    `user-data: ${f.userDataBytes ?? "n/a"} bytes; agent bundle: ${f.agentBundleBytes ?? "n/a"} bytes`,
  );
  for (const [label, d] of [
    ["first boot", f.first],
    ["rebuild", f.rebuild],
  ] as const) {
    if (!d) continue;
    lines.push(
      `${label}: ssh after ${seconds(d.sshMs)}; cloud-init wait ${seconds(stepMs(d, "wait-cloud-init"))}, ` +
        `agent install ${seconds(stepMs(d, "agent-bundle"))}, state apply ${seconds(stepMs(d, "state"))}; ` +
        `hub ready ${seconds(d.totalMs)} after QEMU start`,
    );
  }
  if (f.firstTimings) {
    const t = f.firstTimings;
    lines.push(
      `split (first boot): package install ${moduleSeconds(t, PACKAGE_MODULE).toFixed(1)} s, ` +
        `bootstrap commands ${moduleSeconds(t, RUNCMD_MODULE).toFixed(1)} s, ` +
        `agent apply ${seconds(f.first ? stepMs(f.first, "state") : undefined)}`,
    );
    lines.push(formatTimings(t));
  }
  lines.push(
    `first handshake ${seconds(f.firstHandshakeMs)}; reboot to services active ${seconds(f.rebootMs)}; rebuild handshake ${seconds(f.rebuildHandshakeMs)}`,
  );
  return lines.join("\n") + "\n";
}
