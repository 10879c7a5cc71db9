/**
 * Boots the cached Debian 12 image under QEMU with a NoCloud seed, the way a cloud boots a new server with
 * our user-data.
 *
 * TCG, not KVM: /dev/kvm on these machines is a nested software hypervisor (kvm_pvm) under which Debian
 * kernels stall in early boot. Every boot gets its own copy-on-write overlay, so the cached image is never
 * written and a "rebuild" really is a fresh disk.
 */
import { createServer } from "net";
import { createSocket } from "dgram";
import { mkdir, mkdtemp, readFile, rm, writeFile, chmod } from "fs/promises";
import { existsSync } from "fs";
import { tmpdir } from "os";
import { join, resolve } from "path";
import { isAlive, run, sleep, stopPid } from "./exec";

export interface VmImage {
  readonly dir: string;
  readonly kernel: string;
  readonly initrd: string;
  readonly disk: string;
}

/** Builds (or finds in the cache) the base image; returns its paths and how long that took. */
export async function ensureImage(): Promise<{ image: VmImage; ms: number }> {
  const script = resolve(__dirname, "build-image.sh");
  const r = await run("bash", [script], { timeoutMs: 30 * 60_000 });
  const lines = r.stdout.trim().split("\n");
  const dir = lines[lines.length - 1];
  const image = {
    dir,
    kernel: join(dir, "vmlinuz"),
    initrd: join(dir, "initrd.img"),
    disk: join(dir, "base.qcow2"),
  };
  if (!existsSync(image.disk))
    throw new Error(`build-image.sh printed ${dir}, which holds no base.qcow2: ${r.stderr}`);
  return { image, ms: r.ms };
}

/** A per-run directory for overlays, seeds, keys and logs; removed at the end unless the run failed. */
export async function makeRunDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), `cloudpal-vm-${process.pid}-`));
}

export async function removeRunDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

export interface TestKey {
  readonly privateKeyPath: string;
  readonly publicKey: string;
}

/** A fresh ed25519 key for this run only: the operator key the user-data installs. */
export async function makeSshKey(dir: string): Promise<TestKey> {
  const path = join(dir, "id_ed25519");
  await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", `cloudpal-e2e-${process.pid}`, "-f", path]);
  return { privateKeyPath: path, publicKey: (await readFile(`${path}.pub`, "utf8")).trim() };
}

/** A free TCP (or UDP) port on `host`. A tiny race with other processes remains; QEMU then fails loudly. */
export async function freePort(host = "127.0.0.1", kind: "tcp" | "udp" = "tcp"): Promise<number> {
  if (kind === "udp") {
    return new Promise((res, rej) => {
      const s = createSocket("udp4");
      s.on("error", rej);
      s.bind(0, host, () => {
        const port = s.address().port;
        s.close(() => res(port));
      });
    });
  }
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.on("error", rej);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => res(port));
    });
  });
}

export interface Forward {
  readonly proto: "tcp" | "udp";
  /** Host address QEMU binds: 127.0.0.1, or the host end of a veth pair for a device namespace. */
  readonly hostAddress: string;
  readonly hostPort: number;
  readonly guestPort: number;
}

export interface BootOptions {
  readonly image: VmImage;
  readonly dir: string;
  /** Used in file names, so two boots in one run never share an overlay or a log. */
  readonly name: string;
  readonly userData: string;
  /** A new instance-id is what makes cloud-init treat the disk as a new instance. */
  readonly instanceId: string;
  readonly forwards: readonly Forward[];
  /** Raw disk images attached after the seed (virtio, so /dev/vdc on): a provider's volume. */
  readonly extraDisks?: readonly string[];
}

export interface Vm {
  readonly name: string;
  readonly pid: number;
  readonly serialLog: string;
  readonly overlay: string;
  readonly bootedAt: number;
  running(): boolean;
  stop(): Promise<void>;
}

/** The NoCloud seed: an ISO9660 volume labelled "cidata" holding meta-data and user-data. */
async function makeSeed(dir: string, name: string, userData: string, instanceId: string): Promise<string> {
  const seedDir = join(dir, `${name}-seed`);
  await mkdir(seedDir);
  await writeFile(join(seedDir, "meta-data"), `instance-id: ${instanceId}\nlocal-hostname: cloudpal-e2e\n`);
  await writeFile(join(seedDir, "user-data"), userData);
  const iso = join(dir, `${name}-seed.iso`);
  await run("genisoimage", ["-quiet", "-output", iso, "-volid", "cidata", "-joliet", "-rock", seedDir]);
  return iso;
}

export async function bootVm(options: BootOptions): Promise<Vm> {
  const { image, dir, name } = options;
  const overlay = join(dir, `${name}.qcow2`);
  // The backing path must be absolute: QEMU resolves a relative one against the overlay's own directory.
  await run("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", resolve(image.disk), overlay]);
  const seed = await makeSeed(dir, name, options.userData, options.instanceId);
  const serialLog = join(dir, `${name}-serial.log`);
  const pidFile = join(dir, `${name}-qemu.pid`);
  const forwards = options.forwards
    .map((f) => `,hostfwd=${f.proto}:${f.hostAddress}:${f.hostPort}-:${f.guestPort}`)
    .join("");
  // No -no-reboot: the test reboots the guest on purpose, and QEMU then restarts it with the same kernel
  // and disk, as a cloud hypervisor would. Also no panic=-1, which would turn a kernel panic into a boot
  // loop; a panic shows up as an ssh timeout with the serial log tail instead.
  const args = [
    "-name",
    `cloudpal-e2e-${process.pid}-${name}`,
    "-accel",
    "tcg,thread=multi",
    "-cpu",
    "max",
    "-smp",
    "2",
    "-m",
    "2048",
    "-display",
    "none",
    "-kernel",
    image.kernel,
    "-initrd",
    image.initrd,
    "-append",
    "root=/dev/vda rw console=ttyS0",
    "-drive",
    `file=${overlay},if=virtio,format=qcow2`,
    "-drive",
    `file=${seed},if=virtio,format=raw,readonly=on`,
    ...(options.extraDisks ?? []).flatMap((disk) => ["-drive", `file=${disk},if=virtio,format=raw`]),
    "-netdev",
    `user,id=n0${forwards}`,
    "-device",
    "virtio-net-pci,netdev=n0",
    "-serial",
    `file:${serialLog}`,
    "-daemonize",
    "-pidfile",
    pidFile,
  ];
  const bootedAt = Date.now();
  await run("qemu-system-x86_64", args, { timeoutMs: 60_000 });
  const pid = Number((await readFile(pidFile, "utf8")).trim());
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`QEMU wrote no usable PID to ${pidFile}`);
  return {
    name,
    pid,
    serialLog,
    overlay,
    bootedAt,
    running: () => isAlive(pid),
    stop: async () => {
      await stopPid(pid, 5000);
      // QEMU removes its pidfile on a clean exit only; nothing else to clean up here, the overlay stays in
      // the run directory until the run directory goes.
    },
  };
}

/** Last lines of a log file, for failure messages. */
export async function tail(path: string, lines = 40): Promise<string> {
  try {
    const text = await readFile(path, "utf8");
    return text.split("\n").slice(-lines).join("\n");
  } catch (e) {
    return `(no ${path}: ${(e as Error).message})`;
  }
}

/** Writes a file only root may read (the device's private key on its way to `wg setconf` is on stdin instead). */
export async function writePrivate(path: string, content: string): Promise<void> {
  await writeFile(path, content, { mode: 0o600 });
  await chmod(path, 0o600);
}

export { sleep };
