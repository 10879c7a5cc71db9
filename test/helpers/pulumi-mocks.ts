/** The program tests use the same deterministic mocks as `npm run plan` (scripts/mocks.ts). */
export * from "../../scripts/mocks";
