"""LeaseClient: what a service holds instead of an API key in an environment variable.

    with LeaseClient(ClientOptions(address="credbroker.credbroker.svc:7443",
                                   token_file="/var/run/secrets/credbroker/token")) as broker:
        name, value = broker.authorization_header("lumenfall")  # ("Authorization", "Bearer ...")
        url = broker.base_url("lumenfall")

It keeps one lease per provider it was asked for: acquired on first use, renewed in the
background once `renew_fraction` of its lifetime has passed (and moved to the current key before a
retiring key's retire time), and following WatchKeys: ROTATED re-acquires (the new key); RETIRED,
QUARANTINED or REVOKED of the held key drop it at once (the next call acquires the current one).
A renewal the broker refuses because it forgot the lease or because the key retired re-acquires.
While the broker cannot be reached the held lease serves until it expires, never after: then the
call raises BrokerError(UNAVAILABLE). The key is in the header and the lease: never log either
(use ``key_fingerprint``). Thread-safe.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any, Callable, Dict, Iterator, Optional

import grpc

from ._book import Held, LeaseBook, RotationListeners
from ._connection import Connection
from .errors import BrokerError
from .lease import Header, Lease
from .options import ClientOptions

log = logging.getLogger("credbroker_client")

# The background thread wakes at least this often (wall-clock jumps, missed wake-ups).
_MAX_SLEEP = 30.0


class LeaseClient:
    """Leases provider keys from the broker and keeps them fresh in the background."""

    def __init__(self, options: ClientOptions, *, channel: Optional[grpc.Channel] = None) -> None:
        """Connects lazily to options.address (or uses `channel`, which the caller closes)."""
        self._options = options
        self._conn = Connection(options, channel)
        self._book = LeaseBook(options)
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._closed = False
        self._stream: Any = None
        self._listeners = RotationListeners()
        self._acquire_locks: Dict[str, threading.Lock] = {}
        self._renewer = threading.Thread(target=self._renew_loop, name="credbroker-renewer",
                                         daemon=True)
        self._watcher: Optional[threading.Thread] = None
        self._renewer.start()
        if options.watch:
            self._watcher = threading.Thread(target=self._watch_loop, name="credbroker-watcher",
                                             daemon=True)
            self._watcher.start()

    def __enter__(self) -> "LeaseClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LeaseClient(address={self._options.address!r})"

    # --- The API -------------------------------------------------------------------------------

    def authorization_header(self, provider: str) -> Header:
        """The header for a call to `provider` now, e.g. ("Authorization", "Bearer <key>")."""
        return self._usable(provider).header()

    def base_url(self, provider: str) -> str:
        """Where to send it (the provider's configured base URL)."""
        return self._usable(provider).base_url

    def current_lease(self, provider: str) -> Lease:
        """The lease held for `provider` (acquired first if none is usable). Holds the key."""
        return self._usable(provider)

    def report_auth_failure(self, provider: str, http_status: int, error_code: str = "",
                            body: str = "") -> str:
        """Tells the broker the provider answered `http_status` (401, 403, 429) to the held key,
        with its error code and body if any (never the key); moves to a newer key when the broker
        says there is one. Returns the broker's classification ("key_rejected", ...)."""
        self._check_open()
        with self._cond:
            lease_id = self._book.lease_id_for_report(provider)
        if lease_id is None:
            raise BrokerError(grpc.StatusCode.FAILED_PRECONDITION, f"no lease held for {provider}")
        response = self._conn.report(lease_id, http_status, error_code, body)
        if response.newer_key_available:
            with self._cond:
                if self._book.mark_stale(provider, lease_id):
                    self._cond.notify_all()
        return str(response.classification)

    def ping(self, payload: bytes = b"") -> str:
        """Checks the address, TLS and token without touching any state: the caller's identity."""
        self._check_open()
        return str(self._conn.ping(payload).caller)

    def add_rotation_listener(self, provider: str,
                              callback: Callable[[Lease], Any]) -> Callable[[], None]:
        """Calls `callback(new_lease)` whenever the client moved to a different key of `provider`
        (on the thread that took the new lease). Returns a function that unregisters it."""
        return self._listeners.add(provider, callback)

    def close(self) -> None:
        """Stops following the broker and releases the leases held (one attempt each)."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            stream = self._stream
            self._cond.notify_all()
        self._stopping.set()
        if stream is not None:
            stream.cancel()
        me = threading.current_thread()  # close() may come from a listener on our thread
        if self._watcher is not None and self._watcher is not me:
            self._watcher.join()
        if self._renewer is not me:
            self._renewer.join(self._options.deadline + 1.0)
        with self._cond:
            ids = self._book.close()
        for lease_id in ids:
            self._release_quietly(lease_id)
        self._conn.close()

    # --- Leases --------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the LeaseClient is closed")

    def _usable(self, provider: str) -> Lease:
        """A usable lease for `provider`, acquiring one if none is held, expired or dropped."""
        self._check_open()
        with self._cond:
            lease = self._book.usable(provider, time.time())
            if lease is not None:
                return lease
            lock = self._acquire_locks.setdefault(provider, threading.Lock())
        with lock:  # one acquire per provider at a time; the others then use its lease
            with self._cond:
                lease = self._book.usable(provider, time.time())
            if lease is not None:
                return lease
            try:
                return self._acquire(provider)
            except BrokerError as err:
                with self._cond:
                    lease = self._book.fallback(provider, time.time())
                    why = self._book.unusable_because(provider)
                if lease is not None:
                    return lease
                context = f"cannot lease a {provider} key" + (f" ({why})" if why else "")
                raise err.with_context(context) from None

    def _acquire(self, provider: str) -> Lease:
        lease = self._conn.acquire(provider)
        with self._cond:
            previous = self._book.hold(lease)
            self._cond.notify_all()
        log.debug("leased %s key %s (fingerprint %s), lease %s", provider, lease.key_version,
                  lease.key_fingerprint, lease.lease_id)
        if previous is not None:
            self._notify(lease)
        return lease

    def _notify(self, lease: Lease) -> None:
        for callback in self._listeners.of(lease.provider):
            try:
                callback(lease)
            except Exception:  # noqa: BLE001 - a listener's bug must not stop the client
                log.exception("rotation listener for %s failed", lease.provider)

    def _release_quietly(self, lease_id: str) -> None:
        try:
            self._conn.release(lease_id)
        except BrokerError as err:  # best effort: it expires by itself at the broker
            log.debug("release of lease %s failed: %s", lease_id, err)

    # --- Background renewals -------------------------------------------------------------------

    @contextlib.contextmanager
    def _unlocked(self) -> Iterator[None]:
        self._cond.release()
        try:
            yield
        finally:
            self._cond.acquire()

    def _renew_loop(self) -> None:
        with self._cond:
            while not self._closed:
                ids = self._book.drain_release()
                if ids:
                    with self._unlocked():
                        for lease_id in ids:
                            self._release_quietly(lease_id)
                    continue
                provider, due = self._book.next_due()
                now = time.time()
                if provider is None or due > now:
                    self._cond.wait(_MAX_SLEEP if provider is None else min(due - now, _MAX_SLEEP))
                    continue
                held = self._book.snapshot(provider)
                with self._unlocked():
                    try:
                        self._maintain(provider, held)
                    except Exception:  # noqa: BLE001 - keep renewing whatever happened
                        log.exception("renewal of the %s lease failed", provider)
                        with self._cond:
                            self._book.retry_later(provider, held.lease.lease_id, time.time())

    def _maintain(self, provider: str, held: Held) -> None:
        """Renews the held lease, or re-acquires when it must (or the broker refused to renew)."""
        acquire = self._book.must_acquire(held, time.time())
        if not acquire:
            try:
                renewed = self._conn.renew(held.lease.lease_id)
            except BrokerError as err:
                # The broker forgot the lease (or it expired) or will not renew it (its key
                # retired): take a new one. Anything else: try again later.
                acquire = err.code in (grpc.StatusCode.NOT_FOUND,
                                       grpc.StatusCode.FAILED_PRECONDITION)
                log.debug("renewal of lease %s failed: %s", held.lease.lease_id, err)
            else:
                with self._cond:
                    self._book.renewed(provider, renewed)
                return
        if acquire:
            try:
                self._acquire(provider)
                return
            except BrokerError as err:
                log.debug("re-acquiring a %s lease failed: %s", provider, err)
        with self._cond:
            self._book.retry_later(provider, held.lease.lease_id, time.time())

    # --- WatchKeys -----------------------------------------------------------------------------

    def _watch_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                stream = self._conn.watch()
            except BrokerError as err:
                log.debug("WatchKeys not started: %s", err)
                stream = None
            if stream is not None:
                with self._cond:
                    if self._closed:
                        stream.cancel()
                        return
                    self._stream = stream
                try:
                    for event in stream:
                        with self._cond:
                            if self._book.on_event(event):
                                self._cond.notify_all()
                except grpc.RpcError as err:
                    log.debug("WatchKeys ended: %s", BrokerError.from_rpc_error(err))
                with self._cond:
                    self._stream = None
            self._stopping.wait(self._options.retry_interval)  # or until the client closes
