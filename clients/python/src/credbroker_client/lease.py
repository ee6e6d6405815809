"""Lease and Header: what the client hands out. Both hold the key: their reprs never show it."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, NamedTuple, Optional, Tuple


def fingerprint(key: str) -> str:
    """First 12 hex characters of SHA-256(key), as the broker's ``key_fingerprint``: safe to log."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]


class Header(NamedTuple):
    """The header for a provider call: ``name: value`` (e.g. ``Authorization: Bearer <key>``)."""

    name: str
    value: str

    def __repr__(self) -> str:
        return f"Header(name={self.name!r}, value=<redacted>)"

    def __str__(self) -> str:
        return self.__repr__()


def _time(ts: Any) -> datetime:
    return datetime.fromtimestamp(ts.seconds + ts.nanos / 1e9, tz=timezone.utc)


@dataclass(frozen=True)
class Lease:
    """A lease on one key version of one provider. `api_key` and `header_value` are secret."""

    lease_id: str
    provider: str
    key_version: str
    key_fingerprint: str
    issued_at: datetime
    expires_at: datetime
    # When the key version stops being valid; None while it is CURRENT.
    key_retires_at: Optional[datetime]
    base_url: str
    header_name: str
    renew_count: int
    # "CURRENT", "PREVIOUS", ... (the KeyState name without its prefix).
    key_state: str
    scopes: Tuple[str, ...]
    api_key: str = field(repr=False)
    header_value: str = field(repr=False)

    @classmethod
    def from_proto(cls, pb: Any) -> "Lease":
        """From a ``credbroker.v1.Lease`` message."""
        state = pb.DESCRIPTOR.fields_by_name["key_state"].enum_type.values_by_number.get(
            pb.key_state)
        return cls(
            lease_id=pb.lease_id,
            provider=pb.provider,
            key_version=pb.key_version,
            key_fingerprint=pb.key_fingerprint,
            issued_at=_time(pb.issued_at),
            expires_at=_time(pb.expires_at),
            key_retires_at=_time(pb.key_retires_at) if pb.HasField("key_retires_at") else None,
            base_url=pb.base_url,
            header_name=pb.header_name,
            renew_count=pb.renew_count,
            key_state=state.name.replace("KEY_STATE_", "") if state else str(pb.key_state),
            scopes=tuple(pb.scopes),
            api_key=pb.api_key,
            header_value=pb.header_value,
        )

    def header(self) -> Header:
        """The ready-made header, or ``Authorization: Bearer <key>`` when the broker sent none."""
        if not self.header_name:
            return Header("Authorization", "Bearer " + self.api_key)
        return Header(self.header_name, self.header_value)

    def with_retires_at(self, retires_at: datetime) -> "Lease":
        """A copy whose key retires at `retires_at` (a RETIRING event for the held key)."""
        return replace(self, key_retires_at=retires_at)
