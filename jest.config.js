/** @type {import('jest').Config} */
const common = {
  preset: "ts-jest",
  testEnvironment: "node",
  // Type errors are reported by `npm run typecheck`; compiling per file keeps the suite fast.
  transform: { "^.+\\.ts$": ["ts-jest", {}] },
};

module.exports = {
  projects: [
    {
      ...common,
      displayName: "unit",
      testMatch: [
        "<rootDir>/test/**/*.test.ts",
        "<rootDir>/agent/**/*.test.ts",
        "<rootDir>/cloud-init/**/*.test.ts",
        "<rootDir>/components/**/*.test.ts",
        "<rootDir>/policies/**/*.test.ts",
      ],
      testPathIgnorePatterns: ["/node_modules/", "<rootDir>/test/e2e/"],
    },
    {
      ...common,
      displayName: "e2e",
      // Real wireguard-go, nftables, unbound and a QEMU VM: needs root and the packages from scripts/install-test-deps.sh.
      testMatch: ["<rootDir>/test/e2e/**/*.test.ts"],
    },
  ],
};
