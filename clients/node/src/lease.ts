// A lease on a provider key, as the broker issued it. It holds the key: `apiKey` and
// `headerValue` are readable, but printing, inspecting or JSON-serializing a lease shows the key's
// fingerprint only.
import { inspect } from "node:util";

import { timeMs, type KeyState, type WireLease } from "./proto.js";

export class Lease {
  readonly leaseId: string;
  readonly provider: string;
  readonly keyVersion: string;
  /** First 12 hex characters of SHA-256(apiKey): safe to log. */
  readonly keyFingerprint: string;
  readonly issuedAt: Date;
  readonly expiresAt: Date;
  /** When the key version stops being valid; null while the version is CURRENT. */
  readonly keyRetiresAt: Date | null;
  /** The provider's configured base URL. */
  readonly baseUrl: string;
  /** Header for the provider call ("Authorization"); its value is `headerValue`. */
  readonly headerName: string;
  readonly renewCount: number;
  readonly keyState: KeyState;
  /** The permissions the key carries at the provider, sorted; empty when unknown. */
  readonly scopes: readonly string[];
  readonly #wire: WireLease;

  /** @internal Built by the client from the broker's answer. */
  constructor(wire: WireLease) {
    this.#wire = wire;
    this.leaseId = wire.leaseId;
    this.provider = wire.provider;
    this.keyVersion = wire.keyVersion;
    this.keyFingerprint = wire.keyFingerprint;
    this.issuedAt = new Date(timeMs(wire.issuedAt) ?? 0);
    this.expiresAt = new Date(timeMs(wire.expiresAt) ?? 0);
    const retires = timeMs(wire.keyRetiresAt);
    this.keyRetiresAt = retires === null ? null : new Date(retires);
    this.baseUrl = wire.baseUrl;
    this.headerName = wire.headerName;
    this.renewCount = wire.renewCount;
    this.keyState = wire.keyState;
    this.scopes = Object.freeze([...wire.scopes]);
    Object.freeze(this);
  }

  /** The key itself. Never log it. */
  get apiKey(): string {
    return this.#wire.apiKey;
  }

  /** The value of `headerName` ("Bearer <key>"). Never log it. */
  get headerValue(): string {
    return this.#wire.headerValue;
  }

  /** @internal The same lease with the key's retire time the broker announced since. */
  withKeyRetiresAt(retiresAt: WireLease["keyRetiresAt"]): Lease {
    return new Lease({ ...this.#wire, keyRetiresAt: retiresAt });
  }

  /** Everything but the key. */
  toJSON(): Record<string, unknown> {
    return {
      leaseId: this.leaseId,
      provider: this.provider,
      keyVersion: this.keyVersion,
      keyFingerprint: this.keyFingerprint,
      issuedAt: this.issuedAt.toISOString(),
      expiresAt: this.expiresAt.toISOString(),
      keyRetiresAt: this.keyRetiresAt?.toISOString() ?? null,
      baseUrl: this.baseUrl,
      headerName: this.headerName,
      renewCount: this.renewCount,
      keyState: this.keyState,
      scopes: this.scopes,
    };
  }

  toString(): string {
    return (
      `Lease(${this.leaseId} ${this.provider} ${this.keyVersion} ` +
      `key ${this.keyFingerprint} until ${this.expiresAt.toISOString()})`
    );
  }

  [inspect.custom](): string {
    return this.toString();
  }
}
