"""LeaseBook: the leases a client holds and every decision about them, without I/O or locking.

Both LeaseClient (threads, under its lock) and AsyncLeaseClient (one event loop) drive the same
book, so they behave the same. It mirrors libs/client's LeaseClient: one lease per provider;
due for renewal at `renew_fraction` of its lifetime or `retire_margin` before its key retires;
ROTATED makes it stale (re-acquire at the next chance, still served meanwhile); RETIRED,
QUARANTINED or REVOKED of its key drop it (never served again); a stale lease whose re-acquire
failed is served until it expires, never after.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional, Tuple

from .lease import Lease
from .options import ClientOptions
from .proto import lease_pb2

_KeyEvent = lease_pb2.KeyEvent
_DEAD_STATES = (lease_pb2.KEY_STATE_RETIRED, lease_pb2.KEY_STATE_QUARANTINED,
                lease_pb2.KEY_STATE_REVOKED)


@dataclass
class Held:
    """The lease held for one provider and what to do with it next. Times: epoch seconds."""

    lease: Lease
    expires_at: float
    # When this client received the current grant (acquire or renewal), by its own clock.
    received_at: float
    # When the background task renews (or re-acquires) it next.
    due: float
    # Re-acquire at the next chance (a newer key is CURRENT); the lease still serves meanwhile.
    stale: bool = False
    # Its key was retired, quarantined or revoked: never served again; re-acquire.
    dropped: bool = False
    # A stale lease is re-acquired on use only from then on (an acquire just failed).
    retry_after: float = -math.inf


class LeaseBook:
    """The held leases by provider, plus the ids of replaced or dropped leases to release."""

    def __init__(self, options: ClientOptions) -> None:
        self._renew_fraction = options.renew_fraction
        self._retire_margin = options.retire_margin
        self._retry_interval = options.retry_interval
        self._held: Dict[str, Held] = {}
        self._to_release: List[str] = []

    def usable(self, provider: str, now: float) -> Optional[Lease]:
        """The held lease if it may be served without asking the broker first."""
        held = self._held.get(provider)
        if (held is not None and not held.dropped and now < held.expires_at
                and (not held.stale or now < held.retry_after)):
            return held.lease
        return None

    def fallback(self, provider: str, now: float) -> Optional[Lease]:
        """After a failed acquire: the held lease while it is valid (never a dropped or expired
        one; a ROTATED key stays valid while PREVIOUS). Stops re-acquiring on use for a while."""
        held = self._held.get(provider)
        if held is not None and not held.dropped and now < held.expires_at:
            held.retry_after = now + self._retry_interval
            return held.lease
        return None

    def unusable_because(self, provider: str) -> str:
        """Why the held lease was not served, for error messages ("" when none is held)."""
        held = self._held.get(provider)
        if held is None:
            return ""
        if held.dropped:
            return f"key version {held.lease.key_version} was withdrawn"
        expired = datetime.fromtimestamp(held.expires_at, tz=timezone.utc).isoformat()
        return f"the lease held (key version {held.lease.key_version}) expired at {expired}"

    def hold(self, lease: Lease, now: Optional[float] = None) -> Optional[Lease]:
        """Takes `lease` as the held one for its provider; queues the one it replaces for release.
        Returns the previous lease when the key changed (for rotation listeners)."""
        old = self._held.get(lease.provider)
        changed: Optional[Lease] = None
        if old is not None:
            if old.lease.lease_id != lease.lease_id and not old.dropped:
                self._to_release.append(old.lease.lease_id)
            if old.lease.key_fingerprint != lease.key_fingerprint:
                changed = old.lease
        received = time.time() if now is None else now
        self._held[lease.provider] = Held(lease=lease, expires_at=lease.expires_at.timestamp(),
                                          received_at=received, due=self.due_for(lease, received))
        return changed

    def due_for(self, lease: Lease, received_at: float) -> float:
        """When to renew a grant received at `received_at`: renew_fraction of its lifetime from
        then (not from issued_at, which stays the first grant's: renewals measured from it would
        come ever sooner), or retire_margin before the key retires."""
        due = received_at + (lease.expires_at.timestamp() - received_at) * self._renew_fraction
        if lease.key_retires_at is not None:
            due = min(due, lease.key_retires_at.timestamp() - self._retire_margin)
        return due

    def next_due(self) -> Tuple[Optional[str], float]:
        """The provider whose lease is due first and when (None, inf when nothing is held)."""
        provider: Optional[str] = None
        due = math.inf
        for name, held in self._held.items():
            if held.due < due:
                provider, due = name, held.due
        return provider, due

    def snapshot(self, provider: str) -> Held:
        """A copy of the held entry (the background task works on it without the lock)."""
        return replace(self._held[provider])

    def must_acquire(self, held: Held, now: float) -> bool:
        """Re-acquire rather than renew: dropped, stale, or its key retires within the margin."""
        if held.dropped or held.stale:
            return True
        retires = held.lease.key_retires_at
        return retires is not None and now >= retires.timestamp() - self._retire_margin

    def renewed(self, provider: str, lease: Lease, now: Optional[float] = None) -> None:
        """A renewal's answer, if the lease is still the one held."""
        held = self._held.get(provider)
        if held is not None and held.lease.lease_id == lease.lease_id and not held.dropped:
            held.lease = lease
            held.expires_at = lease.expires_at.timestamp()
            held.received_at = time.time() if now is None else now
            held.due = self.due_for(lease, held.received_at)

    def retry_later(self, provider: str, lease_id: str, now: float) -> None:
        """Maintenance of `lease_id` failed: try again after retry_interval."""
        held = self._held.get(provider)
        if held is not None and held.lease.lease_id == lease_id:
            held.due = now + self._retry_interval

    def mark_stale(self, provider: str, lease_id: str) -> bool:
        """The broker said a newer key exists: re-acquire now. True when something changed."""
        held = self._held.get(provider)
        if held is None or held.lease.lease_id != lease_id:
            return False
        held.stale = True
        held.due = -math.inf
        return True

    def lease_id_for_report(self, provider: str) -> Optional[str]:
        """The lease an auth failure is reported with (none once dropped)."""
        held = self._held.get(provider)
        return None if held is None or held.dropped else held.lease.lease_id

    def on_event(self, event: Any) -> bool:
        """Applies a WatchKeys event. True when the background task should look again."""
        held = self._held.get(event.provider)
        if held is None:
            return False
        ours = event.key_version == held.lease.key_version
        kind = event.type
        if kind == _KeyEvent.ROTATED:
            return False if ours else self._make_stale(held)
        if kind == _KeyEvent.RETIRING:
            if ours and event.HasField("retires_at"):
                ts = event.retires_at
                retires = datetime.fromtimestamp(ts.seconds + ts.nanos / 1e9, tz=timezone.utc)
                held.lease = held.lease.with_retires_at(retires)
                held.due = min(held.due, self.due_for(held.lease, held.received_at))
                return True
            return False
        if kind in (_KeyEvent.RETIRED, _KeyEvent.QUARANTINED, _KeyEvent.REVOKED):
            return self._drop(held) if ours else False
        if kind == _KeyEvent.SNAPSHOT and ours:
            # After a reconnect: what changed while the stream was down.
            if event.state in _DEAD_STATES:
                return self._drop(held)
            if event.state == lease_pb2.KEY_STATE_PREVIOUS:
                return self._make_stale(held)
        return False

    def drain_release(self) -> List[str]:
        """Lease ids replaced or dropped since the last call, to release (best effort)."""
        ids, self._to_release = self._to_release, []
        return ids

    def close(self) -> List[str]:
        """Forgets everything; returns every lease id to release."""
        ids = self.drain_release()
        ids.extend(h.lease.lease_id for h in self._held.values() if not h.dropped)
        self._held.clear()
        return ids

    def _make_stale(self, held: Held) -> bool:
        held.stale = True
        held.due = -math.inf
        return True

    def _drop(self, held: Held) -> bool:
        if not held.dropped:
            self._to_release.append(held.lease.lease_id)
        held.dropped = True
        held.due = -math.inf  # re-acquire now
        return True


Listener = Callable[[Lease], Any]


class RotationListeners:
    """Callbacks per provider, called after the client moved to a different key. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_provider: Dict[str, List[Listener]] = {}

    def add(self, provider: str, callback: Listener) -> Callable[[], None]:
        """Registers `callback`; returns a function that unregisters it."""
        with self._lock:
            self._by_provider.setdefault(provider, []).append(callback)

        def remove() -> None:
            with self._lock:
                callbacks = self._by_provider.get(provider, [])
                if callback in callbacks:
                    callbacks.remove(callback)
        return remove

    def of(self, provider: str) -> List[Listener]:
        with self._lock:
            return list(self._by_provider.get(provider, ()))
