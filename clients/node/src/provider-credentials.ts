// For provider SDKs that take a key and a base URL once, at construction
// (`new OpenAI({ apiKey, baseURL })`): fresh credentials per call, and a hook to rebuild the SDK
// object when the client moves to another key.
import type { Lease } from "./lease.js";
import type { LeaseClient } from "./lease-client.js";
import { SdkCredentials } from "./secret-values.js";

/** Rebuilds an SDK object with new credentials; `lease` says which key (keyFingerprint). */
export type RebuildListener = (credentials: SdkCredentials, lease: Lease) => void | Promise<void>;

export interface ProviderCredentials {
  /** The key and base URL to use now (the lease the client holds, acquired if needed). */
  get(): Promise<SdkCredentials>;
  /**
   * Calls `rebuild` with the new credentials whenever the client moved to another key (a
   * rotation, a quarantine); returns the function that unsubscribes. Rebuild the SDK object
   * there. Exceptions thrown by `rebuild` are ignored.
   */
  onRotate(rebuild: RebuildListener): () => void;
}

function fromLease(lease: Lease): SdkCredentials {
  return new SdkCredentials(lease.apiKey, lease.baseUrl);
}

/**
 *   const creds = providerCredentials(broker, "openai");
 *   let openai = new OpenAI(await creds.get());
 *   creds.onRotate((c) => { openai = new OpenAI(c); });
 */
export function providerCredentials(client: LeaseClient, provider: string): ProviderCredentials {
  return {
    get: async () => fromLease(await client.currentLease(provider)),
    onRotate: (rebuild) =>
      client.onKeyChange(provider, (lease) => rebuild(fromLease(lease), lease)),
  };
}
