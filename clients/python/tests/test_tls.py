"""TLS and mutual TLS to the real broker: the client certificate is the caller's identity, the
broker's certificate is checked against the given CA under the `server_name` override."""
from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import unittest
from pathlib import Path

import grpc

from broker_fixture import (BROKER_BIN, FP_V1, LMN_V1, BrokerProcess,
                            write_k8s_secret_dir)
from credbroker_client import (AsyncLeaseClient, BrokerError, ClientOptions, LeaseClient,
                               RetryPolicy, TlsOptions, fingerprint)

OPENSSL = "/usr/bin/openssl"

TLS_CONFIG = """server:
  listen: {listen}
  metrics_listen: 127.0.0.1:0
  data_dir: data
  shutdown_grace: 1s
  tls:
    cert_file: server.crt
    key_file: server.key
    client_ca_file: ca.crt
sources:
  - name: local
    file: {{root: keys}}
providers:
  - name: lumenfall
    probe: {{disabled: true}}
identity:
  mtls: {{trust_domain: cluster.local}}
policy:
  rules:
    - identities: ["billing/*"]
      providers: [lumenfall]
"""


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=30)


def make_ca(d: Path, name: str) -> None:
    _run(OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.crt"),
         "-subj", f"/CN={name}", "-days", "2")


def make_leaf(d: Path, name: str, ca: str, san: str, usage: str) -> None:
    (d / f"{name}.ext").write_text(
        f"basicConstraints=CA:FALSE\nsubjectAltName={san}\nextendedKeyUsage={usage}\n")
    _run(OPENSSL, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.csr"),
         "-subj", f"/CN={name}")
    _run(OPENSSL, "x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / f"{ca}.crt"),
         "-CAkey", str(d / f"{ca}.key"), "-CAcreateserial", "-out", str(d / f"{name}.crt"),
         "-days", "2", "-extfile", str(d / f"{name}.ext"))


@unittest.skipUnless(BROKER_BIN, "set CREDBROKER_BIN to the credbroker binary")
@unittest.skipUnless(os.access(OPENSSL, os.X_OK), "needs /usr/bin/openssl")
class TlsTest(unittest.TestCase):
    """One broker for the class: these tests change no broker state."""

    dir: Path
    broker: BrokerProcess

    @classmethod
    def setUpClass(cls) -> None:
        cls.dir = Path(tempfile.mkdtemp(prefix="credbroker-tls-"))
        cls.addClassCleanup(shutil.rmtree, cls.dir, True)
        make_ca(cls.dir, "ca")
        make_ca(cls.dir, "rogue-ca")
        # The broker's certificate names only credbroker.test: reaching it at 127.0.0.1 needs
        # the server_name override.
        make_leaf(cls.dir, "server", "ca", "DNS:credbroker.test", "serverAuth")
        make_leaf(cls.dir, "billing", "ca", "URI:spiffe://cluster.local/ns/billing/sa/api",
                  "clientAuth")
        write_k8s_secret_dir(cls.dir / "keys" / "lumenfall", {"v1": LMN_V1 + "\n"})
        (cls.dir / "broker.yaml").write_text(TLS_CONFIG.format(listen="127.0.0.1:0"))
        cls.broker = BrokerProcess(BROKER_BIN, cls.dir / "broker.yaml", cls.dir)
        cls.addClassCleanup(cls.broker.stop)

    def options(self, root: str = "ca", **tls: str) -> ClientOptions:
        settings = dict(root_ca_file=str(self.dir / f"{root}.crt"),
                        cert_file=str(self.dir / "billing.crt"),
                        key_file=str(self.dir / "billing.key"), server_name="credbroker.test")
        settings.update(tls)
        return ClientOptions(address=self.broker.grpc_address, tls=TlsOptions(**settings),
                             retry=RetryPolicy(2, 0.05, 0.1), retry_interval=0.05, deadline=5)

    def test_sync_client_over_mutual_tls(self) -> None:
        with LeaseClient(self.options()) as c:
            self.assertEqual(c.ping(), "billing/api")
            _, value = c.authorization_header("lumenfall")
            self.assertEqual(fingerprint(value[len("Bearer "):]), FP_V1)

    def test_async_client_over_mutual_tls(self) -> None:
        async def run() -> None:
            async with AsyncLeaseClient(self.options()) as c:
                self.assertEqual(await c.ping(), "billing/api")
                _, value = await c.authorization_header("lumenfall")
                self.assertEqual(fingerprint(value[len("Bearer "):]), FP_V1)
        asyncio.run(run())

    def test_an_untrusted_broker_certificate_is_refused(self) -> None:
        with LeaseClient(self.options(root="rogue-ca")) as c:
            with self.assertRaises(BrokerError) as ctx:
                c.authorization_header("lumenfall")
            self.assertEqual(ctx.exception.code, grpc.StatusCode.UNAVAILABLE)

    def test_a_wrong_server_name_is_refused(self) -> None:
        with LeaseClient(self.options(server_name="other.test")) as c:
            with self.assertRaises(BrokerError) as ctx:
                c.ping()
            self.assertEqual(ctx.exception.code, grpc.StatusCode.UNAVAILABLE)

    def test_unreadable_tls_files_are_refused_at_construction(self) -> None:
        with self.assertRaises(ValueError) as ctx:
            LeaseClient(self.options(root="missing"))
        self.assertIn("missing.crt", str(ctx.exception))


if __name__ == "__main__":
    unittest.main()
