import { status as Status, type ServiceError } from "@grpc/grpc-js";

import { errorReason } from "./status-details.js";

export { Status };

/** The name of a gRPC status code ("UNAVAILABLE"). */
export function statusName(code: Status): string {
  return Status[code] ?? `CODE_${code}`;
}

/**
 * What a failed broker call (or the client itself) reports: the gRPC status code and, when the
 * broker attached one, its machine-readable reason (google.rpc.ErrorInfo: NO_RULE, KEY_RETIRED,
 * LEASE_NOT_FOUND, ...). Never carries key material.
 */
export class BrokerError extends Error {
  /** The gRPC status code (`Status.UNAVAILABLE`, ...). */
  readonly code: Status;
  /** The broker's reason ("NO_PENDING_VERSION"); "" when it sent none. */
  readonly reason: string;
  /** The status message alone (the `message` adds the code and reason). */
  readonly details: string;

  constructor(code: Status, details: string, reason = "", options?: { cause?: unknown }) {
    super(
      `${statusName(code)}${reason === "" ? "" : ` (${reason})`}: ${details}`,
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = "BrokerError";
    this.code = code;
    this.reason = reason;
    this.details = details;
  }

  /** "UNAVAILABLE" for `Status.UNAVAILABLE`. */
  get codeName(): string {
    return statusName(this.code);
  }
}

function isServiceError(err: unknown): err is ServiceError {
  return (
    err instanceof Error &&
    typeof (err as Partial<ServiceError>).code === "number" &&
    typeof (err as Partial<ServiceError>).details === "string"
  );
}

/** A BrokerError for whatever a gRPC call failed with. */
export function toBrokerError(err: unknown): BrokerError {
  if (err instanceof BrokerError) return err;
  if (isServiceError(err)) {
    const [details] = err.metadata?.get("grpc-status-details-bin") ?? [];
    const reason = Buffer.isBuffer(details) ? errorReason(details) : "";
    return new BrokerError(err.code, err.details, reason);
  }
  const message = err instanceof Error ? err.message : String(err);
  return new BrokerError(Status.INTERNAL, message);
}
