// LeaseConnection: the broker's lease API as plain async calls. Each call carries the bearer
// token and the configured deadline, is tried again with jittered exponential backoff while the
// broker is UNAVAILABLE (a restart, a replica going away), and fails with a BrokerError carrying
// the broker's reason. LeaseClient is built on it.
import { readFileSync } from "node:fs";

import {
  Client,
  Metadata,
  credentials,
  type ChannelCredentials,
  type ChannelOptions,
  type ClientReadableStream,
  type StatusObject,
} from "@grpc/grpc-js";
import type { MethodDefinition } from "@grpc/proto-loader";

import { BrokerError, Status, toBrokerError } from "./errors.js";
import type { ResolvedOptions, TlsOptions } from "./options.js";
import {
  leaseService,
  type AcquireLeaseRequest,
  type KeyEvent,
  type LeaseServiceMethods,
  type PingRequest,
  type PingResponse,
  type ReleaseLeaseRequest,
  type RenewLeaseRequest,
  type ReportAuthFailureRequest,
  type ReportAuthFailureResponse,
  type WatchKeysRequest,
  type WireLease,
} from "./proto.js";

export interface KeyEventListener {
  event(event: KeyEvent): void;
  /** The stream ended: null when the broker closed it, else why it broke. Called once. */
  end(error: BrokerError | null): void;
}

function readPem(path: string, what: string): Buffer {
  try {
    const pem = readFileSync(path);
    if (pem.length > 0) return pem;
  } catch {
    // reported below
  }
  throw new BrokerError(Status.INVALID_ARGUMENT, `cannot read ${what} ${path}`);
}

function channelCredentials(tls: TlsOptions | undefined): ChannelCredentials {
  if (tls === undefined) return credentials.createInsecure();
  const ca = tls.rootCaFile ? readPem(tls.rootCaFile, "the CA bundle") : null;
  const cert = tls.certFile ? readPem(tls.certFile, "the client certificate") : null;
  const key = tls.keyFile ? readPem(tls.keyFile, "the client key") : null;
  return credentials.createSsl(ca, key, cert);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export class LeaseConnection {
  readonly address: string;
  readonly #options: ResolvedOptions;
  readonly #methods: LeaseServiceMethods;
  readonly #client: Client;
  #closed = false;
  #retrying = true;

  constructor(options: ResolvedOptions) {
    this.address = options.address;
    this.#options = options;
    this.#methods = leaseService(options.protoDir);
    const channelOptions: ChannelOptions = { ...options.channelOptions };
    const serverName = options.tls?.serverNameOverride;
    if (serverName) {
      channelOptions["grpc.ssl_target_name_override"] = serverName;
      channelOptions["grpc.default_authority"] = serverName;
    }
    this.#client = new Client(options.address, channelCredentials(options.tls), channelOptions);
  }

  acquireLease(request: AcquireLeaseRequest): Promise<WireLease> {
    return this.#call(this.#methods.AcquireLease, request);
  }

  renewLease(request: RenewLeaseRequest): Promise<WireLease> {
    return this.#call(this.#methods.RenewLease, request);
  }

  /** `attempts` overrides the retry policy (1 on close: the lease expires by itself anyway). */
  async releaseLease(request: ReleaseLeaseRequest, attempts?: number): Promise<void> {
    await this.#call(this.#methods.ReleaseLease, request, attempts);
  }

  reportAuthFailure(request: ReportAuthFailureRequest): Promise<ReportAuthFailureResponse> {
    return this.#call(this.#methods.ReportAuthFailure, request);
  }

  ping(request: PingRequest): Promise<PingResponse> {
    return this.#call(this.#methods.Ping, request);
  }

  /** Opens a WatchKeys stream (no deadline); returns its cancel function. */
  watchKeys(request: WatchKeysRequest, listener: KeyEventListener): () => void {
    const method = this.#methods.WatchKeys;
    let call: ClientReadableStream<KeyEvent> | undefined;
    let cancelled = false;
    let ended = false;
    const end = (error: BrokerError | null): void => {
      if (ended) return;
      ended = true;
      listener.end(error);
    };
    this.#metadata().then(
      (metadata) => {
        if (cancelled || this.#closed) {
          end(new BrokerError(Status.CANCELLED, "WatchKeys cancelled"));
          return;
        }
        call = this.#client.makeServerStreamRequest(
          method.path,
          method.requestSerialize,
          method.responseDeserialize,
          request,
          metadata,
          {},
        );
        call.on("data", (event: KeyEvent) => {
          if (!ended) listener.event(event);
        });
        call.on("error", (err: unknown) => end(toBrokerError(err)));
        call.on("status", (status: StatusObject) => {
          end(status.code === Status.OK ? null : new BrokerError(status.code, status.details));
        });
      },
      (err: unknown) => end(toBrokerError(err)),
    );
    return () => {
      cancelled = true;
      call?.cancel();
    };
  }

  /** Calls in flight and later ones make one attempt only (the client is closing). */
  stopRetrying(): void {
    this.#retrying = false;
  }

  /** Ends the channel; calls made after fail with CANCELLED. */
  close(): void {
    this.#closed = true;
    this.#client.close();
  }

  async #metadata(): Promise<Metadata> {
    const metadata = new Metadata();
    const token = this.#options.token;
    if (token !== undefined) metadata.set("authorization", `Bearer ${await token.token()}`);
    return metadata;
  }

  // One call with the deadline, tried again with exponential backoff and full jitter (a fleet
  // of clients does not come back in step after a broker restart) while the broker is
  // UNAVAILABLE. A call that reached the broker is never repeated after another outcome.
  async #call<Req, Res>(
    method: MethodDefinition<Req, Res>,
    request: Req,
    attempts = this.#options.retry.maxAttempts,
  ): Promise<Res> {
    const retry = this.#options.retry;
    let backoff = retry.initialBackoffMs;
    for (let attempt = 1; ; ++attempt) {
      try {
        return await this.#once(method, request);
      } catch (err) {
        const error = toBrokerError(err);
        const again = error.code === Status.UNAVAILABLE && attempt < attempts && this.#retrying;
        if (!again) throw error;
        await sleep(backoff * (0.5 + Math.random() / 2));
        backoff = Math.min(backoff * 2, retry.maxBackoffMs);
      }
    }
  }

  async #once<Req, Res>(method: MethodDefinition<Req, Res>, request: Req): Promise<Res> {
    if (this.#closed) throw new BrokerError(Status.CANCELLED, "the connection is closed");
    const metadata = await this.#metadata();
    const deadlineMs = this.#options.deadlineMs;
    const deadline = deadlineMs > 0 ? Date.now() + deadlineMs : Infinity;
    return new Promise<Res>((resolve, reject) => {
      this.#client.makeUnaryRequest(
        method.path,
        method.requestSerialize,
        method.responseDeserialize,
        request,
        metadata,
        { deadline },
        (err, response) => {
          if (err) reject(err);
          else if (response === undefined) reject(new BrokerError(Status.INTERNAL, "no response"));
          else resolve(response);
        },
      );
    });
  }
}
