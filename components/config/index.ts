/**
 * The `cloudpal:` stack config, one job per file: types.ts (the shapes), defaults.ts (every default),
 * schema.ts (the JSON Schema), checks.ts (checks across fields), messages.ts (ajv errors as sentences),
 * load.ts (loadConfig), stack.ts (reading the Pulumi stack). This file only names the public API.
 */
export { checkConfig, RESERVED_RANGES } from "./checks";
export { DEFAULTS, withDefaults } from "./defaults";
export { loadConfig } from "./load";
export { CONFIG_KEYS, CONFIG_SCHEMA } from "./schema";
export {
  checkSshPrivateKey,
  loadStackConfig,
  readStackConfig,
  SSH_PRIVATE_KEY_KEY,
  SSH_PRIVATE_KEY_PASSWORD_KEY,
} from "./stack";
export {
  CONFIG_NAMESPACE,
  ConfigError,
  type AutoRebootConfig,
  type CloudHostTarget,
  type ExistingHostTarget,
  type GroupConfig,
  type HostTarget,
  type HubConfig,
  type PeerConfig,
  type RawConfig,
  type UnallocatedConfig,
} from "./types";
