// Reads the broker's machine-readable reason (google.rpc.ErrorInfo.reason: NO_RULE, KEY_RETIRED,
// LEASE_NOT_FOUND, ...) from the `grpc-status-details-bin` trailer, a serialized google.rpc.Status
// whose `details` are google.protobuf.Any. A few fields of three messages: decoded by hand rather
// than pulling a protobuf runtime into the public surface.

const STATUS_DETAILS = 3; // google.rpc.Status.details (repeated Any)
const ANY_TYPE_URL = 1;
const ANY_VALUE = 2;
const ERROR_INFO_REASON = 1;
const ERROR_INFO_TYPE = "google.rpc.ErrorInfo";

type Field = { number: number; bytes: Buffer | null };

// The fields of one message; length-delimited ones carry their bytes. Throws on malformed input.
function* fields(buf: Buffer): Generator<Field> {
  let pos = 0;
  const varint = (): number => {
    let result = 0;
    let shift = 0;
    for (;;) {
      if (pos >= buf.length || shift > 63) throw new Error("truncated varint");
      const b = buf[pos++] as number;
      if (shift < 53) result += (b & 0x7f) * 2 ** shift;
      shift += 7;
      if ((b & 0x80) === 0) return result;
    }
  };
  while (pos < buf.length) {
    const tag = varint();
    const number = Math.floor(tag / 8);
    switch (tag & 7) {
      case 0:
        varint();
        yield { number, bytes: null };
        break;
      case 1:
        pos += 8;
        yield { number, bytes: null };
        break;
      case 2: {
        const len = varint();
        if (pos + len > buf.length) throw new Error("truncated field");
        yield { number, bytes: buf.subarray(pos, pos + len) };
        pos += len;
        break;
      }
      case 5:
        pos += 4;
        yield { number, bytes: null };
        break;
      default:
        throw new Error("unsupported wire type");
    }
  }
}

function firstString(buf: Buffer, number: number): string {
  for (const f of fields(buf)) {
    if (f.number === number && f.bytes !== null) return f.bytes.toString("utf8");
  }
  return "";
}

/** The ErrorInfo reason in a serialized google.rpc.Status; "" when there is none. */
export function errorReason(statusDetails: Buffer): string {
  try {
    for (const detail of fields(statusDetails)) {
      if (detail.number !== STATUS_DETAILS || detail.bytes === null) continue;
      const typeUrl = firstString(detail.bytes, ANY_TYPE_URL);
      if (!typeUrl.endsWith(`/${ERROR_INFO_TYPE}`)) continue;
      for (const f of fields(detail.bytes)) {
        if (f.number === ANY_VALUE && f.bytes !== null) {
          return firstString(f.bytes, ERROR_INFO_REASON);
        }
      }
    }
  } catch {
    // Malformed details: no reason (the status code and message still stand).
  }
  return "";
}
