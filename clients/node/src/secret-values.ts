// The small objects the client hands out that carry a key: usable as plain objects
// (`{name, value}`, `{apiKey, baseURL}`), but printing, inspecting or JSON-serializing them never
// shows the key.
import { inspect } from "node:util";

/** A ready-made header for the provider call: `name: value`. */
export class AuthorizationHeader {
  /** "Authorization", or the provider's own header ("x-api-key"). */
  readonly name: string;
  /** "Bearer <key>" or the key. Never log it. */
  readonly value: string;

  constructor(name: string, value: string) {
    this.name = name;
    this.value = value;
    Object.freeze(this);
  }

  toJSON(): Record<string, string> {
    return { name: this.name, value: "<redacted>" };
  }

  toString(): string {
    return `${this.name}: <redacted>`;
  }

  [inspect.custom](): string {
    return `AuthorizationHeader(${this.toString()})`;
  }
}

/** What provider SDKs take (`new OpenAI({ apiKey, baseURL })`). */
export class SdkCredentials {
  /** The key itself. Never log it. */
  readonly apiKey: string;
  readonly baseURL: string;

  constructor(apiKey: string, baseURL: string) {
    this.apiKey = apiKey;
    this.baseURL = baseURL;
    Object.freeze(this);
  }

  toJSON(): Record<string, string> {
    return { apiKey: "<redacted>", baseURL: this.baseURL };
  }

  toString(): string {
    return `SdkCredentials(${this.baseURL}, apiKey: <redacted>)`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}
