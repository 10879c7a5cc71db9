/**
 * The CloudPal policy pack: `pulumi preview --policy-pack policies`. Only builds the pack; the policies
 * live in policies.ts so tests can call them without the gRPC server this constructor starts.
 */
import { PolicyPack } from "@pulumi/policy";
import { POLICIES } from "./policies";

new PolicyPack("cloudpal", {
  policies: [...POLICIES.resource, ...POLICIES.stack],
});
