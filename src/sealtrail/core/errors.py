"""One rooted error tree for sealtrail.

::

    SealtrailError
    ├── ValidationError        bad input; ``field`` names the field, ``line`` the input line
    ├── ConfigError            bad configuration or arguments (data dir, log name, key files)
    │   └── KeyringError       keyring missing, locked (no passphrase) or the passphrase is wrong
    ├── PolicyError            refused by policy (erasing a subject under legal hold)
    ├── DecryptionError        a sealed field fails authentication (altered, or the wrong key)
    ├── StorageError           the store failed (disk full, locked, corrupt beyond reading)
    └── VerificationError      something that should verify does not
        ├── FormatError        malformed proof, note, checkpoint or key: a verification failure
        ├── InclusionError     an inclusion proof does not lead to the root
        ├── ConsistencyError   two tree heads are not consistent
        ├── SignatureError     no trusted signature verifies on a note
        └── TamperError        the stored log differs from what it committed to (index, kind)

Verification functions return ``None`` or raise; they never return a bool. Malformed input to a
verifier is a verification failure (``FormatError``), never a crash of another type.
"""

from __future__ import annotations


class SealtrailError(Exception):
    """Root of every error sealtrail raises on purpose."""

    def diagnostics(self) -> str:
        """A one-paragraph explanation suitable for CLI output."""
        return str(self)


class ValidationError(SealtrailError):
    """Input rejected before anything was stored; ``field`` names where (``actor.id``)."""

    def __init__(self, field: str, message: str, *, line: int | None = None) -> None:
        self.field = field
        self.message = message
        self.line = line
        self.position: int = -1  # which event of a request, when the engine knows
        where = f"line {line}: " if line is not None else ""
        super().__init__(f"{where}{field}: {message}")

    def at_line(self, line: int) -> ValidationError:
        """The same error, located at ``line`` of an input file."""
        return ValidationError(self.field, self.message, line=line)


class ConfigError(SealtrailError):
    """Bad configuration or arguments: the message names the option or file."""


class KeyringError(ConfigError):
    """The keyring is missing, locked (no passphrase given) or the passphrase is wrong."""


class PolicyError(SealtrailError):
    """The operation is refused by policy (for example erasing a subject under legal hold)."""


class DecryptionError(SealtrailError):
    """A sealed field failed authentication: it was altered, moved, or the key is wrong.

    Deliberately opaque (which check failed is not said): no padding-oracle-style hints.
    """


class StorageError(SealtrailError):
    """The store could not do what was asked; nothing of the failed request is acknowledged."""


class VerificationError(SealtrailError):
    """Something that must verify does not."""


class FormatError(VerificationError):
    """Malformed proof, note, checkpoint or key text."""


class InclusionError(VerificationError):
    """An inclusion proof does not lead to the expected root."""

    def __init__(self, message: str, *, expected: bytes | None = None,
                 calculated: bytes | None = None) -> None:
        self.expected = expected
        self.calculated = calculated
        super().__init__(message)


class ConsistencyError(VerificationError):
    """A consistency proof does not link the two tree heads."""

    def __init__(self, message: str, *, expected: bytes | None = None,
                 calculated: bytes | None = None) -> None:
        self.expected = expected
        self.calculated = calculated
        super().__init__(message)


class SignatureError(VerificationError):
    """No trusted key signed the note validly, or a known key's signature failed."""


class TamperError(VerificationError):
    """The stored log differs from what it committed to.

    ``kind`` is one of ``changed``, ``missing``, ``reordered``, ``extra``, ``truncated``,
    ``forked``, ``tree`` (a stored tree hash was edited) or ``checkpoint`` (a stored
    checkpoint is bad).
    ``index`` is the first bad entry index (or the start of the first bad range).
    """

    def __init__(self, kind: str, index: int, message: str) -> None:
        self.kind = kind
        self.index = index
        self.detail = message
        super().__init__(f"{kind} at index {index}: {message}")
