"""The log's checkpoint signing key on disk.

The private key is written once, with ``O_CREAT | O_EXCL`` and mode 0600 (never world- or
group-readable, not even for an instant); opening refuses a key file others can read. The
verifier key (public) is written beside it for convenience.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sealtrail.core.errors import ConfigError
from sealtrail.core.note import Signer, Verifier

SIGNING_KEY = "signing.key"
VERIFIER_KEY = "verifier.vkey"


def create_signer(log_dir: Path, name: str) -> Signer:
    """Create and store a new Ed25519 signing key named ``name`` (the checkpoint origin)."""
    signer = Signer.from_seed(name, os.urandom(32))
    path = log_dir / SIGNING_KEY
    # Write a private temporary file, then link it into place: a crash never leaves an empty or
    # partial key under the real name, and linking fails if a key already exists.
    tmp = log_dir / f".{SIGNING_KEY}.{os.urandom(6).hex()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.write(fd, (signer.format() + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(tmp, path)
    finally:
        tmp.unlink()
    (log_dir / VERIFIER_KEY).write_text(signer.verifier().format() + "\n")
    return signer


def load_signer(log_dir: Path) -> Signer:
    """Load the signing key, refusing a file that group or others may read."""
    path = log_dir / SIGNING_KEY
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as exc:
        raise ConfigError(f"the signing key {path} is missing") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"the signing key {path} is readable by others "
                          f"(mode {stat.S_IMODE(mode):o}); run: chmod 600 {path}")
    return Signer.parse(path.read_text())


def load_verifier(path: Path) -> Verifier:
    """Read a verifier key (vkey) file."""
    try:
        return Verifier.parse(path.read_text().strip())
    except OSError as exc:
        raise ConfigError(f"cannot read the verifier key {path}: {exc}") from exc
