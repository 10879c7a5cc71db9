import { CommandError, describeCommand, realRunner } from "../lib/runner";

describe("process runner", () => {
  it("logs each command, masks secret arguments and passes stdin", async () => {
    const log: string[] = [];
    const runner = realRunner((l) => log.push(l));
    const r = await runner.run(process.execPath, ["-e", "process.stdin.pipe(process.stdout)", "s3cret"], {
      input: "from stdin",
      secretArgs: [2],
    });
    expect(r.stdout).toBe("from stdin");
    expect(log).toEqual([`[#] ${process.execPath} -e "process.stdin.pipe(process.stdout)" (hidden)`]);
  });

  it("throws an error carrying the command's stderr and exit code", async () => {
    const runner = realRunner(() => undefined);
    const failing = runner.run(process.execPath, ["-e", "console.error('no such peer'); process.exit(3)"]);
    await expect(failing).rejects.toBeInstanceOf(CommandError);
    await expect(failing).rejects.toThrow(/failed \(exit 3\): no such peer/);
    const allowed = await runner.run(process.execPath, ["-e", "process.exit(4)"], { allowFailure: true });
    expect(allowed.code).toBe(4);
  });

  it("never builds a shell string: metacharacters reach the process as one argument", async () => {
    const runner = realRunner(() => undefined);
    const r = await runner.run(process.execPath, [
      "-e",
      "console.log(process.argv[1])",
      "a; rm -rf / $(id) `x`",
    ]);
    expect(r.stdout).toBe("a; rm -rf / $(id) `x`\n");
    expect(describeCommand("wg", ["set", "wg0", "peer", "k=", "remove"])).toBe(
      "[#] wg set wg0 peer k= remove",
    );
  });
});
