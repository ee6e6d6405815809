"""The generated protobuf/gRPC modules (built from the repository's proto/ at install time).

    from credbroker_client.proto import lease_pb2, lease_pb2_grpc, admin_pb2, admin_pb2_grpc
"""
from __future__ import annotations

try:
    from ._proto.credbroker.v1 import admin_pb2, admin_pb2_grpc, lease_pb2, lease_pb2_grpc
except ImportError as _err:  # pragma: no cover - a source checkout that was never built
    raise ImportError(
        "credbroker_client's gRPC stubs were not generated: install the package "
        "(pip install --no-build-isolation clients/python) or run "
        "`python3 clients/python/build_protos.py`") from _err

__all__ = ["admin_pb2", "admin_pb2_grpc", "lease_pb2", "lease_pb2_grpc"]
