// The broker's LeaseService as loaded from credbroker/v1/lease.proto at runtime, and the shapes of
// its messages as @grpc/proto-loader hands them over (camelCase fields, enums as names, 64-bit
// integers as numbers, unset messages as null).
import { existsSync } from "node:fs";
import { join } from "node:path";

import { loadSync, type MethodDefinition } from "@grpc/proto-loader";

import { BrokerError, Status } from "./errors.js";

export type KeyState =
  | "KEY_STATE_UNSPECIFIED"
  | "KEY_STATE_PENDING"
  | "KEY_STATE_CURRENT"
  | "KEY_STATE_PREVIOUS"
  | "KEY_STATE_RETIRED"
  | "KEY_STATE_QUARANTINED"
  | "KEY_STATE_REVOKED";

export type KeyEventType =
  | "TYPE_UNSPECIFIED"
  | "SNAPSHOT"
  | "SYNCED"
  | "ROTATED"
  | "RETIRING"
  | "RETIRED"
  | "QUARANTINED"
  | "REVOKED"
  | "REJECTED"
  | "ADDED"
  | "ANOMALY"
  | "STATE_STALE"
  | "STATE_FRESH";

/** google.protobuf.Timestamp and Duration. */
export interface WireTime {
  seconds: number;
  nanos: number;
}

export interface PingRequest {
  payload?: Buffer;
}
export interface PingResponse {
  caller: string;
  payload: Buffer;
}
export interface AcquireLeaseRequest {
  provider: string;
  ttl?: WireTime;
  purpose?: string;
  scope?: string;
}
export interface RenewLeaseRequest {
  leaseId: string;
  ttl?: WireTime;
}
export interface ReleaseLeaseRequest {
  leaseId: string;
}
export type ReleaseLeaseResponse = Record<string, never>;
export interface ReportAuthFailureRequest {
  leaseId: string;
  httpStatus: number;
  errorCode?: string;
  body?: string;
}
export interface ReportAuthFailureResponse {
  newerKeyAvailable: boolean;
  currentKeyVersion: string;
  classification: string;
}
export interface WireLease {
  leaseId: string;
  provider: string;
  /** The key itself. Never log it. */
  apiKey: string;
  keyVersion: string;
  keyFingerprint: string;
  issuedAt: WireTime | null;
  expiresAt: WireTime | null;
  keyRetiresAt: WireTime | null;
  baseUrl: string;
  headerName: string;
  headerValue: string;
  renewCount: number;
  keyState: KeyState;
  scopes: string[];
}
export interface WatchKeysRequest {
  providers?: string[];
}
export interface KeyEvent {
  type: KeyEventType;
  provider: string;
  keyVersion: string;
  keyFingerprint: string;
  state: KeyState;
  retiresAt: WireTime | null;
  at: WireTime | null;
  reason: string;
  caller: string;
  anomalyKind: string;
  keyHint: string;
}

type Method<Req, Res> = MethodDefinition<Req, Res>;

export interface LeaseServiceMethods {
  AcquireLease: Method<AcquireLeaseRequest, WireLease>;
  RenewLease: Method<RenewLeaseRequest, WireLease>;
  ReleaseLease: Method<ReleaseLeaseRequest, ReleaseLeaseResponse>;
  ReportAuthFailure: Method<ReportAuthFailureRequest, ReportAuthFailureResponse>;
  WatchKeys: Method<WatchKeysRequest, KeyEvent>;
  Ping: Method<PingRequest, PingResponse>;
}

/** How every credbroker message is converted (the shapes above depend on it). */
export const LOADER_OPTIONS = {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
} as const;

/** The copy of ../../proto shipped in the package (see scripts/copy-protos.mjs). */
export const DEFAULT_PROTO_DIR = join(__dirname, "..", "proto");

const cache = new Map<string, LeaseServiceMethods>();

/** LeaseService's methods from `protoDir`/credbroker/v1/lease.proto (loaded once per dir). */
export function leaseService(protoDir: string = DEFAULT_PROTO_DIR): LeaseServiceMethods {
  const cached = cache.get(protoDir);
  if (cached !== undefined) return cached;
  const file = join(protoDir, "credbroker", "v1", "lease.proto");
  if (!existsSync(file)) {
    throw new BrokerError(
      Status.FAILED_PRECONDITION,
      `no ${file}: build the package (npm run build copies the protos) or set protoDir`,
    );
  }
  const definition = loadSync("credbroker/v1/lease.proto", {
    ...LOADER_OPTIONS,
    includeDirs: [protoDir],
  });
  const service = definition["credbroker.v1.LeaseService"];
  if (service === undefined || "format" in service) {
    throw new BrokerError(Status.FAILED_PRECONDITION, `no LeaseService in ${file}`);
  }
  const methods = service as unknown as LeaseServiceMethods;
  cache.set(protoDir, methods);
  return methods;
}

/** Milliseconds since the epoch of a Timestamp; null for an unset one. */
export function timeMs(t: WireTime | null | undefined): number | null {
  if (t === null || t === undefined) return null;
  return t.seconds * 1000 + Math.floor(t.nanos / 1e6);
}

/** A Duration of `seconds` (fractions kept to the nanosecond). */
export function duration(seconds: number): WireTime {
  const nanos = Math.round(seconds * 1e9);
  return { seconds: Math.floor(nanos / 1e9), nanos: nanos % 1e9 };
}
