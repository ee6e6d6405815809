"""Client configuration: where the broker is, how to reach it, who the caller is, how patient."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass(frozen=True)
class TlsOptions:
    """TLS to the broker. Empty root_ca_file: the system roots. cert_file/key_file: mutual TLS."""

    root_ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    # The name the broker's certificate must carry when it differs from the address's host.
    server_name: str = ""

    def __post_init__(self) -> None:
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("a client certificate needs both cert_file and key_file")


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of one call while the broker is UNAVAILABLE (exponential backoff, full jitter)."""

    max_attempts: int = 4
    initial_backoff: float = 0.1  # seconds
    max_backoff: float = 2.0  # seconds

    def __post_init__(self) -> None:
        if self.initial_backoff <= 0 or self.max_backoff < self.initial_backoff:
            raise ValueError("need 0 < initial_backoff <= max_backoff")


@dataclass(frozen=True)
class ClientOptions:
    """Options of LeaseClient and AsyncLeaseClient. Durations are in seconds.

    Exactly one of `token` (a static bearer token) and `token_file` (e.g. the projected
    Kubernetes service-account token, re-read when it changes) is normally set; neither when the
    client certificate (mTLS) is the identity.
    """

    address: str
    token: Optional[str] = field(default=None, repr=False)
    token_file: Optional[str] = None
    # None: plaintext (loopback, or a mesh that encrypts).
    tls: Optional[TlsOptions] = None
    # Deadline of each call to the broker.
    deadline: float = 5.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # Requested lease lifetime; None: the broker's default.
    ttl: Optional[float] = None
    # For the broker's audit log ("nightly-batch"); never used for decisions.
    purpose: str = ""
    # Renew once this fraction of a lease's lifetime has passed.
    renew_fraction: float = 2.0 / 3.0
    # Move to the current key this long before a held (PREVIOUS) key retires.
    retire_margin: float = 60.0
    # Follow WatchKeys (False: renewals only).
    watch: bool = True
    # Wait before reconnecting a broken WatchKeys stream, and between failed renewals.
    retry_interval: float = 1.0

    def __post_init__(self) -> None:
        if not self.address:
            raise ValueError("no broker address")
        if self.token is not None and self.token_file is not None:
            raise ValueError("set token or token_file, not both")
        if self.token is not None and not self.token.strip():
            raise ValueError("the token is empty")
        if not 0.0 < self.renew_fraction < 1.0:
            raise ValueError("renew_fraction must be in (0, 1)")
        if self.deadline <= 0 or self.retry_interval <= 0 or self.retire_margin < 0:
            raise ValueError("deadline and retry_interval must be > 0, retire_margin >= 0")
        if self.ttl is not None and self.ttl <= 0:
            raise ValueError("ttl must be > 0 (or None for the broker's default)")
