// What a service tells the client: where the broker is, how to reach it (plaintext on loopback or
// in a mesh, TLS, mutual TLS), who it is (a bearer token, usually the projected service-account
// token file, re-read when the kubelet rotates it), and how patient to be.
import type { ChannelOptions } from "@grpc/grpc-js";

import { BrokerError, Status } from "./errors.js";
import { StaticToken, TokenFile, type CallerToken } from "./token.js";

export interface TlsOptions {
  /** PEM bundle the broker's certificate must chain to; absent: the system roots. */
  rootCaFile?: string | undefined;
  /** Client certificate and key (mutual TLS); both or neither. */
  certFile?: string | undefined;
  keyFile?: string | undefined;
  /** The name the broker's certificate must carry when it differs from the address's host. */
  serverNameOverride?: string | undefined;
}

export interface RetryPolicy {
  /** Attempts per call while the broker is UNAVAILABLE (restarting, a replica going away). */
  maxAttempts?: number | undefined;
  /** First wait between attempts; doubles up to maxBackoffMs, each with full jitter. */
  initialBackoffMs?: number | undefined;
  maxBackoffMs?: number | undefined;
}

export interface LeaseClientOptions {
  /** HOST:PORT of the broker ("credbroker.credbroker.svc:7443"). */
  address: string;
  /** A static bearer token (development). At most one of token, tokenFile, tokenSource. */
  token?: string | undefined;
  /** A file holding the token (the projected service-account token), re-read when it changes. */
  tokenFile?: string | undefined;
  /** Any other source of the token. */
  tokenSource?: CallerToken | undefined;
  /** Absent: plaintext (loopback, or a mesh that encrypts). */
  tls?: TlsOptions | undefined;
  /** Deadline of each call, in milliseconds (default 5000; 0: none). */
  deadlineMs?: number | undefined;
  retry?: RetryPolicy | undefined;
  /** Requested lease lifetime; absent or 0: the broker's default. */
  ttlSeconds?: number | undefined;
  /** For the broker's audit log ("nightly-batch"); never used for decisions. */
  purpose?: string | undefined;
  /** Renew once this fraction of a lease's lifetime has passed (default 2/3). */
  renewFraction?: number | undefined;
  /** Move to the current key this long before a held (PREVIOUS) key retires (default 60000). */
  retireMarginMs?: number | undefined;
  /** Follow WatchKeys (default true; off: renewals only). */
  watch?: boolean | undefined;
  /** Wait before reconnecting a broken WatchKeys stream, and between failed renewals (1000). */
  retryIntervalMs?: number | undefined;
  /** Where lease.proto lives (credbroker/v1/lease.proto under it); default: the package's copy. */
  protoDir?: string | undefined;
  /** Extra gRPC channel options, over the client's defaults. */
  channelOptions?: ChannelOptions | undefined;
}

export interface ResolvedRetryPolicy {
  maxAttempts: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
}

/** The options with every default filled in and every value checked. */
export interface ResolvedOptions {
  address: string;
  /** Absent when the client certificate is the identity. */
  token: CallerToken | undefined;
  tls: TlsOptions | undefined;
  deadlineMs: number;
  retry: ResolvedRetryPolicy;
  ttlSeconds: number;
  purpose: string;
  renewFraction: number;
  retireMarginMs: number;
  watch: boolean;
  retryIntervalMs: number;
  protoDir: string | undefined;
  channelOptions: ChannelOptions;
}

function invalid(message: string): BrokerError {
  return new BrokerError(Status.INVALID_ARGUMENT, message);
}

function nonNegative(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < 0) throw invalid(`${name} must be a number >= 0`);
  return value;
}

function resolveToken(options: LeaseClientOptions): CallerToken | undefined {
  const given = [options.token, options.tokenFile, options.tokenSource].filter(
    (t) => t !== undefined,
  );
  if (given.length > 1) throw invalid("set at most one of token, tokenFile and tokenSource");
  if (options.token !== undefined) return new StaticToken(options.token);
  if (options.tokenFile !== undefined) return new TokenFile(options.tokenFile);
  return options.tokenSource;
}

export function resolveOptions(options: LeaseClientOptions): ResolvedOptions {
  if (!options.address) throw invalid("no broker address");
  const renewFraction = options.renewFraction ?? 2 / 3;
  if (!(renewFraction > 0 && renewFraction < 1)) throw invalid("renewFraction must be in (0, 1)");
  const tls = options.tls;
  if (tls !== undefined && Boolean(tls.certFile) !== Boolean(tls.keyFile)) {
    throw invalid("a client certificate needs both certFile and keyFile");
  }
  const retry = options.retry ?? {};
  const initialBackoffMs = nonNegative("retry.initialBackoffMs", retry.initialBackoffMs, 100);
  return {
    address: options.address,
    token: resolveToken(options),
    tls,
    deadlineMs: nonNegative("deadlineMs", options.deadlineMs, 5000),
    retry: {
      maxAttempts: Math.max(1, Math.floor(retry.maxAttempts ?? 4)),
      initialBackoffMs,
      maxBackoffMs: Math.max(
        initialBackoffMs,
        nonNegative("retry.maxBackoffMs", retry.maxBackoffMs, 2000),
      ),
    },
    ttlSeconds: nonNegative("ttlSeconds", options.ttlSeconds, 0),
    purpose: options.purpose ?? "",
    renewFraction,
    retireMarginMs: nonNegative("retireMarginMs", options.retireMarginMs, 60_000),
    watch: options.watch ?? true,
    retryIntervalMs: nonNegative("retryIntervalMs", options.retryIntervalMs, 1000),
    protoDir: options.protoDir,
    channelOptions: {
      // Come back quickly after a broker restart (gRPC's own default backs off to 2 minutes).
      "grpc.initial_reconnect_backoff_ms": 250,
      "grpc.max_reconnect_backoff_ms": 5000,
      ...options.channelOptions,
    },
  };
}
