"""LeaseClient (threads) against the real broker: rotation, quarantine push, restart, outage,
auth-failure reports, token file rotation, the SDK helper."""
from __future__ import annotations

import threading
import time
import unittest
from typing import Dict, List, Optional

import grpc

from broker_fixture import (APP2_TOKEN, APP_TOKEN, FP_V1, FP_V2, BrokerTestCase, eventually,
                            free_loopback_port, write_k8s_secret_dir)
from credbroker_client import (BrokerError, ClientOptions, LeaseClient, ProviderCredentials,
                               RetryPolicy, fingerprint)

FAST_RETRY = RetryPolicy(max_attempts=3, initial_backoff=0.05, max_backoff=0.5)


def key_in(client: LeaseClient) -> str:
    """The fingerprint of the key in the client's header now, or the error (never the key)."""
    try:
        _, value = client.authorization_header("lumenfall")
    except BrokerError as err:
        return f"error: {err}"
    return fingerprint(value[len("Bearer "):])


class FakeSdkClient:
    """What an OpenAI-style SDK client looks like: it takes the key once."""

    def __init__(self, api_key: str, base_url: str) -> None:
        self.api_key = api_key
        self.base_url = base_url


class SyncClientTest(BrokerTestCase):
    def client(self, ttl: Optional[float] = None, **kwargs: object) -> LeaseClient:
        assert self.broker is not None
        options: Dict[str, object] = dict(address=self.broker.grpc_address, token=APP_TOKEN,
                                          ttl=ttl, retry_interval=0.05, retry=FAST_RETRY)
        options.update(kwargs)
        c = LeaseClient(ClientOptions(**options))  # type: ignore[arg-type]
        self.addCleanup(c.close)
        return c

    def test_rotation_mid_use_reaches_the_header_without_an_error(self) -> None:
        self.start_broker()
        c = self.client()
        self.assertEqual(key_in(c), FP_V1)
        self.stage_v2()
        self.rotate()
        seen: List[str] = []

        def moved() -> bool:
            seen.append(key_in(c))
            return seen[-1] == FP_V2
        self.assertTrue(eventually(moved, interval=0.01), seen[-3:])
        self.assertLessEqual(set(seen), {FP_V1, FP_V2}, "an answer was an error")
        # It released its lease on the old key when it moved.
        self.assertTrue(eventually(lambda: not self.lease_ids("v1")))

    def test_a_quarantined_key_is_dropped_and_replaced(self) -> None:
        self.start_broker()
        c = self.client()
        self.assertEqual(key_in(c), FP_V1)
        self.stage_v2()
        self.quarantine_v1()
        self.assertTrue(eventually(lambda: key_in(c) == FP_V2, timeout=5), key_in(c))
        for _ in range(20):  # never back
            self.assertEqual(key_in(c), FP_V2)

    def test_the_lease_is_renewed_across_a_broker_restart(self) -> None:
        port = free_loopback_port()
        self.start_broker(port)
        c = self.client(ttl=6)
        first = c.current_lease("lumenfall")
        # Stop right after a renewal: the lease then outlives the restart by seconds.
        self.assertTrue(eventually(lambda: c.current_lease("lumenfall").renew_count >= 1,
                                   interval=0.02))
        assert self.broker is not None
        self.assertEqual(self.broker.stop(), 0)
        before = c.current_lease("lumenfall")  # served by the client alone
        self.assertEqual(before.lease_id, first.lease_id)
        self.start_broker(port)
        self.assertEqual(key_in(c), FP_V1)

        def renewed_by_new_broker() -> bool:
            lease = c.current_lease("lumenfall")
            return (lease.expires_at > before.expires_at
                    and lease.lease_id in self.lease_ids())
        self.assertTrue(eventually(renewed_by_new_broker, timeout=10))
        after = c.current_lease("lumenfall")
        self.assertEqual(after.lease_id, first.lease_id, "renewed, not re-acquired")
        self.assertGreater(after.renew_count, before.renew_count)

    def test_an_outage_longer_than_the_lease_fails_at_expiry_never_after(self) -> None:
        self.start_broker()
        c = self.client(ttl=2)
        c.current_lease("lumenfall")
        assert self.broker is not None
        self.broker.kill()
        expires = c.current_lease("lumenfall").expires_at.timestamp()
        failure: Optional[BrokerError] = None
        while time.time() < expires + 10:
            started = time.time()
            try:
                c.authorization_header("lumenfall")
            except BrokerError as err:
                # The expiry check ran before this call returned.
                self.assertGreaterEqual(time.time(), expires, f"failed before expiry: {err}")
                failure = err
                break
            # ... and after it started.
            self.assertLess(started, expires, "the key was served after its lease expired")
            time.sleep(0.02)
        self.assertIsNotNone(failure)
        assert failure is not None
        self.assertEqual(failure.code, grpc.StatusCode.UNAVAILABLE)
        self.assertIn("expired at", failure.message)
        # And it stays failed (never the expired key).
        with self.assertRaises(BrokerError):
            c.authorization_header("lumenfall")

    def test_auth_failures_are_reported_with_the_held_lease(self) -> None:
        self.start_broker()
        c = self.client()
        c.authorization_header("lumenfall")
        classification = c.report_auth_failure("lumenfall", 429, "rate_limit_exceeded")
        self.assertTrue(classification)
        assert self.broker is not None
        self.assertIn("credbroker_auth_failure_reports_total{", self.broker.metrics())

    def test_the_token_file_is_read_again_when_the_kubelet_replaces_it(self) -> None:
        self.start_broker()
        token_dir = self.dir / "sa-token"
        write_k8s_secret_dir(token_dir, {"token": APP_TOKEN + "\n"})
        c = self.client(token=None, token_file=str(token_dir / "token"))
        self.assertEqual(c.ping(), "py-app")
        self.assertEqual(key_in(c), FP_V1)
        write_k8s_secret_dir(token_dir, {"token": APP2_TOKEN + "\n"})
        self.assertEqual(c.ping(), "py-app2")
        write_k8s_secret_dir(token_dir, {"other": "x"})  # the token is gone
        with self.assertRaises(BrokerError) as ctx:
            c.ping()
        self.assertEqual(ctx.exception.code, grpc.StatusCode.UNAUTHENTICATED)
        self.assertIn(str(token_dir / "token"), ctx.exception.message)

    def test_provider_credentials_follow_a_rotation(self) -> None:
        self.start_broker()
        c = self.client()
        creds = ProviderCredentials(c, "lumenfall")
        sdk = FakeSdkClient(api_key=creds.api_key, base_url=creds.base_url)
        self.assertEqual(fingerprint(sdk.api_key), FP_V1)
        self.assertEqual(sdk.base_url, c.current_lease("lumenfall").base_url)
        rebuilt = threading.Event()

        def rebuild(current: ProviderCredentials) -> None:
            nonlocal sdk
            sdk = FakeSdkClient(api_key=current.api_key, base_url=current.base_url)
            rebuilt.set()
        creds.on_rotate(rebuild)
        self.stage_v2()
        self.rotate()
        self.assertTrue(eventually(lambda: creds.key_fingerprint == FP_V2))
        self.assertEqual(fingerprint(creds.api_key), FP_V2)
        self.assertTrue(rebuilt.wait(5))
        self.assertTrue(eventually(lambda: fingerprint(sdk.api_key) == FP_V2))
        self.assertNotIn(sdk.api_key, repr(creds))


if __name__ == "__main__":
    unittest.main()
