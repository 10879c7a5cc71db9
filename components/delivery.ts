/**
 * CONTRACT (to be implemented by the delivery work, issue 5): the remote steps that put the agent on a host
 * and hand it the desired state. The Pulumi program turns each step into a `command.remote.Command`; the VM
 * end-to-end test runs the very same steps through `ssh`. Commands hold no secrets; secrets only travel on
 * stdin, named by `stdin`.
 */
export type StdinPayload = "agentBundle" | "state" | "bootstrapScript";

export interface RemoteStep {
  /** Short kebab-case name, used as the Pulumi resource name suffix. */
  readonly name: string;
  /** The shell command run on the host as the operator user. Never holds a secret. */
  readonly command: string;
  /** Which payload is piped to the command's stdin, if any. */
  readonly stdin?: StdinPayload;
}

export interface DeliveryOptions {
  /** `existing` servers have no cloud-init datasource: the bootstrap script runs first. */
  readonly bootstrapOverSsh: boolean;
  /** Bound on waiting for cloud-init, in seconds. */
  readonly cloudInitTimeoutSeconds: number;
}

export function deliverySteps(_options: DeliveryOptions): RemoteStep[] {
  throw new Error("deliverySteps: not implemented yet (issue 5)");
}
