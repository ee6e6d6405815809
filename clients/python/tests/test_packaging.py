"""The package installs with pip (no network, no build isolation: Debian's python3-grpc-tools),
and the build hook generates the stubs into it."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

from broker_fixture import SOURCE_DIR

PACKAGE_DIR = Path(__file__).resolve().parent.parent


def _pip_available() -> bool:
    result = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True,
                            check=False)
    return result.returncode == 0


@unittest.skipUnless(_pip_available(), "pip is not installed")
class PackagingTest(unittest.TestCase):
    def test_pip_install_generates_the_stubs(self) -> None:
        work = Path(tempfile.mkdtemp(prefix="credbroker-pip-"))
        self.addCleanup(shutil.rmtree, work, True)
        # A copy: pip's in-tree build would leave build/ and *.egg-info in the sources.
        src = work / "src"
        shutil.copytree(PACKAGE_DIR, src, ignore=shutil.ignore_patterns(
            "_proto", "build", "dist", "*.egg-info", "__pycache__"))
        env = dict(os.environ, CREDBROKER_PROTO_DIR=str(SOURCE_DIR / "proto"),
                   PIP_DISABLE_PIP_VERSION_CHECK="1")
        install = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--no-build-isolation", "--no-deps",
             "--no-index", "--quiet", "--target", str(work / "target"), str(src)],
            capture_output=True, text=True, env=env, timeout=120, check=False)
        self.assertEqual(install.returncode, 0, install.stdout + install.stderr)
        check = subprocess.run(
            [sys.executable, "-c",
             "import credbroker_client, credbroker_client.proto as p;"
             "print(credbroker_client.__file__);"
             "print(p.lease_pb2.Lease.DESCRIPTOR.full_name, p.admin_pb2_grpc.AdminServiceStub)"],
            capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(work / "target")),
            cwd=str(work), timeout=60, check=False)
        self.assertEqual(check.returncode, 0, check.stderr)
        self.assertTrue(check.stdout.startswith(str(work / "target")), check.stdout)
        self.assertIn("credbroker.v1.Lease", check.stdout)
        self.assertTrue((work / "target" / "credbroker_client" / "py.typed").exists())


if __name__ == "__main__":
    unittest.main()
