"""One rooted error tree for sealtrail.

::

    SealtrailError
    ├── ValidationError        bad input; ``field`` names the field, ``line`` the input line
    ├── ConfigError            bad configuration or arguments (data dir, log name, key files)
    │   └── KeyringError       keyring missing, locked (no passphrase) or the passphrase is wrong
    ├── PolicyError            refused by policy (erasing a subject under legal hold)
    ├── DecryptionError        a sealed field fails authentication (altered, or the wrong key)
    ├── StorageError           the store failed (disk full, locked, corrupt beyond reading)
    │   └── HeadConflictError  the head moved under a writer (store/protocol.py: fencing)
    └── VerificationError      something that should verify does not
        ├── FormatError        malformed proof, note, checkpoint or key: a verification failure
        ├── InclusionError     an inclusion proof does not lead to the root
        ├── ConsistencyError   two tree heads are not consistent
        ├── SignatureError     no trusted signature verifies on a note
        ├── KeyMismatchError   verifying with a key that is not the log's (log/copyverify.py;
        │                      exit 3)
        └── TamperError        the stored log differs from what it committed to (index, kind)

Verification functions return ``None`` or raise; they never return a bool. Malformed input to a
verifier is a verification failure (``FormatError``), never a crash of another type.

Each class says, once, what it means at each face: ``exit_code`` for the CLI (2 usage or invalid
input, nothing stored; 1 verification failed or a runtime failure) and ``http_status`` for the
service, with :meth:`~SealtrailError.diagnostics` (the CLI's text) and
:meth:`~SealtrailError.public_message` (the service's, which never shows a path or a secret).
"""

from __future__ import annotations

from typing import ClassVar


class SealtrailError(Exception):
    """Root of every error sealtrail raises on purpose."""

    exit_code: ClassVar[int] = 1
    http_status: ClassVar[int] = 500

    def diagnostics(self) -> str:
        """A one-paragraph explanation suitable for CLI output."""
        return str(self)

    def public_message(self) -> str:
        """What the service answers. Only classes whose text is meant for the caller show it
        (bad input, bad arguments, refusals, integrity failures); others say no more than
        "internal error"."""
        return "internal error"


class ValidationError(SealtrailError):
    """Input rejected before anything was stored; ``field`` names where (``actor.id``)."""

    exit_code = 2
    http_status = 422

    def public_message(self) -> str:
        return str(self)

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

    exit_code = 2
    http_status = 400

    def public_message(self) -> str:
        return str(self)


class KeyringError(ConfigError):
    """The keyring is missing, locked (no passphrase given) or the passphrase is wrong."""

    http_status = 503

    def public_message(self) -> str:
        return "the log's keyring is not available to this service"


class PolicyError(SealtrailError):
    """The operation is refused by policy (for example erasing a subject under legal hold)."""

    exit_code = 2
    http_status = 400

    def public_message(self) -> str:
        return str(self)


class DecryptionError(SealtrailError):
    """A sealed field failed authentication: it was altered, moved, or the key is wrong.

    Deliberately opaque (which check failed is not said): no padding-oracle-style hints.
    """

    def public_message(self) -> str:
        return f"integrity failure: {self}"


class StorageError(SealtrailError):
    """The store could not do what was asked; nothing of the failed request is acknowledged."""

    http_status = 503

    def diagnostics(self) -> str:
        return f"storage: {self}"

    def public_message(self) -> str:
        return "storage unavailable; nothing was stored"


class VerificationError(SealtrailError):
    """Something that must verify does not."""

    def public_message(self) -> str:
        return f"integrity failure: {self}"


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
