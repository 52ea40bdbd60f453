"""The verifier key a user trusts, given on the command line: one rule for every ``--vkey``.

``verify``, ``verify-proof`` and ``verify-bundle`` take the key as its text or as a file holding
it; the origin a checkpoint names (unverified) is read here too, to tell "another log's key"
(exit 3) from tampering in their messages.
"""

from __future__ import annotations

from pathlib import Path

import typer

from sealtrail.cli.common import fail
from sealtrail.core.errors import SealtrailError, ValidationError, VerificationError
from sealtrail.core.note import Verifier
from sealtrail.core.witness_policy import Witnessed, WitnessPolicy

VKEY_RULE = ("the key as text (name+keyid+key, as 'sealtrail vkey' prints it) or the path of "
             "a file holding it (@FILE works too)")


def trusted_verifier(vkey: str, option: str = "--vkey") -> Verifier:
    """A key argument, one rule everywhere: vkey text, or a file holding it (``@FILE`` is
    kept as an alias). Anything else is a usage error (exit 2) naming the option."""
    value = vkey.strip()
    path = Path(value[1:] if value.startswith("@") else value)
    if value.startswith("@") or path.is_file():
        if not path.is_file():
            fail(f"{option} {path}: no such file")
        try:
            text = path.read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"{option} {path}: {getattr(exc, 'strerror', None) or exc}")
        try:
            return Verifier.parse(text)
        except VerificationError as exc:
            fail(f"{option} {path}: the file holds no verifier key ({exc})")
    if "+" not in value:
        fail(f"{option} {value!r}: no such file, and not a verifier key: give {VKEY_RULE}")
    try:
        return Verifier.parse(value)
    except VerificationError as exc:
        fail(f"{option}: not a verifier key ({exc}); give {VKEY_RULE}")


def note_origin(note: str | None) -> str | None:
    """The origin line of a checkpoint note, unverified (to name it in messages)."""
    if not note:
        return None
    return note.split("\n", 1)[0] or None


WITNESS_POLICY_HELP = ("A witness policy file ('witness <vkey> [url]' lines and 'quorum K'; "
                       "'sealtrail witnesses list --policy' prints the log's): the checkpoint "
                       "must carry valid cosignatures of at least K of those witnesses, "
                       "else exit 1.")


def trusted_witness_policy(path: Path, option: str = "--witness-policy") -> WitnessPolicy:
    """A witness policy file (usage error, exit 2, naming the option and the line)."""
    if not path.is_file():
        fail(f"{option} {path}: no such file")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{option} {path}: {exc}")
    try:
        return WitnessPolicy.parse(text)
    except ValidationError as exc:
        fail(f"{option} {path}: {exc}")


def witnessed_line(policy: WitnessPolicy, note: str, what: str) -> Witnessed:
    """Check ``note``'s cosignatures against ``policy`` and print one line saying so on
    standard output (a line that claims a policy witness and does not verify is tampering:
    VerificationError)."""
    try:
        found = policy.check(note)
    except SealtrailError as exc:
        raise VerificationError(f"{what}: {exc}") from exc
    typer.echo(f"{what}: {found.summary()}")
    return found
