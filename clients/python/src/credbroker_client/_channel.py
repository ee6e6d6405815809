"""Channel construction and per-call plumbing shared by the sync and asyncio clients."""
from __future__ import annotations

import random
from typing import List, Optional, Sequence, Tuple

import grpc

from .errors import BrokerError
from .options import ClientOptions, RetryPolicy, TlsOptions
from .proto import lease_pb2
from .token import CallerToken, StaticToken, TokenFile

Metadata = Sequence[Tuple[str, str]]


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise ValueError(f"cannot read {what} {path}: {err.strerror}") from None
    if not data:
        raise ValueError(f"{what} {path} is empty")
    return data


def channel_credentials(tls: TlsOptions) -> grpc.ChannelCredentials:
    """TLS (or mutual TLS) credentials from the files in `tls`; ValueError if one is unreadable."""
    root = _read(tls.root_ca_file, "the CA bundle") if tls.root_ca_file else None
    cert = _read(tls.cert_file, "the client certificate") if tls.cert_file else None
    key = _read(tls.key_file, "the client key") if tls.key_file else None
    return grpc.ssl_channel_credentials(root_certificates=root, private_key=key,
                                        certificate_chain=cert)


def channel_args(options: ClientOptions) -> List[Tuple[str, object]]:
    """Reconnect quickly after a broker restart (bounded by the retry policy's max backoff)."""
    args: List[Tuple[str, object]] = [
        ("grpc.initial_reconnect_backoff_ms", max(1, int(options.retry.initial_backoff * 1000))),
        ("grpc.max_reconnect_backoff_ms", max(1, int(options.retry.max_backoff * 1000))),
    ]
    if options.tls is not None and options.tls.server_name:
        args.append(("grpc.ssl_target_name_override", options.tls.server_name))
    return args


def caller_token(options: ClientOptions) -> Optional[CallerToken]:
    """The token source the options name, None when the client certificate is the identity."""
    if options.token is not None:
        return StaticToken(options.token)
    if options.token_file is not None:
        return TokenFile(options.token_file)
    return None


def call_metadata(token: Optional[CallerToken]) -> Metadata:
    """``authorization: Bearer <token>`` (raises BrokerError UNAUTHENTICATED if unreadable)."""
    return () if token is None else (("authorization", "Bearer " + token.token()),)


def backoff_delays(policy: RetryPolicy) -> List[float]:
    """Sleeps between the attempts of one call: exponential, full jitter (0.5..1 of each step)."""
    delays: List[float] = []
    step = policy.initial_backoff
    for _ in range(max(1, policy.max_attempts) - 1):
        delays.append(step * random.uniform(0.5, 1.0))
        step = min(step * 2, policy.max_backoff)
    return delays


def acquire_request(provider: str, options: ClientOptions) -> "lease_pb2.AcquireLeaseRequest":
    request = lease_pb2.AcquireLeaseRequest(provider=provider, purpose=options.purpose)
    if options.ttl is not None:
        request.ttl.FromNanoseconds(int(options.ttl * 1e9))
    return request


def renew_request(lease_id: str, options: ClientOptions) -> "lease_pb2.RenewLeaseRequest":
    request = lease_pb2.RenewLeaseRequest(lease_id=lease_id)
    if options.ttl is not None:
        request.ttl.FromNanoseconds(int(options.ttl * 1e9))
    return request


def report_request(lease_id: str, http_status: int, error_code: str,
                   body: str) -> "lease_pb2.ReportAuthFailureRequest":
    # The broker reads at most the first 4096 bytes of the body (cut on a character boundary).
    clipped = body.encode("utf-8")[:4096].decode("utf-8", "ignore")
    return lease_pb2.ReportAuthFailureRequest(lease_id=lease_id, http_status=http_status,
                                              error_code=error_code, body=clipped)


def is_retryable(error: BrokerError) -> bool:
    """Only UNAVAILABLE is retried: a lease call that reached the broker is never repeated."""
    return bool(error.code == grpc.StatusCode.UNAVAILABLE)
