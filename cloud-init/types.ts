/**
 * The subset of cloud-config that CloudPal uses, typed. Field names and shapes follow cloud-init's JSON schema
 * (schema-cloud-config-v1.json, as shipped by Debian's cloud-init 22.4), so `cloud-init schema` accepts the
 * serialised document. Only keys listed in CLOUD_CONFIG_MODULES may appear at the top level.
 */

/** One entry of `write_files` (module write_files). `permissions` is an octal string, as the schema wants. */
export interface WriteFile {
  readonly path: string;
  readonly content: string;
  readonly permissions: string;
  readonly owner: string;
}

/** One entry of `users` (module users_groups). */
export interface CloudUser {
  readonly name: string;
  readonly gecos?: string;
  readonly groups?: readonly string[];
  readonly sudo?: string;
  readonly shell: string;
  readonly lock_passwd: true;
  readonly system?: boolean;
  readonly no_create_home?: boolean;
  readonly ssh_authorized_keys?: readonly string[];
}

/**
 * A runcmd entry. Always an argument vector: cloud-init single-quotes every element (util.shellify), so no
 * value is ever interpreted by a shell. The one exception is the fixed `set -eu` line, see FAIL_FAST.
 */
export type Command = readonly string[];

export interface CloudConfig {
  readonly hostname: string;
  readonly fqdn: string;
  readonly preserve_hostname: false;
  readonly manage_etc_hosts: true;
  readonly locale: string;
  readonly disable_root: true;
  readonly ssh_pwauth: false;
  readonly users: readonly CloudUser[];
  readonly write_files: readonly WriteFile[];
  readonly package_update: true;
  readonly package_upgrade: false;
  readonly packages: readonly string[];
  readonly runcmd: readonly (Command | typeof FAIL_FAST)[];
}

/**
 * The host key part of the user-data (cloud-init module `ssh`), kept apart from CloudConfig: it holds a private
 * key, so it goes into the user-data only (cloud-init/render.ts) and never into the bootstrap script an
 * existing server runs, which keeps its own host key.
 */
export interface SshHostKeyConfig {
  readonly ssh_deletekeys: true;
  readonly ssh_genkeytypes: readonly ["ed25519"];
  readonly ssh_keys: { readonly ed25519_private: string; readonly ed25519_public: string };
}

/** The module consuming each SshHostKeyConfig key, as CLOUD_CONFIG_MODULES does for CloudConfig. */
export const SSH_HOST_KEY_MODULES: { readonly [K in keyof SshHostKeyConfig]: string } = {
  ssh_deletekeys: "ssh",
  ssh_genkeytypes: "ssh",
  ssh_keys: "ssh",
};

/**
 * First runcmd line. cloud-init writes runcmd into one `#!/bin/sh` script and runs it without `-e`; this line
 * makes the first failing command end it, so `cloud-init status` reports the error instead of carrying on
 * with half a hub. It is a constant: no value from the spec is ever part of a shell string.
 */
export const FAIL_FAST = "set -eu";

/**
 * Which cloud-init module consumes each top-level key we emit (names as in Debian's /etc/cloud/cloud.cfg).
 * `cloud-init schema` does not flag unknown top-level keys, so the tests check every key against this list,
 * and every module against the modules Debian's cloud.cfg actually runs.
 */
export const CLOUD_CONFIG_MODULES: { readonly [K in keyof CloudConfig]: string } = {
  hostname: "set_hostname",
  fqdn: "set_hostname",
  preserve_hostname: "set_hostname",
  manage_etc_hosts: "update_etc_hosts",
  locale: "locale",
  disable_root: "ssh",
  ssh_pwauth: "set_passwords",
  users: "users_groups",
  write_files: "write_files",
  package_update: "package_update_upgrade_install",
  package_upgrade: "package_update_upgrade_install",
  packages: "package_update_upgrade_install",
  runcmd: "runcmd",
};
