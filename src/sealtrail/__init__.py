"""sealtrail: a self-hosted, tamper-evident audit trail.

The public surface is pinned by ``tests/test_public_api.py``: change ``__all__`` on purpose.
"""

from typing import TYPE_CHECKING, Any

from sealtrail.core.errors import (
    ConfigError,
    ConsistencyError,
    DecryptionError,
    FormatError,
    InclusionError,
    KeyringError,
    PolicyError,
    SealtrailError,
    SignatureError,
    StorageError,
    TamperError,
    ValidationError,
    VerificationError,
)
from sealtrail.core.event import Event
from sealtrail.core.policy import FieldPolicy
from sealtrail.log.auditlog import AuditLog, Entry, Receipt
from sealtrail.log.keyring import KeyEncryptionKey

__all__ = [
    "AsyncClient",
    "AuditLog",
    "Client",
    "ConfigError",
    "ConsistencyError",
    "DecryptionError",
    "DeliveryError",
    "Entry",
    "Event",
    "FieldPolicy",
    "FormatError",
    "InclusionError",
    "KeyEncryptionKey",
    "KeyringError",
    "PolicyError",
    "Receipt",
    "SealtrailError",
    "SignatureError",
    "StorageError",
    "TamperError",
    "ValidationError",
    "VerificationError",
]
__version__ = "0.1.0"

if TYPE_CHECKING:
    from sealtrail.client import AsyncClient, Client, DeliveryError

# The SDK (httpx, asyncio) loads when first asked for (PEP 562): the CLI and the service never
# use it, and importing it cost every CLI command about 180 ms.
_LAZY = {"AsyncClient", "Client", "DeliveryError"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from sealtrail import client  # noqa: PLC0415 - the point of this hook

        return getattr(client, name)
    raise AttributeError(f"module 'sealtrail' has no attribute {name!r}")
