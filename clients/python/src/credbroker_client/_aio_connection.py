"""AsyncConnection: the broker's LeaseService on grpc.aio, with the same deadline, token, retry
and error handling as the blocking Connection."""
from __future__ import annotations

import asyncio
from typing import Any, Callable, Optional

import grpc
import grpc.aio

from . import _channel
from .errors import BrokerError
from .lease import Lease
from .options import ClientOptions
from .proto import lease_pb2, lease_pb2_grpc


def make_aio_channel(options: ClientOptions) -> grpc.aio.Channel:
    """An asyncio channel to options.address (TLS when options.tls is set)."""
    args = _channel.channel_args(options)
    if options.tls is None:
        return grpc.aio.insecure_channel(options.address, options=args)
    creds = _channel.channel_credentials(options.tls)
    return grpc.aio.secure_channel(options.address, creds, options=args)


class AsyncConnection:
    """LeaseService calls as coroutines. Create it inside the event loop that uses it."""

    def __init__(self, options: ClientOptions,
                 channel: Optional[grpc.aio.Channel] = None) -> None:
        self._options = options
        self._owns_channel = channel is None
        self._channel = make_aio_channel(options) if channel is None else channel
        self._stub = lease_pb2_grpc.LeaseServiceStub(self._channel)
        self._token = _channel.caller_token(options)

    async def acquire(self, provider: str) -> Lease:
        request = _channel.acquire_request(provider, self._options)
        return Lease.from_proto(await self._call(self._stub.AcquireLease, request))

    async def renew(self, lease_id: str) -> Lease:
        request = _channel.renew_request(lease_id, self._options)
        return Lease.from_proto(await self._call(self._stub.RenewLease, request))

    async def release(self, lease_id: str) -> None:
        """One attempt: a lease not released expires by itself at the broker."""
        await self._call(self._stub.ReleaseLease,
                         lease_pb2.ReleaseLeaseRequest(lease_id=lease_id), retry=False)

    async def report(self, lease_id: str, http_status: int, error_code: str, body: str) -> Any:
        request = _channel.report_request(lease_id, http_status, error_code, body)
        return await self._call(self._stub.ReportAuthFailure, request)

    async def ping(self, payload: bytes = b"") -> Any:
        return await self._call(self._stub.Ping, lease_pb2.PingRequest(payload=payload))

    def watch(self) -> Any:
        """A WatchKeys stream with no deadline: ``async for`` over it; ``cancel()`` ends it."""
        return self._stub.WatchKeys(lease_pb2.WatchKeysRequest(),
                                    metadata=_channel.call_metadata(self._token))

    async def close(self) -> None:
        if self._owns_channel:
            await self._channel.close()

    async def _call(self, method: Callable[..., Any], request: Any, retry: bool = True) -> Any:
        delays = _channel.backoff_delays(self._options.retry) if retry else []
        for attempt in range(len(delays) + 1):
            try:
                metadata = _channel.call_metadata(self._token)
                return await method(request, timeout=self._options.deadline, metadata=metadata)
            except grpc.RpcError as err:
                error = BrokerError.from_rpc_error(err)
            if not _channel.is_retryable(error) or attempt == len(delays):
                raise error
            await asyncio.sleep(delays[attempt])
        raise AssertionError("unreachable")
