"""AsyncLeaseClient (grpc.aio) against the real broker: the same scenarios as the sync client."""
from __future__ import annotations

import asyncio
import time
import unittest
from typing import Dict, List, Optional

import grpc

from broker_fixture import (APP2_TOKEN, APP_TOKEN, FP_V1, FP_V2, BrokerTestCase,
                            eventually_async, free_loopback_port, write_k8s_secret_dir)
from credbroker_client import (AsyncLeaseClient, AsyncProviderCredentials, BrokerError,
                               ClientOptions, RetryPolicy, fingerprint)

FAST_RETRY = RetryPolicy(max_attempts=3, initial_backoff=0.05, max_backoff=0.5)


async def key_in(client: AsyncLeaseClient) -> str:
    """The fingerprint of the key in the client's header now, or the error (never the key)."""
    try:
        _, value = await client.authorization_header("lumenfall")
    except BrokerError as err:
        return f"error: {err}"
    return fingerprint(value[len("Bearer "):])


class FakeSdkClient:
    """What an OpenAI-style SDK client looks like: it takes the key once."""

    def __init__(self, api_key: str, base_url: str) -> None:
        self.api_key = api_key
        self.base_url = base_url


class AsyncClientTest(BrokerTestCase, unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self) -> None:
        # The test loop runs in debug mode; grpc.aio's one-time set-up is not a slow callback.
        asyncio.get_running_loop().slow_callback_duration = 2.0

    async def client(self, ttl: Optional[float] = None, **kwargs: object) -> AsyncLeaseClient:
        assert self.broker is not None
        options: Dict[str, object] = dict(address=self.broker.grpc_address, token=APP_TOKEN,
                                          ttl=ttl, retry_interval=0.05, retry=FAST_RETRY)
        options.update(kwargs)
        c = AsyncLeaseClient(ClientOptions(**options))  # type: ignore[arg-type]
        await c.start()
        self.addAsyncCleanup(c.aclose)
        return c

    async def test_rotation_mid_use_reaches_the_header_without_an_error(self) -> None:
        self.start_broker()
        c = await self.client()
        self.assertEqual(await key_in(c), FP_V1)
        await asyncio.to_thread(self.stage_v2)
        await asyncio.to_thread(self.rotate)
        seen: List[str] = []

        async def moved() -> bool:
            seen.append(await key_in(c))
            return seen[-1] == FP_V2
        self.assertTrue(await eventually_async(moved, interval=0.01), seen[-3:])
        self.assertLessEqual(set(seen), {FP_V1, FP_V2}, "an answer was an error")

        async def v1_released() -> bool:
            return not await asyncio.to_thread(self.lease_ids, "v1")
        self.assertTrue(await eventually_async(v1_released))

    async def test_a_quarantined_key_is_dropped_and_replaced(self) -> None:
        self.start_broker()
        c = await self.client()
        self.assertEqual(await key_in(c), FP_V1)
        await asyncio.to_thread(self.stage_v2)
        await asyncio.to_thread(self.quarantine_v1)

        async def moved() -> bool:
            return await key_in(c) == FP_V2
        self.assertTrue(await eventually_async(moved, timeout=5), await key_in(c))
        for _ in range(20):  # never back
            self.assertEqual(await key_in(c), FP_V2)

    async def test_the_lease_is_renewed_across_a_broker_restart(self) -> None:
        port = free_loopback_port()
        self.start_broker(port)
        c = await self.client(ttl=6)
        first = await c.current_lease("lumenfall")

        async def renewed_once() -> bool:
            return (await c.current_lease("lumenfall")).renew_count >= 1
        # Stop right after a renewal: the lease then outlives the restart by seconds.
        self.assertTrue(await eventually_async(renewed_once, interval=0.02))
        assert self.broker is not None
        self.assertEqual(await asyncio.to_thread(self.broker.stop), 0)
        before = await c.current_lease("lumenfall")  # served by the client alone
        self.assertEqual(before.lease_id, first.lease_id)
        await asyncio.to_thread(self.start_broker, port)
        self.assertEqual(await key_in(c), FP_V1)

        async def renewed_by_new_broker() -> bool:
            lease = await c.current_lease("lumenfall")
            return (lease.expires_at > before.expires_at
                    and lease.lease_id in await asyncio.to_thread(self.lease_ids))
        self.assertTrue(await eventually_async(renewed_by_new_broker, timeout=10))
        after = await c.current_lease("lumenfall")
        self.assertEqual(after.lease_id, first.lease_id, "renewed, not re-acquired")
        self.assertGreater(after.renew_count, before.renew_count)

    async def test_an_outage_longer_than_the_lease_fails_at_expiry_never_after(self) -> None:
        self.start_broker()
        c = await self.client(ttl=2)
        await c.current_lease("lumenfall")
        assert self.broker is not None
        self.broker.kill()
        expires = (await c.current_lease("lumenfall")).expires_at.timestamp()
        failure: Optional[BrokerError] = None
        while time.time() < expires + 10:
            started = time.time()
            try:
                await c.authorization_header("lumenfall")
            except BrokerError as err:
                # The expiry check ran before this call returned (and after it started).
                self.assertGreaterEqual(time.time(), expires, f"failed before expiry: {err}")
                failure = err
                break
            self.assertLess(started, expires, "the key was served after its lease expired")
            await asyncio.sleep(0.02)
        self.assertIsNotNone(failure)
        assert failure is not None
        self.assertEqual(failure.code, grpc.StatusCode.UNAVAILABLE)
        self.assertIn("expired at", failure.message)
        with self.assertRaises(BrokerError):
            await c.authorization_header("lumenfall")

    async def test_auth_failures_are_reported_with_the_held_lease(self) -> None:
        self.start_broker()
        c = await self.client()
        await c.authorization_header("lumenfall")
        classification = await c.report_auth_failure("lumenfall", 429, "rate_limit_exceeded")
        self.assertTrue(classification)
        assert self.broker is not None
        metrics = await asyncio.to_thread(self.broker.metrics)
        self.assertIn("credbroker_auth_failure_reports_total{", metrics)

    async def test_the_token_file_is_read_again_when_the_kubelet_replaces_it(self) -> None:
        self.start_broker()
        token_dir = self.dir / "sa-token"
        write_k8s_secret_dir(token_dir, {"token": APP_TOKEN + "\n"})
        c = await self.client(token=None, token_file=str(token_dir / "token"))
        self.assertEqual(await c.ping(), "py-app")
        self.assertEqual(await key_in(c), FP_V1)
        write_k8s_secret_dir(token_dir, {"token": APP2_TOKEN + "\n"})
        self.assertEqual(await c.ping(), "py-app2")
        write_k8s_secret_dir(token_dir, {"other": "x"})  # the token is gone
        with self.assertRaises(BrokerError) as ctx:
            await c.ping()
        self.assertEqual(ctx.exception.code, grpc.StatusCode.UNAUTHENTICATED)
        self.assertIn(str(token_dir / "token"), ctx.exception.message)

    async def test_provider_credentials_follow_a_rotation(self) -> None:
        self.start_broker()
        c = await self.client()
        creds = AsyncProviderCredentials(c, "lumenfall")
        sdk = FakeSdkClient(api_key=await creds.api_key(), base_url=await creds.base_url())
        self.assertEqual(fingerprint(sdk.api_key), FP_V1)
        rebuilt = asyncio.Event()

        async def rebuild(current: AsyncProviderCredentials) -> None:
            nonlocal sdk
            sdk = FakeSdkClient(api_key=await current.api_key(),
                                base_url=await current.base_url())
            rebuilt.set()
        creds.on_rotate(rebuild)
        await asyncio.to_thread(self.stage_v2)
        await asyncio.to_thread(self.rotate)

        async def moved() -> bool:
            return await creds.key_fingerprint() == FP_V2
        self.assertTrue(await eventually_async(moved))
        self.assertEqual(fingerprint(await creds.api_key()), FP_V2)
        await asyncio.wait_for(rebuilt.wait(), 5)
        self.assertEqual(fingerprint(sdk.api_key), FP_V2)


if __name__ == "__main__":
    unittest.main()
