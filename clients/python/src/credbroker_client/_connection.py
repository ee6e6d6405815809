"""Connection: the broker's LeaseService as plain blocking calls (one per RPC).

Each call carries the options' deadline and bearer token, is retried with jittered exponential
backoff while the broker is UNAVAILABLE, and raises BrokerError (with the broker's reason).
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Optional

import grpc

from . import _channel
from .errors import BrokerError
from .lease import Lease
from .options import ClientOptions
from .proto import lease_pb2, lease_pb2_grpc

log = logging.getLogger("credbroker_client")


def make_channel(options: ClientOptions) -> grpc.Channel:
    """A channel to options.address (TLS when options.tls is set)."""
    args = _channel.channel_args(options)
    if options.tls is None:
        return grpc.insecure_channel(options.address, options=args)
    creds = _channel.channel_credentials(options.tls)
    return grpc.secure_channel(options.address, creds, options=args)


class Connection:
    """Blocking LeaseService calls. Thread-safe."""

    def __init__(self, options: ClientOptions, channel: Optional[grpc.Channel] = None) -> None:
        self._options = options
        self._owns_channel = channel is None
        self._channel = make_channel(options) if channel is None else channel
        self._stub = lease_pb2_grpc.LeaseServiceStub(self._channel)
        self._token = _channel.caller_token(options)
        # Set on close: backoff sleeps end at once.
        self._closing = threading.Event()
        # grpc's blocking stack polls a channel only while a call is in flight: when every call
        # fails fast (the broker is down), nothing completes the background reconnect, and the
        # channel may never notice the broker is back. A connectivity watcher keeps it polled.
        self._state = grpc.ChannelConnectivity.IDLE
        self._channel.subscribe(self._on_state, try_to_connect=False)

    def acquire(self, provider: str) -> Lease:
        request = _channel.acquire_request(provider, self._options)
        return Lease.from_proto(self._call(self._stub.AcquireLease, request))

    def renew(self, lease_id: str) -> Lease:
        request = _channel.renew_request(lease_id, self._options)
        return Lease.from_proto(self._call(self._stub.RenewLease, request))

    def release(self, lease_id: str) -> None:
        """One attempt: a lease not released expires by itself at the broker."""
        self._call(self._stub.ReleaseLease, lease_pb2.ReleaseLeaseRequest(lease_id=lease_id),
                   retry=False)

    def report(self, lease_id: str, http_status: int, error_code: str, body: str) -> Any:
        request = _channel.report_request(lease_id, http_status, error_code, body)
        return self._call(self._stub.ReportAuthFailure, request)

    def ping(self, payload: bytes = b"") -> Any:
        return self._call(self._stub.Ping, lease_pb2.PingRequest(payload=payload))

    def watch(self) -> Any:
        """A WatchKeys stream with no deadline: iterate it; ``cancel()`` ends it from any thread."""
        return self._stub.WatchKeys(lease_pb2.WatchKeysRequest(),
                                    metadata=_channel.call_metadata(self._token))

    def close(self) -> None:
        self._closing.set()
        self._channel.unsubscribe(self._on_state)
        if self._owns_channel:
            self._channel.close()

    def _on_state(self, state: grpc.ChannelConnectivity) -> None:
        if state != self._state:
            log.debug("broker channel %s", state.name)
        self._state = state

    def _call(self, method: Callable[..., Any], request: Any, retry: bool = True) -> Any:
        delays = _channel.backoff_delays(self._options.retry) if retry else []
        for attempt in range(len(delays) + 1):
            try:
                metadata = _channel.call_metadata(self._token)
                return method(request, timeout=self._options.deadline, metadata=metadata)
            except grpc.RpcError as err:
                error = BrokerError.from_rpc_error(err)
            except ValueError as err:  # grpc: "Cannot invoke RPC on closed channel!"
                error = BrokerError(grpc.StatusCode.CANCELLED, str(err))
            if (not _channel.is_retryable(error) or attempt == len(delays)
                    or self._closing.wait(delays[attempt])):
                raise error
        raise AssertionError("unreachable")
