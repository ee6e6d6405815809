"""credbroker_client: lease provider API keys from credbroker instead of holding them.

    from credbroker_client import ClientOptions, LeaseClient

    with LeaseClient(ClientOptions(address="credbroker.credbroker.svc:7443",
                                   token_file="/var/run/secrets/credbroker/token")) as broker:
        name, value = broker.authorization_header("lumenfall")
"""
from .aio import AsyncLeaseClient
from .client import LeaseClient
from .errors import BrokerError
from .lease import Header, Lease, fingerprint
from .options import ClientOptions, RetryPolicy, TlsOptions
from .sdk import AsyncProviderCredentials, ProviderCredentials
from .token import CallerToken, StaticToken, TokenFile

__all__ = [
    "AsyncLeaseClient",
    "AsyncProviderCredentials",
    "BrokerError",
    "CallerToken",
    "ClientOptions",
    "Header",
    "Lease",
    "LeaseClient",
    "ProviderCredentials",
    "RetryPolicy",
    "StaticToken",
    "TlsOptions",
    "TokenFile",
    "fingerprint",
]

__version__ = "0.1.0"
