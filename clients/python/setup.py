"""Build hook: generates the gRPC stubs from the repository's proto/ while building."""
from __future__ import annotations

import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import build_protos  # noqa: E402  (next to this file)


class BuildPyWithProtos(build_py):
    """build_py that also writes credbroker_client/_proto (generated, never checked in)."""

    def run(self) -> None:
        super().run()
        proto_dir = build_protos.find_proto_dir(HERE)
        if getattr(self, "editable_mode", False):
            target = HERE / "src" / "credbroker_client"  # editable: next to the sources
        else:
            target = Path(self.build_lib) / "credbroker_client"
        build_protos.generate(proto_dir, target)


setup(cmdclass={"build_py": BuildPyWithProtos})
