export { LeaseClient, type KeyChangeListener } from "./lease-client.js";
export { Lease } from "./lease.js";
export { AuthorizationHeader, SdkCredentials } from "./secret-values.js";
export {
  providerCredentials,
  type ProviderCredentials,
  type RebuildListener,
} from "./provider-credentials.js";
export { BrokerError, Status, statusName, toBrokerError } from "./errors.js";
export { StaticToken, TokenFile, type CallerToken } from "./token.js";
export type { LeaseClientOptions, RetryPolicy, TlsOptions } from "./options.js";
export { DEFAULT_PROTO_DIR, type KeyState } from "./proto.js";
