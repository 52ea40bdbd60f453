"""sealtrail: a self-hosted, tamper-evident audit trail.

The public surface is pinned by ``tests/test_public_api.py``: change ``__all__`` on purpose.
"""

from sealtrail.core.errors import (
    ConfigError,
    ConsistencyError,
    FormatError,
    InclusionError,
    SealtrailError,
    SignatureError,
    StorageError,
    TamperError,
    ValidationError,
    VerificationError,
)
from sealtrail.core.event import Event
from sealtrail.log.auditlog import AuditLog, Entry, Receipt

__all__ = [
    "AuditLog",
    "ConfigError",
    "ConsistencyError",
    "Entry",
    "Event",
    "FormatError",
    "InclusionError",
    "Receipt",
    "SealtrailError",
    "SignatureError",
    "StorageError",
    "TamperError",
    "ValidationError",
    "VerificationError",
]
__version__ = "0.1.0"
