// LeaseClient: what a service holds instead of an API key in an environment variable.
//
// It keeps one lease per provider it was asked for: acquired on first use, renewed in the
// background once `renewFraction` of its lifetime has passed (and moved to the new key before a
// retiring key's retire time), and following WatchKeys: ROTATED re-acquires (the new key), and
// RETIRED, QUARANTINED or REVOKED of the held key drop it at once (the next call acquires the
// current one). A renewal the broker refuses because it forgot the lease (a restart without
// persistent state) or because the key retired re-acquires. While the broker cannot be reached
// the held lease serves until it expires, never after: then the call fails with UNAVAILABLE.
// The key is in the header and the lease: never log either (use keyFingerprint).
import { BrokerError, Status, toBrokerError } from "./errors.js";
import { LeaseConnection } from "./connection.js";
import { Lease } from "./lease.js";
import { resolveOptions, type LeaseClientOptions, type ResolvedOptions } from "./options.js";
import { duration, type AcquireLeaseRequest, type KeyEvent } from "./proto.js";
import { AuthorizationHeader } from "./secret-values.js";

/** Called with the new lease when the key held for a provider changed (a rotation, a drop). */
export type KeyChangeListener = (lease: Lease) => void | Promise<void>;

interface Held {
  lease: Lease;
  expiresAt: number;
  /** When this client received the current grant (acquire or renewal), by its own clock. */
  receivedAt: number;
  /** When the background loop renews (or re-acquires) it next. */
  due: number;
  /** Re-acquire at the next chance (a newer key is CURRENT); the lease still serves meanwhile. */
  stale: boolean;
  /** The key was retired, quarantined or revoked: never served again; re-acquire. */
  dropped: boolean;
  /** A stale lease is re-acquired on use only from then on (an acquire just failed). */
  retryAfter: number;
}

const MAX_TIMER_MS = 2 ** 31 - 1;
const MAX_REPORT_BODY_BYTES = 4096;

// The first `max` bytes of `s` in UTF-8, not cutting a character in two.
function truncateUtf8(s: string, max: number): string {
  const bytes = Buffer.from(s, "utf8");
  if (bytes.length <= max) return s;
  let end = max;
  while (end > 0 && ((bytes[end] as number) & 0xc0) === 0x80) --end;
  return bytes.subarray(0, end).toString("utf8");
}

export class LeaseClient {
  readonly #options: ResolvedOptions;
  readonly #connection: LeaseConnection;
  readonly #held = new Map<string, Held>();
  readonly #acquiring = new Map<string, Promise<Lease>>();
  readonly #listeners = new Map<string, Set<KeyChangeListener>>();
  /** Leases replaced or dropped, for the background loop to release. */
  #toRelease: string[] = [];
  #timer: NodeJS.Timeout | undefined;
  #maintaining: Promise<void> | undefined;
  #cancelWatch: (() => void) | undefined;
  #watchRetry: NodeJS.Timeout | undefined;
  #closing: Promise<void> | undefined;

  /** Throws a BrokerError (INVALID_ARGUMENT) for bad options or unreadable TLS files. */
  constructor(options: LeaseClientOptions) {
    this.#options = resolveOptions(options);
    this.#connection = new LeaseConnection(this.#options);
    if (this.#options.watch) this.#watch();
  }

  /** The header for a call to `provider` now ({name: "Authorization", value: "Bearer ..."}). */
  async authorizationHeader(provider: string): Promise<AuthorizationHeader> {
    const lease = await this.#usable(provider);
    if (lease.headerName === "") {
      return new AuthorizationHeader("Authorization", `Bearer ${lease.apiKey}`);
    }
    return new AuthorizationHeader(lease.headerName, lease.headerValue);
  }

  /** Where to send it (the provider's configured base URL). */
  async baseUrl(provider: string): Promise<string> {
    return (await this.#usable(provider)).baseUrl;
  }

  /** The lease held for `provider` (acquired first if none is usable). Holds the key. */
  currentLease(provider: string): Promise<Lease> {
    return this.#usable(provider);
  }

  /**
   * Tells the broker the provider answered `httpStatus` (401, 403, 429) to the held key, with its
   * error code and body if any (never the key); moves to a newer key when the broker says there
   * is one. Returns the broker's classification (key_rejected, rate_limited, ...).
   */
  async reportAuthFailure(
    provider: string,
    httpStatus: number,
    errorCode = "",
    body = "",
  ): Promise<string> {
    this.#checkOpen();
    const held = this.#held.get(provider);
    if (held === undefined || held.dropped) {
      throw new BrokerError(Status.FAILED_PRECONDITION, `no lease held for ${provider}`);
    }
    const leaseId = held.lease.leaseId;
    const response = await this.#connection.reportAuthFailure({
      leaseId,
      httpStatus,
      errorCode,
      body: truncateUtf8(body, MAX_REPORT_BODY_BYTES),
    });
    if (response.newerKeyAvailable) {
      const current = this.#held.get(provider);
      if (current !== undefined && current.lease.leaseId === leaseId) this.#markStale(current);
    }
    return response.classification;
  }

  /** Checks the connection and the token: the identity the broker authenticated. */
  async ping(): Promise<string> {
    this.#checkOpen();
    return (await this.#connection.ping({})).caller;
  }

  /**
   * Calls `listener` with the new lease whenever the key held for `provider` changes (the client
   * moved to a rotated key, or replaced a dropped one). Returns the function that unsubscribes.
   * Exceptions thrown by the listener are ignored.
   */
  onKeyChange(provider: string, listener: KeyChangeListener): () => void {
    let set = this.#listeners.get(provider);
    if (set === undefined) this.#listeners.set(provider, (set = new Set()));
    const listeners = set;
    listeners.add(listener);
    return () => {
      listeners.delete(listener);
    };
  }

  /** Stops following the broker and releases the leases held (one attempt each). */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    clearTimeout(this.#timer);
    clearTimeout(this.#watchRetry);
    this.#cancelWatch?.();
    this.#connection.stopRetrying();
    await Promise.allSettled([this.#maintaining, ...this.#acquiring.values()]);
    const ids = this.#toRelease.splice(0);
    for (const held of this.#held.values()) if (!held.dropped) ids.push(held.lease.leaseId);
    this.#held.clear();
    this.#listeners.clear();
    await Promise.allSettled(ids.map((leaseId) => this.#connection.releaseLease({ leaseId }, 1)));
    this.#connection.close();
  }

  #checkOpen(): void {
    if (this.#closing !== undefined) {
      throw new BrokerError(Status.CANCELLED, "the LeaseClient is closed");
    }
  }

  // A usable lease for `provider`, acquiring one if none is held, expired or dropped.
  async #usable(provider: string): Promise<Lease> {
    this.#checkOpen();
    const held = this.#held.get(provider);
    const now = Date.now();
    if (
      held !== undefined &&
      !held.dropped &&
      now < held.expiresAt &&
      (!held.stale || now < held.retryAfter)
    ) {
      return held.lease;
    }
    try {
      return await this.#acquire(provider);
    } catch (err) {
      // A newer key exists but the broker cannot be reached: the held key is still valid until
      // its lease expires (a ROTATED key stays valid while PREVIOUS). Never a dropped or expired
      // one.
      const current = this.#held.get(provider);
      if (current !== undefined && !current.dropped && Date.now() < current.expiresAt) {
        current.retryAfter = Date.now() + this.#options.retryIntervalMs;
        return current.lease;
      }
      throw this.#noLease(provider, current, toBrokerError(err));
    }
  }

  // The error for a call that found no usable lease: what the broker said, and why the held one
  // (if any) could not serve.
  #noLease(provider: string, held: Held | undefined, error: BrokerError): BrokerError {
    let why = `cannot acquire a lease for ${provider} from ${this.#connection.address}`;
    if (held?.dropped) {
      why += ` (the held key ${held.lease.keyFingerprint} was withdrawn)`;
    } else if (held !== undefined) {
      why += ` (the held lease expired at ${held.lease.expiresAt.toISOString()})`;
    }
    return new BrokerError(error.code, `${why}: ${error.details}`, error.reason, { cause: error });
  }

  // Acquires a lease on the current key and holds it; one request per provider at a time.
  #acquire(provider: string): Promise<Lease> {
    const pending = this.#acquiring.get(provider);
    if (pending !== undefined) return pending;
    const request: AcquireLeaseRequest = { provider, purpose: this.#options.purpose };
    if (this.#options.ttlSeconds > 0) request.ttl = duration(this.#options.ttlSeconds);
    const acquired = this.#connection
      .acquireLease(request)
      .then((wire) => {
        const lease = new Lease(wire);
        this.#hold(lease);
        return lease;
      })
      .finally(() => this.#acquiring.delete(provider));
    this.#acquiring.set(provider, acquired);
    return acquired;
  }

  // When to renew `lease`, received at `receivedAt`: measured from when this grant arrived, not
  // from issuedAt, which stays the first grant's (renewals measured from it come ever sooner).
  #dueFor(lease: Lease, receivedAt: number): number {
    const expires = lease.expiresAt.getTime();
    let due = receivedAt + (expires - receivedAt) * this.#options.renewFraction;
    if (lease.keyRetiresAt !== null) {
      due = Math.min(due, lease.keyRetiresAt.getTime() - this.#options.retireMarginMs);
    }
    return due;
  }

  // Takes `lease` as the held one for its provider; releases the one it replaces.
  #hold(lease: Lease): void {
    const previous = this.#held.get(lease.provider);
    if (previous !== undefined && previous.lease.leaseId !== lease.leaseId && !previous.dropped) {
      this.#toRelease.push(previous.lease.leaseId);
    }
    const receivedAt = Date.now();
    this.#held.set(lease.provider, {
      lease,
      expiresAt: lease.expiresAt.getTime(),
      receivedAt,
      due: this.#dueFor(lease, receivedAt),
      stale: false,
      dropped: false,
      retryAfter: -Infinity,
    });
    if (previous !== undefined && previous.lease.keyFingerprint !== lease.keyFingerprint) {
      this.#keyChanged(lease);
    }
    this.#wake();
  }

  #keyChanged(lease: Lease): void {
    for (const listener of this.#listeners.get(lease.provider) ?? []) {
      Promise.resolve()
        .then(() => listener(lease))
        .catch(() => undefined);
    }
  }

  // Marks the held lease dropped: its key may not be used again.
  #drop(held: Held): void {
    if (!held.dropped) this.#toRelease.push(held.lease.leaseId);
    held.dropped = true;
    held.due = -Infinity; // re-acquire now
    this.#wake();
  }

  #markStale(held: Held): void {
    held.stale = true;
    held.due = -Infinity;
    this.#wake();
  }

  // Renews the lease `snapshot` was taken of, or replaces it; on failure tries again after
  // retryIntervalMs.
  async #maintain(provider: string, snapshot: Held): Promise<void> {
    const retiresAt = snapshot.lease.keyRetiresAt;
    let acquire =
      snapshot.dropped ||
      snapshot.stale ||
      // The key retires soon: move to the current one.
      (retiresAt !== null && Date.now() >= retiresAt.getTime() - this.#options.retireMarginMs);
    if (!acquire) {
      try {
        const wire = await this.#connection.renewLease({
          leaseId: snapshot.lease.leaseId,
          ...(this.#options.ttlSeconds > 0 ? { ttl: duration(this.#options.ttlSeconds) } : {}),
        });
        const held = this.#held.get(provider);
        if (held !== undefined && held.lease.leaseId === wire.leaseId && !held.dropped) {
          held.lease = new Lease(wire);
          held.expiresAt = held.lease.expiresAt.getTime();
          held.receivedAt = Date.now();
          // A ROTATED event during the renewal still moves it to the new key.
          held.due = held.stale ? -Infinity : this.#dueFor(held.lease, held.receivedAt);
        }
        return;
      } catch (err) {
        // The broker forgot the lease (restarted without persistent state, or it expired) or
        // will not renew it (its key retired): take a new one. Anything else: try again later.
        const code = toBrokerError(err).code;
        acquire = code === Status.NOT_FOUND || code === Status.FAILED_PRECONDITION;
      }
    }
    if (acquire) {
      try {
        await this.#acquire(provider);
        return;
      } catch {
        // retried below
      }
    }
    const held = this.#held.get(provider);
    if (held !== undefined && held.lease.leaseId === snapshot.lease.leaseId) {
      held.due = Date.now() + this.#options.retryIntervalMs;
    }
  }

  // (Re)arms the background timer for the earliest due lease (or pending release). The timer is
  // unref'd: it never keeps the process alive.
  #wake(): void {
    if (this.#closing !== undefined || this.#maintaining !== undefined) return; // rearmed after
    clearTimeout(this.#timer);
    this.#timer = undefined;
    let next = this.#toRelease.length > 0 ? -Infinity : Infinity;
    for (const held of this.#held.values()) next = Math.min(next, held.due);
    if (next === Infinity) return;
    const delay = Math.min(Math.max(0, next - Date.now()), MAX_TIMER_MS);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#maintaining = this.#tick().finally(() => {
        this.#maintaining = undefined;
        this.#wake();
      });
    }, delay);
    this.#timer.unref();
  }

  // One step of the background loop: the pending releases, or the earliest due lease.
  async #tick(): Promise<void> {
    if (this.#closing !== undefined) return;
    if (this.#toRelease.length > 0) {
      const ids = this.#toRelease.splice(0);
      // Best effort: a lease not released expires by itself at the broker.
      await Promise.allSettled(ids.map((leaseId) => this.#connection.releaseLease({ leaseId })));
      return;
    }
    let provider: string | undefined;
    let next = Infinity;
    for (const [p, held] of this.#held) {
      if (held.due < next) {
        next = held.due;
        provider = p;
      }
    }
    const held = provider === undefined ? undefined : this.#held.get(provider);
    if (provider === undefined || held === undefined || next > Date.now()) return;
    await this.#maintain(provider, { ...held });
  }

  #watch(): void {
    if (this.#closing !== undefined) return;
    this.#cancelWatch = this.#connection.watchKeys(
      {},
      {
        event: (event) => this.#onEvent(event),
        end: () => {
          this.#cancelWatch = undefined;
          if (this.#closing !== undefined) return;
          // Reconnect later (or when the client stops); the SNAPSHOT then says what changed.
          this.#watchRetry = setTimeout(() => this.#watch(), this.#options.retryIntervalMs);
          this.#watchRetry.unref();
        },
      },
    );
  }

  #onEvent(event: KeyEvent): void {
    const held = this.#held.get(event.provider);
    if (held === undefined || this.#closing !== undefined) return;
    const ours = event.keyVersion === held.lease.keyVersion;
    switch (event.type) {
      case "ROTATED":
        if (!ours) this.#markStale(held);
        break;
      case "RETIRING":
        if (ours && event.retiresAt !== null) {
          held.lease = held.lease.withKeyRetiresAt(event.retiresAt);
          held.due = Math.min(held.due, this.#dueFor(held.lease, held.receivedAt));
          this.#wake();
        }
        break;
      case "RETIRED":
      case "QUARANTINED":
      case "REVOKED":
        if (ours) this.#drop(held);
        break;
      case "SNAPSHOT":
        // After a reconnect: what changed while the stream was down.
        if (!ours) break;
        if (
          event.state === "KEY_STATE_RETIRED" ||
          event.state === "KEY_STATE_QUARANTINED" ||
          event.state === "KEY_STATE_REVOKED"
        ) {
          this.#drop(held);
        } else if (event.state === "KEY_STATE_PREVIOUS") {
          this.#markStale(held);
        }
        break;
      default:
        break;
    }
  }
}
