"""sealtrail: a self-hosted, tamper-evident audit trail.

The public surface is pinned by ``tests/test_public_api.py``: change ``__all__`` on purpose.
"""

from sealtrail.client import AsyncClient, Client, DeliveryError
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
