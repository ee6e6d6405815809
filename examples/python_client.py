"""Lease a provider key from credbroker, use it, renew, report a failure, release.

Generate the stubs once (Debian: apt-get install python3-grpcio python3-grpc-tools):
    python3 -m grpc_tools.protoc -I proto --python_out=gen --grpc_python_out=gen \
        proto/credbroker/v1/lease.proto
then run with PYTHONPATH=gen CREDBROKER_TOKEN=... python3 examples/python_client.py
"""
import os

import grpc
from google.protobuf import duration_pb2

from credbroker.v1 import lease_pb2, lease_pb2_grpc

channel = grpc.insecure_channel(os.environ.get("CREDBROKER_ADDR", "127.0.0.1:7443"))
leases = lease_pb2_grpc.LeaseServiceStub(channel)
auth = [("authorization", "Bearer " + os.environ["CREDBROKER_TOKEN"])]

lease = leases.AcquireLease(
    lease_pb2.AcquireLeaseRequest(
        provider=os.environ.get("PROVIDER", "lumenfall"),
        ttl=duration_pb2.Duration(seconds=600),
        purpose="python example"),
    metadata=auth)
# Call the provider with the ready-made header; keep the key only for the lease's lifetime:
#   requests.get(lease.base_url + "/models", headers={lease.header_name: lease.header_value})
print(f"leased {lease.provider} key {lease.key_version} "
      f"(fingerprint {lease.key_fingerprint}) until {lease.expires_at.ToJsonString()}")

# If the provider answers 401/403/429, tell the broker; it says whether a newer key exists.
report = leases.ReportAuthFailure(
    lease_pb2.ReportAuthFailureRequest(lease_id=lease.lease_id, http_status=401),
    metadata=auth)
if report.newer_key_available:
    lease = leases.AcquireLease(
        lease_pb2.AcquireLeaseRequest(provider=lease.provider), metadata=auth)

# Renew before expiry, release when done.
lease = leases.RenewLease(lease_pb2.RenewLeaseRequest(lease_id=lease.lease_id), metadata=auth)
print(f"renewed {lease.lease_id} ({lease.renew_count} renewals)")
leases.ReleaseLease(lease_pb2.ReleaseLeaseRequest(lease_id=lease.lease_id), metadata=auth)

# Errors are grpc.RpcError with a status code, e.g. NOT_FOUND for an unknown provider.
try:
    leases.AcquireLease(lease_pb2.AcquireLeaseRequest(provider="no-such-provider"), metadata=auth)
except grpc.RpcError as err:
    print(f"unknown provider -> {err.code().name}: {err.details()}")
