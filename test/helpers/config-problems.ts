import { ConfigError, loadConfig } from "../../components/config";

/** Every sentence loadConfig reports for `raw` ([] when it accepts it); any other error is rethrown. */
export function configProblems(raw: Record<string, unknown>): string[] {
  try {
    loadConfig(raw);
    return [];
  } catch (e) {
    if (e instanceof ConfigError) return [...e.problems];
    throw e;
  }
}
