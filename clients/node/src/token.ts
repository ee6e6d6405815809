// The bearer token a service presents to the broker (`authorization: Bearer <token>`). In
// Kubernetes it is a projected service-account token that the kubelet replaces before it expires
// (an atomic swap of the file's `..data` link): TokenFile re-reads the file whenever it changed,
// so a long-lived client never presents an expired token.
import { readFile, stat } from "node:fs/promises";

import { BrokerError, Status } from "./errors.js";

export interface CallerToken {
  /** The token to send now. Rejects with an UNAUTHENTICATED BrokerError when there is none. */
  token(): Promise<string>;
}

/** A fixed token (static tokens for development). */
export class StaticToken implements CallerToken {
  readonly #token: string;

  constructor(token: string) {
    if (token.trim() === "") throw new BrokerError(Status.INVALID_ARGUMENT, "empty token");
    this.#token = token.trim();
  }

  token(): Promise<string> {
    return Promise.resolve(this.#token);
  }

  toString(): string {
    return "StaticToken(<redacted>)";
  }
}

/**
 * The token in `path` (surrounding whitespace trimmed), read again when the file changed (its
 * inode, size or modification time). A file that cannot be read or is empty: UNAUTHENTICATED
 * naming the path, never a stale token past a change.
 */
export class TokenFile implements CallerToken {
  readonly path: string;
  #stamp = "";
  #token = "";

  constructor(path: string) {
    if (path === "") throw new BrokerError(Status.INVALID_ARGUMENT, "empty token file path");
    this.path = path;
  }

  async token(): Promise<string> {
    let stamp: string;
    let contents: string;
    try {
      const st = await stat(this.path, { bigint: true });
      stamp = `${st.ino}:${st.size}:${st.mtimeNs}`;
      if (stamp === this.#stamp && this.#token !== "") return this.#token;
      contents = await readFile(this.path, "utf8");
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      throw new BrokerError(
        Status.UNAUTHENTICATED,
        `cannot read the token file ${this.path}: ${why}`,
      );
    }
    const token = contents.trim();
    if (token === "") {
      throw new BrokerError(Status.UNAUTHENTICATED, `the token file ${this.path} is empty`);
    }
    this.#stamp = stamp;
    this.#token = token;
    return token;
  }

  toString(): string {
    return `TokenFile(${this.path})`;
  }
}
