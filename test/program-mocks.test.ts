/** The mocks the program tests and `npm run plan` rely on: strict about types, faithful about secrets. */
import { createMocks, KNOWN_TYPES, type Registered } from "./helpers/pulumi-mocks";

const SECRET = { "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", value: "hunter2" };

function args(type: string, inputs: Record<string, unknown>) {
  return { type, name: "r", inputs, custom: true };
}

it("throws on a resource type the program is not expected to register, and records nothing", () => {
  const registered: Registered[] = [];
  const mocks = createMocks(registered);
  expect(() => mocks.newResource(args("aws:s3/bucket:Bucket", {}))).toThrow(
    "unexpected resource type aws:s3/bucket:Bucket (r): add it to KNOWN_TYPES on purpose",
  );
  expect(() => mocks.call({ token: "digitalocean:index/getSshKey:getSshKey", inputs: {} })).toThrow(
    "unexpected function call digitalocean:index/getSshKey:getSshKey",
  );
  expect(registered).toEqual([]);
});

it("records inputs with secrets unwrapped, names the secret ones, and masks them for printing", () => {
  const registered: Registered[] = [];
  createMocks(registered).newResource(
    args("command:remote:Command", {
      stdin: SECRET,
      create: "true",
      connection: { host: "h", privateKey: SECRET },
    }),
  );
  expect(registered[0]).toMatchObject({
    inputs: { stdin: "hunter2", create: "true", connection: { host: "h", privateKey: "hunter2" } },
    secretInputs: ["stdin"],
    masked: { stdin: "[secret]", create: "true", connection: { host: "h", privateKey: "[secret]" } },
  });
});

it("returns numeric ids where DigitalOcean and Linode references are numbers", () => {
  const mocks = createMocks([]);
  const id = (type: string) => (mocks.newResource(args(type, {})) as { id: string }).id;
  expect(id("digitalocean:index/droplet:Droplet")).toMatch(/^\d+$/);
  expect(id("linode:index/instance:Instance")).toMatch(/^\d+$/);
  expect(id("vultr:index/instance:Instance")).toBe("r-id");
  expect(KNOWN_TYPES.every((t) => id(t).length > 0)).toBe(true);
});
