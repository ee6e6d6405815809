"""Unit tests that need no broker: errors, options, tokens, the lease model, the LeaseBook's
decisions, and the clients' behaviour when nothing listens."""
from __future__ import annotations

import asyncio
import math
import os
import shutil
import tempfile
import time
import unittest
from pathlib import Path
from typing import Any, Optional

import grpc

from broker_fixture import LMN_V1, free_loopback_port, write_k8s_secret_dir
from credbroker_client import (AsyncLeaseClient, BrokerError, ClientOptions, Header, Lease,
                               LeaseClient, RetryPolicy, StaticToken, TlsOptions, TokenFile,
                               fingerprint)
from credbroker_client._book import LeaseBook
from credbroker_client._channel import backoff_delays
from credbroker_client.errors import error_info, parse_status_details
from credbroker_client.proto import lease_pb2

SECRET = "sk-unit-test-secret-0123456789"


def _ld(field: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (lengths < 128)."""
    return bytes([field << 3 | 2, len(payload)]) + payload


def status_details(reason: str, domain: str = "credbroker.dev") -> bytes:
    """A serialized google.rpc.Status{code: 5, message, details: [Any(ErrorInfo)]}."""
    info = _ld(1, reason.encode()) + _ld(2, domain.encode())
    any_msg = _ld(1, b"type.googleapis.com/google.rpc.ErrorInfo") + _ld(2, info)
    return bytes([1 << 3, 5]) + _ld(2, b"not found") + _ld(3, any_msg)


class FakeRpcError(grpc.RpcError):  # type: ignore[misc]
    def __init__(self, code: grpc.StatusCode, details: str, trailers: Any = ()) -> None:
        self._code, self._details, self._trailers = code, details, trailers

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> Any:
        return self._trailers


class ErrorTest(unittest.TestCase):
    def test_the_reason_is_read_from_the_status_details(self) -> None:
        self.assertEqual(parse_status_details(status_details("UNKNOWN_PROVIDER")),
                         ("UNKNOWN_PROVIDER", "credbroker.dev"))
        trailers = (("x-other", "1"), ("grpc-status-details-bin", status_details("NO_RULE")))
        err = BrokerError.from_rpc_error(FakeRpcError(grpc.StatusCode.PERMISSION_DENIED,
                                                      "no rule", trailers))
        self.assertEqual((err.code, err.message, err.reason),
                         (grpc.StatusCode.PERMISSION_DENIED, "no rule", "NO_RULE"))
        self.assertIn("PERMISSION_DENIED", str(err))
        self.assertIn("NO_RULE", str(err))

    def test_missing_or_garbled_details_give_no_reason(self) -> None:
        self.assertEqual(error_info(()), ("", ""))
        self.assertEqual(error_info((("grpc-status-details-bin", b"\xff\xff\xff"),)), ("", ""))
        self.assertEqual(error_info((("grpc-status-details-bin", b"\x1a\x05ab"),)), ("", ""))
        err = BrokerError.from_rpc_error(FakeRpcError(grpc.StatusCode.UNAVAILABLE, "down"))
        self.assertEqual((err.code, err.reason), (grpc.StatusCode.UNAVAILABLE, ""))

    def test_with_context_keeps_code_and_reason(self) -> None:
        err = BrokerError(grpc.StatusCode.NOT_FOUND, "gone", "LEASE_NOT_FOUND")
        wrapped = err.with_context("cannot lease a x key")
        self.assertEqual((wrapped.code, wrapped.reason), (err.code, err.reason))
        self.assertEqual(wrapped.message, "cannot lease a x key: gone")


class OptionsTest(unittest.TestCase):
    def test_invalid_options_are_refused(self) -> None:
        for kwargs in ({"address": ""},
                       {"address": "a:1", "token": "t", "token_file": "/f"},
                       {"address": "a:1", "renew_fraction": 1.0},
                       {"address": "a:1", "ttl": 0},
                       {"address": "a:1", "deadline": 0}):
            with self.assertRaises(ValueError, msg=str(kwargs)):
                ClientOptions(**kwargs)  # type: ignore[arg-type]
        with self.assertRaises(ValueError):
            TlsOptions(cert_file="c.pem")
        with self.assertRaises(ValueError):
            RetryPolicy(initial_backoff=2, max_backoff=1)

    def test_the_token_is_not_in_the_repr(self) -> None:
        self.assertNotIn(SECRET, repr(ClientOptions(address="a:1", token=SECRET)))
        self.assertNotIn(SECRET, repr(StaticToken(SECRET)))

    def test_backoff_is_exponential_jittered_and_capped(self) -> None:
        delays = backoff_delays(RetryPolicy(max_attempts=6, initial_backoff=0.1, max_backoff=0.4))
        self.assertEqual(len(delays), 5)
        for delay, step in zip(delays, (0.1, 0.2, 0.4, 0.4, 0.4)):
            self.assertTrue(step * 0.5 <= delay <= step, (delay, step))
        self.assertEqual(backoff_delays(RetryPolicy(max_attempts=1)), [])


class TokenFileTest(unittest.TestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="credbroker-unit-"))
        self.addCleanup(shutil.rmtree, self.dir, True)

    def test_it_is_read_again_after_the_kubelet_swapped_it(self) -> None:
        write_k8s_secret_dir(self.dir / "sa", {"token": "  first-token\n"})
        token = TokenFile(str(self.dir / "sa" / "token"))
        self.assertEqual(token.token(), "first-token")
        write_k8s_secret_dir(self.dir / "sa", {"token": "second-token-longer\n"})
        self.assertEqual(token.token(), "second-token-longer")
        self.assertNotIn("second", repr(token))

    def test_an_in_place_rewrite_is_noticed(self) -> None:
        path = self.dir / "token"
        path.write_text("aaaa")
        token = TokenFile(str(path))
        self.assertEqual(token.token(), "aaaa")
        path.write_text("bbbbbb")  # same inode, new size
        self.assertEqual(token.token(), "bbbbbb")
        path.write_text("cccccc")  # same inode and size, new mtime
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
        self.assertEqual(token.token(), "cccccc")

    def test_a_missing_or_empty_file_is_unauthenticated_never_the_old_token(self) -> None:
        path = self.dir / "token"
        path.write_text("old-token")
        token = TokenFile(str(path))
        token.token()
        path.write_text("  \n")
        with self.assertRaises(BrokerError) as ctx:
            token.token()
        self.assertEqual(ctx.exception.code, grpc.StatusCode.UNAUTHENTICATED)
        self.assertIn(str(path), ctx.exception.message)
        path.unlink()
        with self.assertRaises(BrokerError) as ctx:
            token.token()
        self.assertEqual(ctx.exception.code, grpc.StatusCode.UNAUTHENTICATED)
        self.assertNotIn("old-token", str(ctx.exception))


def make_lease(version: str = "v1", lease_id: str = "L1", issued: Optional[float] = None,
               ttl: float = 60.0, retires: Optional[float] = None, key: str = SECRET) -> Lease:
    pb = lease_pb2.Lease(lease_id=lease_id, provider="lumenfall", api_key=key,
                         key_version=version, key_fingerprint=fingerprint(key),
                         base_url="https://api.example/v1", header_name="Authorization",
                         header_value="Bearer " + key, key_state=lease_pb2.KEY_STATE_CURRENT)
    issued = time.time() if issued is None else issued
    pb.issued_at.FromNanoseconds(int(issued * 1e9))
    pb.expires_at.FromNanoseconds(int((issued + ttl) * 1e9))
    if retires is not None:
        pb.key_retires_at.FromNanoseconds(int(retires * 1e9))
    return Lease.from_proto(pb)


def event(kind: int, version: str, state: int = 0, retires: Optional[float] = None) -> Any:
    e = lease_pb2.KeyEvent(type=kind, provider="lumenfall", key_version=version, state=state)
    if retires is not None:
        e.retires_at.FromNanoseconds(int(retires * 1e9))
    return e


class LeaseModelTest(unittest.TestCase):
    def test_the_key_is_never_in_a_repr(self) -> None:
        lease = make_lease()
        self.assertNotIn(SECRET, repr(lease))
        self.assertNotIn(SECRET, str(lease))
        self.assertIn(lease.key_fingerprint, repr(lease))
        header = lease.header()
        self.assertEqual(header, ("Authorization", "Bearer " + SECRET))
        self.assertNotIn(SECRET, repr(header))
        self.assertNotIn(SECRET, f"{header}")
        self.assertEqual(lease.key_state, "CURRENT")
        self.assertIsNone(lease.key_retires_at)

    def test_a_lease_without_a_header_gets_a_bearer_header(self) -> None:
        pb = lease_pb2.Lease(provider="p", api_key=SECRET)
        self.assertEqual(Lease.from_proto(pb).header(), Header("Authorization", "Bearer " + SECRET))

    def test_the_fingerprint_is_the_brokers(self) -> None:
        # core::Fingerprint: the first 12 hex characters of SHA-256 (as the broker reported it).
        self.assertEqual(fingerprint(LMN_V1), "7d2ea7fdcf56")


class LeaseBookTest(unittest.TestCase):
    def setUp(self) -> None:
        self.book = LeaseBook(ClientOptions(address="a:1", retire_margin=10, retry_interval=1))
        self.now = time.time()
        self.lease = make_lease(issued=self.now, ttl=60)
        self.book.hold(self.lease)

    def test_due_at_two_thirds_or_before_the_key_retires(self) -> None:
        self.assertAlmostEqual(self.book.due_for(self.lease, self.now), self.now + 40, places=3)
        retiring = make_lease(issued=self.now, ttl=60, retires=self.now + 30)
        self.assertAlmostEqual(self.book.due_for(retiring, self.now), self.now + 20, places=3)
        self.assertEqual(self.book.next_due()[0], "lumenfall")

    def test_renewals_keep_their_cadence_as_the_lease_ages(self) -> None:
        # A renewal keeps the first grant's issued_at; the next renewal is still 2/3 of the new
        # grant away, measured from when it arrived (from issued_at it would come ever sooner).
        book = LeaseBook(ClientOptions(address="a:1"))
        book.hold(make_lease(issued=self.now, ttl=60), now=self.now)
        later = self.now + 3600
        book.renewed("lumenfall", make_lease(issued=self.now, ttl=3600 + 60), now=later)
        self.assertAlmostEqual(book.next_due()[1], later + 40, places=3)

    def test_rotated_makes_it_stale_but_it_serves_while_the_broker_is_away(self) -> None:
        self.assertTrue(self.book.on_event(event(lease_pb2.KeyEvent.ROTATED, "v2")))
        self.assertIsNone(self.book.usable("lumenfall", self.now))  # re-acquire first
        self.assertEqual(self.book.next_due()[1], -math.inf)
        self.assertIs(self.book.fallback("lumenfall", self.now), self.lease)
        self.assertIs(self.book.usable("lumenfall", self.now + 0.5), self.lease)  # retry_after
        self.assertIsNone(self.book.usable("lumenfall", self.now + 1.5))
        self.assertFalse(self.book.on_event(event(lease_pb2.KeyEvent.ROTATED, "v1")))

    def test_quarantined_retired_revoked_drop_it_for_good(self) -> None:
        for kind in (lease_pb2.KeyEvent.QUARANTINED, lease_pb2.KeyEvent.RETIRED,
                     lease_pb2.KeyEvent.REVOKED):
            book = LeaseBook(ClientOptions(address="a:1"))
            book.hold(self.lease)
            self.assertFalse(book.on_event(event(kind, "v9")))
            self.assertIsNotNone(book.usable("lumenfall", self.now))
            self.assertTrue(book.on_event(event(kind, "v1")))
            self.assertIsNone(book.usable("lumenfall", self.now))
            self.assertIsNone(book.fallback("lumenfall", self.now))
            self.assertIsNone(book.lease_id_for_report("lumenfall"))
            self.assertEqual(book.drain_release(), ["L1"])
            self.assertEqual(book.close(), [])

    def test_a_snapshot_after_a_reconnect_catches_up(self) -> None:
        self.book.on_event(event(lease_pb2.KeyEvent.SNAPSHOT, "v1", lease_pb2.KEY_STATE_CURRENT))
        self.assertIsNotNone(self.book.usable("lumenfall", self.now))
        self.book.on_event(event(lease_pb2.KeyEvent.SNAPSHOT, "v1", lease_pb2.KEY_STATE_PREVIOUS))
        self.assertIsNone(self.book.usable("lumenfall", self.now))
        self.assertIsNotNone(self.book.fallback("lumenfall", self.now))
        self.book.on_event(event(lease_pb2.KeyEvent.SNAPSHOT, "v1", lease_pb2.KEY_STATE_REVOKED))
        self.assertIsNone(self.book.fallback("lumenfall", self.now))

    def test_retiring_moves_the_renewal_before_the_retire_time(self) -> None:
        retires = self.now + 25
        self.assertTrue(self.book.on_event(event(lease_pb2.KeyEvent.RETIRING, "v1",
                                                 retires=retires)))
        self.assertAlmostEqual(self.book.next_due()[1], retires - 10, places=3)
        held = self.book.snapshot("lumenfall")
        self.assertFalse(self.book.must_acquire(held, self.now))
        self.assertTrue(self.book.must_acquire(held, retires - 5))

    def test_never_served_after_expiry(self) -> None:
        expires = self.lease.expires_at.timestamp()
        self.assertIsNotNone(self.book.usable("lumenfall", expires - 0.001))
        self.assertIsNone(self.book.usable("lumenfall", expires))
        self.assertIsNone(self.book.fallback("lumenfall", expires))
        self.assertIn("expired at", self.book.unusable_because("lumenfall"))

    def test_a_new_lease_replaces_and_releases_the_old_one(self) -> None:
        newer = make_lease(version="v2", lease_id="L2", key=SECRET + "-2")
        self.assertIs(self.book.hold(newer), self.lease)  # another key: listeners are told
        self.assertEqual(self.book.drain_release(), ["L1"])
        same_key = make_lease(version="v2", lease_id="L3", key=SECRET + "-2")
        self.assertIsNone(self.book.hold(same_key))
        self.assertEqual(self.book.close(), ["L2", "L3"])

    def test_renewals_of_a_replaced_lease_are_ignored(self) -> None:
        self.book.hold(make_lease(lease_id="L2"))
        self.book.renewed("lumenfall", make_lease(lease_id="L1", ttl=600))
        self.assertEqual(self.book.snapshot("lumenfall").lease.lease_id, "L2")
        self.assertFalse(self.book.mark_stale("lumenfall", "L1"))
        self.assertTrue(self.book.mark_stale("lumenfall", "L2"))


def unreachable_options() -> ClientOptions:
    return ClientOptions(address=f"127.0.0.1:{free_loopback_port()}", token="t" * 20,
                         deadline=2, retry=RetryPolicy(2, 0.05, 0.1), retry_interval=0.2)


class NoBrokerTest(unittest.TestCase):
    def test_sync_client_without_a_broker_fails_with_unavailable(self) -> None:
        started = time.monotonic()
        with LeaseClient(unreachable_options()) as c:
            with self.assertRaises(BrokerError) as ctx:
                c.authorization_header("lumenfall")
            self.assertEqual(ctx.exception.code, grpc.StatusCode.UNAVAILABLE)
            self.assertIn("cannot lease a lumenfall key", ctx.exception.message)
            with self.assertRaises(BrokerError) as ctx:
                c.report_auth_failure("lumenfall", 401)
            self.assertEqual(ctx.exception.code, grpc.StatusCode.FAILED_PRECONDITION)
        c.close()  # idempotent
        with self.assertRaises(RuntimeError):
            c.base_url("lumenfall")
        self.assertLess(time.monotonic() - started, 5)

    def test_async_client_without_a_broker_fails_with_unavailable(self) -> None:
        async def run() -> None:
            async with AsyncLeaseClient(unreachable_options()) as c:
                with self.assertRaises(BrokerError) as ctx:
                    await c.authorization_header("lumenfall")
                self.assertEqual(ctx.exception.code, grpc.StatusCode.UNAVAILABLE)
            await c.aclose()
            with self.assertRaises(RuntimeError):
                await c.base_url("lumenfall")
        started = time.monotonic()
        asyncio.run(run())
        self.assertLess(time.monotonic() - started, 5)


if __name__ == "__main__":
    unittest.main()
