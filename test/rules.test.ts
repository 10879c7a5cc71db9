/**
 * One rule, every layer: the stack config, the bootstrap spec and the hub state apply the rules in
 * model/rules.ts, so what the config accepts is never refused later, and what it refuses is refused with the
 * field the user wrote.
 */
import { validateBootstrapSpec } from "../cloud-init/validate";
import { sshPublicKeyProblem, userNameProblem } from "../model/rules";
import { ED25519_KEY, spec } from "./cloud-init-helpers";
import { configProblems } from "./helpers/config-problems";
import { EXISTING_HOST_KEY, minimalConfig, sshPublicKey } from "./helpers/fixtures";

function bootstrapProblem(user: string): string | undefined {
  try {
    validateBootstrapSpec(spec({ operator: { user, sshPublicKeys: [ED25519_KEY] } }));
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

describe("the operator user: one rule for the config and the bootstrap", () => {
  // Before model/rules.ts, these passed the config and the bootstrap refused them minutes later, naming
  // 'operator.user', a field the user never wrote.
  it.each(["sshd", "daemon", "_ops", "unbound", "Admin", "cloudpal"])(
    "%j is refused by both, each naming its own field, with the same reason",
    (user) => {
      const reason = userNameProblem(user);
      expect(reason).toBeDefined();
      expect(configProblems(minimalConfig("digitalocean", { operatorUser: user }))).toEqual([
        `'operatorUser' (${JSON.stringify(user)}) ${reason}.`,
      ]);
      expect(
        configProblems(
          minimalConfig("existing", {
            existing: { host: "198.51.100.44", user, hostKey: EXISTING_HOST_KEY },
          }),
        ),
      ).toEqual([`'existing.user' (${JSON.stringify(user)}) ${reason}.`]);
      expect(bootstrapProblem(user)).toBe(`'operator.user' (${JSON.stringify(user)}) ${reason}.`);
    },
  );

  it.each(["admin", "ops", "deploy-1", "a_b"])("%j is accepted by both", (user) => {
    expect(userNameProblem(user)).toBeUndefined();
    expect(configProblems(minimalConfig("digitalocean", { operatorUser: user }))).toEqual([]);
    expect(bootstrapProblem(user)).toBeUndefined();
  });
});

describe("SSH public keys: one check for the config and the bootstrap", () => {
  const key = sshPublicKey("operator");
  const [type, blob] = key.split(" ");
  it.each([
    ["truncated", `${type} ${blob.slice(0, 40)}`, `is not a complete ssh-ed25519 key`],
    ["relabelled", `ssh-rsa ${blob} x`, `declares "ssh-rsa" but the key part encodes "ssh-ed25519"`],
    ["two lines", `${key}\n${key}`, "spans several lines"],
  ])("a %s key gets the same reason from both", (_what, line, reason) => {
    expect(sshPublicKeyProblem(line)).toBe(reason);
    expect(() => validateBootstrapSpec(spec({ operator: { user: "admin", sshPublicKeys: [line] } }))).toThrow(
      `'operator.sshPublicKeys[0]' (${JSON.stringify(line).slice(0, 57)}`,
    );
    expect(() => validateBootstrapSpec(spec({ operator: { user: "admin", sshPublicKeys: [line] } }))).toThrow(
      reason,
    );
  });

  it("accepts a whole key", () => {
    expect(sshPublicKeyProblem(key)).toBeUndefined();
    expect(sshPublicKeyProblem(ED25519_KEY)).toBeUndefined();
  });
});
