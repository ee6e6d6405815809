"""Provider-SDK helpers: hand an SDK a key that is always the current one.

SDK clients (OpenAI-style ``Client(api_key=..., base_url=...)``) take a key once. Build them from
ProviderCredentials and rebuild them when the key moves:

    creds = ProviderCredentials(broker, "lumenfall")
    sdk = Client(api_key=creds.api_key, base_url=creds.base_url)

    def rebuild(c: ProviderCredentials) -> None:
        global sdk
        sdk = Client(api_key=c.api_key, base_url=c.base_url)

    creds.on_rotate(rebuild)

Every property read goes through the client, so it reflects the current lease (renewed, rotated
or replaced after a quarantine); `on_rotate` callbacks run after the client moved to another key.
"""
from __future__ import annotations

from typing import Any, Awaitable, Callable, Optional, Union

from .aio import AsyncLeaseClient
from .client import LeaseClient
from .lease import Header, Lease


class ProviderCredentials:
    """The current key, base URL and header of one provider, read through a LeaseClient."""

    def __init__(self, client: LeaseClient, provider: str) -> None:
        self._client = client
        self._provider = provider

    @property
    def provider(self) -> str:
        return self._provider

    @property
    def api_key(self) -> str:
        """The key to use now (secret: never log it)."""
        return self._client.current_lease(self._provider).api_key

    @property
    def base_url(self) -> str:
        return self._client.base_url(self._provider)

    @property
    def header(self) -> Header:
        return self._client.authorization_header(self._provider)

    @property
    def key_fingerprint(self) -> str:
        """Safe to log: identifies the key in use."""
        return self._client.current_lease(self._provider).key_fingerprint

    def on_rotate(self, callback: Callable[["ProviderCredentials"], Any]) -> Callable[[], None]:
        """Calls `callback(self)` after the client moved to a different key of the provider (from
        the thread that took the new lease: keep it short). Returns an unregister function."""
        def listener(_: Lease) -> None:
            callback(self)
        return self._client.add_rotation_listener(self._provider, listener)

    def __repr__(self) -> str:
        return f"ProviderCredentials(provider={self._provider!r})"


class AsyncProviderCredentials:
    """ProviderCredentials for AsyncLeaseClient: the reads are coroutines."""

    def __init__(self, client: AsyncLeaseClient, provider: str) -> None:
        self._client = client
        self._provider = provider

    @property
    def provider(self) -> str:
        return self._provider

    async def api_key(self) -> str:
        """The key to use now (secret: never log it)."""
        return (await self._client.current_lease(self._provider)).api_key

    async def base_url(self) -> str:
        return await self._client.base_url(self._provider)

    async def header(self) -> Header:
        return await self._client.authorization_header(self._provider)

    async def key_fingerprint(self) -> str:
        return (await self._client.current_lease(self._provider)).key_fingerprint

    def on_rotate(
        self,
        callback: Callable[["AsyncProviderCredentials"], Union[None, Awaitable[None]]],
    ) -> Callable[[], None]:
        """Calls `callback(self)` (awaited when it is a coroutine function) after the client moved
        to a different key of the provider. Returns an unregister function."""
        def listener(_: Lease) -> Optional[Awaitable[None]]:
            return callback(self)
        return self._client.add_rotation_listener(self._provider, listener)

    def __repr__(self) -> str:
        return f"AsyncProviderCredentials(provider={self._provider!r})"
