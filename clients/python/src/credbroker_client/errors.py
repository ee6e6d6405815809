"""BrokerError: a failed broker call, with the gRPC code and the broker's machine-readable reason.

The broker attaches a ``google.rpc.ErrorInfo`` (domain ``credbroker.dev``) to its errors in the
``grpc-status-details-bin`` trailer; its ``reason`` ("NO_RULE", "KEY_RETIRED", ...) is what code
should branch on. The ``google.rpc`` Python protos are not a dependency: the few fields needed are
read straight from the protobuf wire format here.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, Iterator, Optional, Tuple

import grpc

STATUS_DETAILS_KEY = "grpc-status-details-bin"
ERROR_INFO_TYPE = "type.googleapis.com/google.rpc.ErrorInfo"


class BrokerError(Exception):
    """A broker call failed (or no usable lease could be had). Never carries key material.

    Attributes:
        code: the gRPC status code (UNAVAILABLE when the broker cannot be reached).
        message: the broker's (or the client's) human-readable message.
        reason: the broker's ErrorInfo reason, "" when it sent none.
        domain: the ErrorInfo domain ("credbroker.dev"), "" when none.
    """

    def __init__(self, code: grpc.StatusCode, message: str, reason: str = "",
                 domain: str = "") -> None:
        super().__init__(code, message, reason)
        self.code = code
        self.message = message
        self.reason = reason
        self.domain = domain

    def __str__(self) -> str:
        text = f"{self.code.name}: {self.message}"
        return f"{text} (reason {self.reason})" if self.reason else text

    def __repr__(self) -> str:
        return f"BrokerError(code={self.code.name}, message={self.message!r}, reason={self.reason!r})"

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> "BrokerError":
        """Converts a grpc (sync or asyncio) error, decoding the ErrorInfo reason if present."""
        code = _call(error, "code") or grpc.StatusCode.UNKNOWN
        message = _call(error, "details") or ""
        reason, domain = error_info(_call(error, "trailing_metadata") or ())
        return cls(code, message, reason, domain)

    def with_context(self, context: str) -> "BrokerError":
        """The same error with `context` in front of its message."""
        return BrokerError(self.code, f"{context}: {self.message}", self.reason, self.domain)


def _call(error: Any, method: str) -> Any:
    fn = getattr(error, method, None)
    try:
        return fn() if callable(fn) else None
    except Exception:  # noqa: BLE001 - a half-initialised error object: treat as absent
        return None


def error_info(trailing_metadata: Iterable[Tuple[str, Any]]) -> Tuple[str, str]:
    """(reason, domain) of the first ErrorInfo in a call's status details, ("", "") if none."""
    for key, value in trailing_metadata:
        if key != STATUS_DETAILS_KEY or not isinstance(value, (bytes, bytearray)):
            continue
        try:
            return parse_status_details(bytes(value))
        except ValueError:
            return "", ""
    return "", ""


def parse_status_details(data: bytes) -> Tuple[str, str]:
    """(reason, domain) from a serialized google.rpc.Status holding an ErrorInfo."""
    for field, value in _fields(data):
        if field != 3 or not isinstance(value, bytes):  # Status.details: repeated Any
            continue
        any_fields = _as_dict(value)
        if any_fields.get(1, b"").decode("utf-8", "replace") != ERROR_INFO_TYPE:
            continue
        info = _as_dict(any_fields.get(2, b""))  # ErrorInfo: 1 reason, 2 domain
        return (info.get(1, b"").decode("utf-8", "replace"),
                info.get(2, b"").decode("utf-8", "replace"))
    return "", ""


def _as_dict(data: bytes) -> Dict[int, bytes]:
    """The length-delimited fields of a message (last one wins), by field number."""
    return {f: v for f, v in _fields(data) if isinstance(v, bytes)}


def _fields(data: bytes) -> Iterator[Tuple[int, Any]]:
    """(field number, value) of each field: int for varints/fixed, bytes for length-delimited."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            yield field, value
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ValueError("truncated field")
            yield field, data[pos:pos + length]
            pos += length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if pos + size > len(data):
                raise ValueError("truncated field")
            yield field, int.from_bytes(data[pos:pos + size], "little")
            pos += size
        else:
            raise ValueError(f"unsupported wire type {wire}")


def _varint(data: bytes, pos: int) -> Tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("bad varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def unavailable(message: str) -> BrokerError:
    """A client-side UNAVAILABLE (no usable lease and no broker to get one from)."""
    return BrokerError(grpc.StatusCode.UNAVAILABLE, message)


def unauthenticated(message: str) -> BrokerError:
    """A client-side UNAUTHENTICATED (the caller's token cannot be read)."""
    return BrokerError(grpc.StatusCode.UNAUTHENTICATED, message)


def optional_reason(error: Optional[BaseException]) -> str:
    """The reason of a BrokerError, "" for anything else."""
    return error.reason if isinstance(error, BrokerError) else ""
