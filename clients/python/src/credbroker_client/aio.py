"""AsyncLeaseClient: LeaseClient for asyncio services (grpc.aio), with the same behaviour.

    async with AsyncLeaseClient(ClientOptions(address="credbroker.credbroker.svc:7443",
                                              token_file="/var/run/secrets/credbroker/token")) as b:
        name, value = await b.authorization_header("lumenfall")

Background renewals and the WatchKeys stream run as tasks on the loop that started the client
(``async with``, ``await client.start()`` or the first call); ``await client.aclose()`` stops them
and releases the leases held.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import time
from typing import Any, Callable, Dict, List, Optional

import grpc
import grpc.aio

from ._aio_connection import AsyncConnection
from ._book import Held, LeaseBook, RotationListeners
from .errors import BrokerError
from .lease import Header, Lease
from .options import ClientOptions

log = logging.getLogger("credbroker_client")

_MAX_SLEEP = 30.0


class AsyncLeaseClient:
    """Leases provider keys from the broker and keeps them fresh in background tasks."""

    def __init__(self, options: ClientOptions, *,
                 channel: Optional[grpc.aio.Channel] = None) -> None:
        """Nothing runs until start() (or the first call); `channel` is closed by the caller."""
        self._options = options
        self._channel = channel
        self._conn: Optional[AsyncConnection] = None
        self._book = LeaseBook(options)
        self._listeners = RotationListeners()
        self._acquire_locks: Dict[str, asyncio.Lock] = {}
        self._wake: Optional[asyncio.Event] = None
        self._tasks: List["asyncio.Task[None]"] = []
        self._stream: Any = None
        self._closed = False

    async def __aenter__(self) -> "AsyncLeaseClient":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AsyncLeaseClient(address={self._options.address!r})"

    async def start(self) -> None:
        """Connects and starts the background tasks on the running loop (idempotent)."""
        if self._closed:
            raise RuntimeError("the AsyncLeaseClient is closed")
        if self._conn is not None:
            return
        self._conn = AsyncConnection(self._options, self._channel)
        self._wake = asyncio.Event()
        self._tasks.append(asyncio.create_task(self._renew_loop(), name="credbroker-renewer"))
        if self._options.watch:
            self._tasks.append(asyncio.create_task(self._watch_loop(), name="credbroker-watcher"))

    # --- The API -------------------------------------------------------------------------------

    async def authorization_header(self, provider: str) -> Header:
        """The header for a call to `provider` now, e.g. ("Authorization", "Bearer <key>")."""
        return (await self._usable(provider)).header()

    async def base_url(self, provider: str) -> str:
        """Where to send it (the provider's configured base URL)."""
        return (await self._usable(provider)).base_url

    async def current_lease(self, provider: str) -> Lease:
        """The lease held for `provider` (acquired first if none is usable). Holds the key."""
        return await self._usable(provider)

    async def report_auth_failure(self, provider: str, http_status: int, error_code: str = "",
                                  body: str = "") -> str:
        """As LeaseClient.report_auth_failure: returns the broker's classification."""
        conn = await self._started()
        lease_id = self._book.lease_id_for_report(provider)
        if lease_id is None:
            raise BrokerError(grpc.StatusCode.FAILED_PRECONDITION, f"no lease held for {provider}")
        response = await conn.report(lease_id, http_status, error_code, body)
        if response.newer_key_available and self._book.mark_stale(provider, lease_id):
            self._poke()
        return str(response.classification)

    async def ping(self, payload: bytes = b"") -> str:
        """Checks the address, TLS and token without touching any state: the caller's identity."""
        conn = await self._started()
        return str((await conn.ping(payload)).caller)

    def add_rotation_listener(self, provider: str,
                              callback: Callable[[Lease], Any]) -> Callable[[], None]:
        """Calls `callback(new_lease)` (awaited if it returns an awaitable) whenever the client
        moved to a different key of `provider`. Returns a function that unregisters it."""
        return self._listeners.add(provider, callback)

    async def aclose(self) -> None:
        """Stops following the broker and releases the leases held (one attempt each)."""
        if self._closed:
            return
        self._closed = True
        if self._stream is not None:
            self._stream.cancel()
        # aclose() may come from a rotation listener running on the renewer task itself.
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._conn is None:
            return
        for lease_id in self._book.close():
            await self._release_quietly(lease_id)
        await self._conn.close()

    # --- Leases --------------------------------------------------------------------------------

    async def _started(self) -> AsyncConnection:
        if self._closed:
            raise RuntimeError("the AsyncLeaseClient is closed")
        await self.start()
        assert self._conn is not None
        return self._conn

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _usable(self, provider: str) -> Lease:
        await self._started()
        lease = self._book.usable(provider, time.time())
        if lease is not None:
            return lease
        lock = self._acquire_locks.setdefault(provider, asyncio.Lock())
        async with lock:  # one acquire per provider at a time; the others then use its lease
            lease = self._book.usable(provider, time.time())
            if lease is not None:
                return lease
            try:
                return await self._acquire(provider)
            except BrokerError as err:
                lease = self._book.fallback(provider, time.time())
                if lease is not None:
                    return lease
                why = self._book.unusable_because(provider)
                context = f"cannot lease a {provider} key" + (f" ({why})" if why else "")
                raise err.with_context(context) from None

    async def _acquire(self, provider: str) -> Lease:
        assert self._conn is not None
        lease = await self._conn.acquire(provider)
        previous = self._book.hold(lease)
        self._poke()
        log.debug("leased %s key %s (fingerprint %s), lease %s", provider, lease.key_version,
                  lease.key_fingerprint, lease.lease_id)
        if previous is not None:
            await self._notify(lease)
        return lease

    async def _notify(self, lease: Lease) -> None:
        for callback in self._listeners.of(lease.provider):
            try:
                result = callback(lease)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # noqa: BLE001 - a listener's bug must not stop the client
                log.exception("rotation listener for %s failed", lease.provider)

    async def _release_quietly(self, lease_id: str) -> None:
        assert self._conn is not None
        try:
            await self._conn.release(lease_id)
        except BrokerError as err:  # best effort: it expires by itself at the broker
            log.debug("release of lease %s failed: %s", lease_id, err)

    # --- Background renewals -------------------------------------------------------------------

    async def _renew_loop(self) -> None:
        assert self._wake is not None
        while not self._closed:
            self._wake.clear()
            ids = self._book.drain_release()
            if ids:
                for lease_id in ids:
                    await self._release_quietly(lease_id)
                continue
            provider, due = self._book.next_due()
            now = time.time()
            if provider is None or due > now:
                timeout = _MAX_SLEEP if provider is None else min(due - now, _MAX_SLEEP)
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout)
                except asyncio.TimeoutError:
                    pass
                continue
            held = self._book.snapshot(provider)
            try:
                await self._maintain(provider, held)
            except Exception:  # noqa: BLE001 - keep renewing whatever happened
                log.exception("renewal of the %s lease failed", provider)
                self._book.retry_later(provider, held.lease.lease_id, time.time())

    async def _maintain(self, provider: str, held: Held) -> None:
        """Renews the held lease, or re-acquires when it must (or the broker refused to renew)."""
        assert self._conn is not None
        acquire = self._book.must_acquire(held, time.time())
        if not acquire:
            try:
                renewed = await self._conn.renew(held.lease.lease_id)
            except BrokerError as err:
                # The broker forgot the lease or will not renew it (its key retired): take a new
                # one. Anything else: try again later.
                acquire = err.code in (grpc.StatusCode.NOT_FOUND,
                                       grpc.StatusCode.FAILED_PRECONDITION)
                log.debug("renewal of lease %s failed: %s", held.lease.lease_id, err)
            else:
                self._book.renewed(provider, renewed)
                return
        if acquire:
            try:
                await self._acquire(provider)
                return
            except BrokerError as err:
                log.debug("re-acquiring a %s lease failed: %s", provider, err)
        self._book.retry_later(provider, held.lease.lease_id, time.time())

    # --- WatchKeys -----------------------------------------------------------------------------

    async def _watch_loop(self) -> None:
        assert self._conn is not None
        while not self._closed:
            try:
                self._stream = self._conn.watch()
                async for event in self._stream:
                    if self._book.on_event(event):
                        self._poke()
            except grpc.RpcError as err:
                log.debug("WatchKeys ended: %s", BrokerError.from_rpc_error(err))
            except BrokerError as err:
                log.debug("WatchKeys not started: %s", err)
            finally:
                self._stream = None
            if not self._closed:
                await asyncio.sleep(self._options.retry_interval)
