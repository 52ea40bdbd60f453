"""The public surface is deliberate: changing it must change this test too."""

from __future__ import annotations

import sealtrail


def test_exported_names_are_pinned() -> None:
    """``sealtrail.__all__`` is exactly the documented public API, and every name resolves."""
    assert sorted(sealtrail.__all__) == [
        "AsyncClient", "AuditLog", "Client", "ConfigError", "ConsistencyError",
        "DecryptionError", "DeliveryError", "Entry", "Event",
        "FieldPolicy", "FormatError", "InclusionError", "KeyEncryptionKey", "KeyringError",
        "PolicyError", "Receipt", "SealtrailError", "SignatureError", "StorageError",
        "TamperError", "ValidationError", "VerificationError",
    ]
    for name in sealtrail.__all__:
        assert getattr(sealtrail, name) is not None


def test_error_tree_has_one_root() -> None:
    """Every exported error derives from SealtrailError; verification errors share a parent."""
    for name in sealtrail.__all__:
        obj = getattr(sealtrail, name)
        if isinstance(obj, type) and name.endswith("Error"):
            assert issubclass(obj, sealtrail.SealtrailError)
    for sub in (sealtrail.FormatError, sealtrail.InclusionError, sealtrail.ConsistencyError,
                sealtrail.SignatureError, sealtrail.TamperError):
        assert issubclass(sub, sealtrail.VerificationError)
