"""An encrypted archive segment whose header is malformed (a key field missing, not text, not
base64, a nonce of a length AES-GCM refuses) does not open: DecryptionError, as for an
altered body, and never an exception of another type."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sealtrail import AuditLog
from sealtrail.core.errors import ConfigError, DecryptionError
from sealtrail.log.archive import MAGIC, archive, archive_dir, restore
from sealtrail.log.retention import RetentionPolicy

T0 = datetime(2025, 1, 1, tzinfo=UTC)
OPS = {"id": "ops-1"}
POLICY = RetentionPolicy.parse({"name": "t", "default": {"min": "300d", "online": "60d"}})


@pytest.mark.parametrize("change", [
    {"wrapped": None}, {"wrapped": 7}, {"wrapped": "not base64!"}, {"nonce": 7},
    {"nonce": base64.b64encode(b"abc").decode()}, {"nonce": ""},
])
def test_a_malformed_key_header_is_a_decryption_error(tmp_path: Path,
                                                      change: dict[str, Any]) -> None:
    now = [T0]
    with AuditLog.open(tmp_path / "data", clock=lambda: now[0]) as log:
        log.append({"action": "doc.read", "actor": {"id": "u1"}, "outcome": "success"})
        now[0] = T0 + timedelta(days=130)
        archive(log, POLICY, actor=OPS)
        (path,) = archive_dir(log).iterdir()
        line, _, payload = path.read_bytes()[len(MAGIC):].partition(b"\n")
        header = json.loads(line)
        assert "kid" in header  # the segment is encrypted
        for key, value in change.items():
            if value is None:
                del header[key]
            else:
                header[key] = value
        bad = tmp_path / "bad.starc"
        bad.write_bytes(MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n" + payload)
        with pytest.raises(DecryptionError, match="does not open"):
            restore(log, bad, actor=OPS)


@pytest.mark.parametrize(("digest", "error"), [(None, ConfigError),
                                               ("\u00e9" * 64, DecryptionError),
                                               ("\ud800", DecryptionError)])
def test_a_bad_body_digest_is_refused_as_such(tmp_path: Path, digest: str | None,
                                              error: type[Exception]) -> None:
    """``body_sha256`` missing is a malformed header (ConfigError), not a KeyError; one that
    is not ASCII does not match (DecryptionError), not hmac's TypeError."""
    now = [T0]
    with AuditLog.open(tmp_path / "data", clock=lambda: now[0], encryption=False) as log:
        log.append({"action": "doc.read", "actor": {"id": "u1"}, "outcome": "success"})
        now[0] = T0 + timedelta(days=130)
        archive(log, POLICY, actor=OPS)
        (path,) = archive_dir(log).iterdir()
        line, _, payload = path.read_bytes()[len(MAGIC):].partition(b"\n")
        header = json.loads(line)
        assert "kid" not in header
        if digest is None:
            del header["body_sha256"]
        else:
            header["body_sha256"] = digest
        bad = tmp_path / "bad.starc"
        bad.write_bytes(MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n" + payload)
        with pytest.raises(error, match="header"):
            restore(log, bad, actor=OPS)
