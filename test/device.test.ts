import { DeviceError, parseConfigs, pickConfig, renderQr } from "../scripts/device";

const outputs = JSON.stringify({ laptop: "[Interface]\nAddress = 10.77.0.9/32\n", phone: "[Interface]\n" });

describe("npm run device", () => {
  it("picks one device's config from the stack output", () => {
    expect(pickConfig(outputs, "laptop")).toBe("[Interface]\nAddress = 10.77.0.9/32\n");
  });

  it("names the known devices when asked for an unknown one", () => {
    expect(() => pickConfig(outputs, "tablet")).toThrow(
      "device \"tablet\" is not in this stack's 'cloudpal:peers': known devices are laptop, phone.",
    );
  });

  it("explains output that is not a config map", () => {
    expect(() => parseConfigs("not json")).toThrow(DeviceError);
    expect(() => parseConfigs("[1]")).toThrow(/not a map of device name to config/);
  });

  it("renders a terminal QR code that encodes the config", async () => {
    const qr = await renderQr("[Interface]\nPrivateKey = x\n");
    const lines = qr.trim().split("\n");
    // A version-2+ QR code in half-block characters: square-ish, and made of block glyphs only.
    expect(lines.length).toBeGreaterThan(10);
    expect(qr).toMatch(/[█▀▄]/);
    expect(await renderQr("other text")).not.toBe(qr);
  });
});
