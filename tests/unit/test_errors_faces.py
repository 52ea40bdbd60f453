"""Each error class says once what it is at each face: the CLI's exit code and text, the
service's status and text (core/errors.py); the CLI and the service only read them."""

from __future__ import annotations

import pytest

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


@pytest.mark.parametrize(("error", "exit_code", "status", "public"), [
    (ValidationError("actor.id", "missing"), 2, 422, "actor.id: missing"),
    (ConfigError("--vkey: not a key"), 2, 400, "--vkey: not a key"),
    (KeyringError("passphrase is wrong for /secret/path"), 2, 503,
     "the log's keyring is not available to this service"),
    (PolicyError("subject under legal hold"), 2, 400, "subject under legal hold"),
    (DecryptionError("tag mismatch"), 1, 500, "integrity failure: tag mismatch"),
    (StorageError("disk I/O error at /data/log.db"), 1, 503,
     "storage unavailable; nothing was stored"),
    (VerificationError("root differs"), 1, 500, "integrity failure: root differs"),
    (FormatError("bad note"), 1, 500, "integrity failure: bad note"),
    (InclusionError("no"), 1, 500, "integrity failure: no"),
    (ConsistencyError("no"), 1, 500, "integrity failure: no"),
    (SignatureError("no"), 1, 500, "integrity failure: no"),
    (SealtrailError("a path /x and a detail"), 1, 500, "internal error"),
])
def test_each_class_carries_its_faces(error: SealtrailError, exit_code: int, status: int,
                                      public: str) -> None:
    assert (error.exit_code, error.http_status) == (exit_code, status)
    assert error.public_message() == public


def test_storage_diagnostics_say_storage_and_others_say_themselves() -> None:
    assert StorageError("disk full").diagnostics() == "storage: disk full"
    assert ValidationError("f", "m").diagnostics() == "f: m"
    assert TamperError.exit_code == 1
