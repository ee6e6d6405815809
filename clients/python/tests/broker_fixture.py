"""Test fixture: the real credbroker binary on loopback, and the client package built from source.

Mirrors libs/testing (BrokerProcess, WriteK8sSecretDir, FreeLoopbackPort) and tests/e2e's
fixture. Environment:
    CREDBROKER_BIN         the broker binary (e2e tests are skipped without it)
    CREDBROKER_SOURCE_DIR  the repository root (default: three levels above this file)
Key material is never printed: compare fingerprints.
"""
from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, Optional, Set

HERE = Path(__file__).resolve().parent
SOURCE_DIR = Path(os.environ.get("CREDBROKER_SOURCE_DIR") or HERE.parent.parent.parent)
BROKER_BIN = os.environ.get("CREDBROKER_BIN", "")


def _build_package() -> None:
    """Copies src/credbroker_client to a temp dir with freshly generated stubs, on sys.path first
    (the tests exercise the sources, never stubs left in the tree)."""
    sys.path.insert(0, str(HERE.parent))
    import build_protos  # noqa: PLC0415

    target = Path(tempfile.mkdtemp(prefix="credbroker-pyclient-"))
    atexit.register(shutil.rmtree, target, True)
    shutil.copytree(HERE.parent / "src" / "credbroker_client", target / "credbroker_client",
                    ignore=shutil.ignore_patterns("_proto", "__pycache__"))
    build_protos.generate(SOURCE_DIR / "proto", target / "credbroker_client")
    sys.path.remove(str(HERE.parent))
    sys.path.insert(0, str(target))


if "credbroker_client" not in sys.modules:
    _build_package()

import grpc  # noqa: E402

from credbroker_client import fingerprint  # noqa: E402
from credbroker_client.errors import BrokerError  # noqa: E402
from credbroker_client.proto import admin_pb2, admin_pb2_grpc  # noqa: E402

LMN_V1 = "lmnfl_e2eone.0123456789abcdef0123"
LMN_V2 = "lmnfl_e2etwo.fedcba9876543210fedc"
FP_V1 = fingerprint(LMN_V1)
FP_V2 = fingerprint(LMN_V2)
APP_TOKEN = "py-app-token-0123456789"
APP2_TOKEN = "py-app2-token-0123456789abcdef"
ADMIN_TOKEN = "py-admin-token-0123456789"

CONFIG = """server:
  listen: {listen}
  metrics_listen: 127.0.0.1:0
  data_dir: data
  shutdown_grace: 1s
sources:
  - name: local
    file:
      root: keys
    refresh_interval: 1s
providers:
  # Fake keys: no provider to probe (and a probe would leave loopback).
  - name: lumenfall
    probe: {{disabled: true}}
leases:
  default_ttl: 10m
  max_ttl: 1h
  min_ttl: 1s
  sweep_interval: 1s
policy:
  rules:
    - identities: [py-app, py-app2]
      providers: ["*"]
identity:
  static_tokens:
    - service: py-app
      token: {app}
    - service: py-app2
      token: {app2}
    - service: py-admin
      token_file: admin.token
      admin: true
"""


def write_k8s_secret_dir(directory: Path, files: Dict[str, str]) -> None:
    """Writes `files` into `directory` the way the kubelet updates a Secret volume: a timestamped
    directory, a ``..data_tmp`` symlink renamed over ``..data``, visible names linking to
    ``..data/<name>``, stale names removed, the old timestamped directory deleted."""
    directory.mkdir(parents=True, exist_ok=True)
    ts_name = "..{}.{}_{}".format(time.strftime("%Y_%m_%d_%H_%M_%S", time.gmtime()), os.getpid(),
                                  time.monotonic_ns())
    (directory / ts_name).mkdir()
    for name, contents in files.items():
        (directory / ts_name / name).write_text(contents)
    data = directory / "..data"
    old_target = os.readlink(data) if data.is_symlink() else ""
    tmp = directory / "..data_tmp"
    if tmp.is_symlink():
        tmp.unlink()
    os.symlink(ts_name, tmp)
    os.replace(tmp, data)
    for name in files:
        if not (directory / name).is_symlink():
            os.symlink(os.path.join("..data", name), directory / name)
    for entry in directory.iterdir():
        if not entry.name.startswith("..") and entry.name not in files:
            entry.unlink()
    if old_target:
        shutil.rmtree(directory / old_target, ignore_errors=True)


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bound and released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def eventually(pred: Callable[[], bool], timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Polls `pred` until it holds or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return pred()


async def eventually_async(pred: Callable[[], Awaitable[bool]], timeout: float = 10.0,
                           interval: float = 0.05) -> bool:
    """eventually() for coroutine predicates."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await pred():
            return True
        await asyncio.sleep(interval)
    return await pred()


class BrokerProcess:
    """The broker binary as a child process; it reports its ports through --port-file."""

    _counter = 0

    def __init__(self, binary: str, config: Path, work_dir: Path, timeout: float = 30.0) -> None:
        BrokerProcess._counter += 1
        n = BrokerProcess._counter
        port_file = work_dir / f"ports-{n}.txt"
        self.log_path = work_dir / f"broker-{n}.log"
        with open(self.log_path, "wb") as log:
            self._proc = subprocess.Popen(
                [binary, "--config", str(config), "--port-file", str(port_file)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=work_dir)
        ports: Dict[str, int] = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"broker exited with {self._proc.returncode} before listening;"
                                   f" log:\n{self.logs()}")
            text = port_file.read_text() if port_file.exists() else ""
            if "metrics=" in text:  # written atomically (rename)
                for line in text.split():
                    key, _, value = line.partition("=")
                    ports[key] = int(value)
                break
            time.sleep(0.02)
        else:
            self.kill()
            raise RuntimeError(f"broker did not report its ports; log:\n{self.logs()}")
        self.grpc_port = ports["grpc"]
        self.metrics_port = ports["metrics"]

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def running(self) -> bool:
        return self._proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: a crash."""
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def stop(self, grace: float = 10.0) -> int:
        """SIGTERM and wait; the exit code (-1 if it had to be killed)."""
        if self._proc.poll() is not None:
            return self._proc.returncode
        self._proc.send_signal(signal.SIGTERM)
        try:
            return self._proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.kill()
            return -1

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
            return str(response.read().decode("utf-8", "replace"))


@unittest.skipUnless(BROKER_BIN, "set CREDBROKER_BIN to the credbroker binary")
class BrokerTestCase(unittest.TestCase):
    """A temp dir with lumenfall v1 in K8s-secret layout and a config; start_broker() runs it."""

    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="credbroker-pytest-"))
        self.addCleanup(shutil.rmtree, self.dir, True)
        write_k8s_secret_dir(self.dir / "keys" / "lumenfall", {"v1": LMN_V1 + "\n"})
        (self.dir / "admin.token").write_text(ADMIN_TOKEN + "\n")
        self.broker: Optional[BrokerProcess] = None
        self._admin_channel: Optional[grpc.Channel] = None
        self.addCleanup(self._stop_broker)

    def start_broker(self, port: int = 0, config_text: str = CONFIG) -> BrokerProcess:
        """Starts the broker (on `port`, or any free one), same data dir every time."""
        config = self.dir / "broker.yaml"
        config.write_text(config_text.format(listen=f"127.0.0.1:{port}", app=APP_TOKEN,
                                             app2=APP2_TOKEN))
        self.broker = BrokerProcess(BROKER_BIN, config, self.dir)
        if self._admin_channel is not None:
            self._admin_channel.close()
        self._admin_channel = grpc.insecure_channel(self.broker.grpc_address)
        self.admin = admin_pb2_grpc.AdminServiceStub(self._admin_channel)
        return self.broker

    def _stop_broker(self) -> None:
        if self._admin_channel is not None:
            self._admin_channel.close()
        if self.broker is not None and self.broker.running:
            code = self.broker.stop()
            self.assertEqual(code, 0, "broker did not exit cleanly on SIGTERM")

    def admin_call(self, method: str, request: Any) -> Any:
        """An AdminService call with the admin token; raises BrokerError."""
        try:
            return getattr(self.admin, method)(
                request, timeout=10, metadata=(("authorization", "Bearer " + ADMIN_TOKEN),))
        except grpc.RpcError as err:
            raise BrokerError.from_rpc_error(err) from None

    def stage_v2(self) -> None:
        """Adds lumenfall v2 to the key dir and waits until the broker lists it."""
        write_k8s_secret_dir(self.dir / "keys" / "lumenfall",
                             {"v1": LMN_V1 + "\n", "v2": LMN_V2 + "\n"})
        self.assertTrue(eventually(lambda: len(self.admin_call(
            "ListKeyVersions", admin_pb2.ListKeyVersionsRequest(provider="lumenfall")).versions) == 2))

    def rotate(self) -> None:
        """Promotes v2 (or finds it promoted already: this provider has no probe to wait for)."""
        try:
            self.admin_call("RotateKey", admin_pb2.RotateKeyRequest(provider="lumenfall"))
        except BrokerError as err:
            self.assertEqual(err.reason, "NO_PENDING_VERSION", str(err))

    def quarantine_v1(self) -> None:
        self.admin_call("QuarantineKeyVersion", admin_pb2.QuarantineKeyVersionRequest(
            provider="lumenfall", key_version="v1", reason="leaked in a log"))

    def lease_ids(self, key_version: str = "") -> Set[str]:
        """The ids of the leases the broker lists for lumenfall (on `key_version` if given)."""
        leases = self.admin_call("ListLeases", admin_pb2.ListLeasesRequest(
            provider="lumenfall", key_version=key_version)).leases
        return {lease.lease_id for lease in leases}
