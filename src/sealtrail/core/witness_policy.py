"""A witness policy: which witnesses an auditor trusts, and how many must have cosigned.

A checkpoint is *witnessed* under a policy when at least ``quorum`` of its witnesses added a
valid ``cosignature/v1`` line (:mod:`sealtrail.core.cosignature`): each of them checked it
was consistent with everything it saw of the log before, so the log cannot show another
history to someone else without that many witnesses refusing or colluding.

The text form (what ``--witness-policy FILE`` reads, and ``sealtrail witnesses list
--policy`` prints), one directive a line, ``#`` starting a comment::

    witness <cosigner vkey> [<url>]
    quorum <k>

The quorum defaults to every witness listed (``k`` of ``k``); ``quorum 0`` is refused (it
would call anything witnessed). The vkey is the witness's ``name+keyid+base64(0x04 ||
key)``; names must be distinct. The URL is informative (where the log submits to).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from sealtrail.core.checkpoint import Checkpoint
from sealtrail.core.cosignature import CosignerKey, cosignatures
from sealtrail.core.errors import FormatError, ValidationError
from sealtrail.core.note import parse

MAX_WITNESSES: Final = 32


@dataclass(frozen=True, slots=True)
class Witness:
    """One witness: its cosigner key and (optionally) the URL it is reached at."""

    key: CosignerKey
    url: str = ""

    @property
    def name(self) -> str:
        """The witness's name (the cosigner key's)."""
        return self.key.name


@dataclass(frozen=True, slots=True)
class Witnessed:
    """What a policy found on one checkpoint note."""

    quorum: int
    cosigned: dict[str, int] = field(default_factory=dict)   # witness name -> POSIX time
    missing: tuple[str, ...] = ()
    size: int = -1   # the tree size of the checkpoint checked

    @property
    def met(self) -> bool:
        """Whether at least ``quorum`` witnesses cosigned."""
        return len(self.cosigned) >= self.quorum

    def summary(self) -> str:
        """One line: met or not, by whom."""
        who = ", ".join(sorted(self.cosigned)) or "no witness"
        state = "witnessed" if self.met else "NOT witnessed"
        return (f"{state}: cosigned by {who} ({len(self.cosigned)} of quorum {self.quorum})"
                + (f"; missing {', '.join(self.missing)}" if self.missing else ""))


@dataclass(frozen=True, slots=True)
class WitnessPolicy:
    """``quorum`` of ``witnesses`` must cosign."""

    witnesses: tuple[Witness, ...]
    quorum: int

    def __post_init__(self) -> None:
        names = [w.name for w in self.witnesses]
        if len(set(names)) != len(names):
            raise ValidationError("witness", "two witnesses share a name")
        # The cosigned message does not include the name: one key listed under two names
        # would let one signature count twice (anyone can copy a line under the other name).
        keys = [w.key.public_key for w in self.witnesses]
        if len(set(keys)) != len(keys):
            raise ValidationError("witness", "two witnesses share a key: one signer would "
                                  "count twice toward the quorum")
        if len(names) > MAX_WITNESSES:
            raise ValidationError("witness", f"at most {MAX_WITNESSES} witnesses")
        if not 1 <= self.quorum <= max(1, len(names)) or not names:
            raise ValidationError("quorum", f"the quorum must be 1..{len(names)} (the number "
                                  "of witnesses), and a policy names at least one witness")

    @classmethod
    def parse(cls, text: str) -> WitnessPolicy:
        """The policy in ``text`` (ValidationError naming the line that is wrong)."""
        witnesses: list[Witness] = []
        quorum: int | None = None
        for number, raw in enumerate(text.split("\n"), start=1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            words = line.split()
            where = f"line {number}"
            if words[0] == "witness" and len(words) in (2, 3):
                try:
                    key = CosignerKey.parse(words[1])
                except FormatError as exc:
                    raise ValidationError(where, str(exc)) from exc
                url = words[2] if len(words) == 3 else ""
                if url and (not url.startswith(("http://", "https://"))
                            or not url.isprintable()):
                    raise ValidationError(where, "a witness URL starts with http:// or "
                                          "https://")
                witnesses.append(Witness(key, url))
            elif words[0] == "quorum" and len(words) == 2:
                if not (words[1].isascii() and words[1].isdigit()) or len(words[1]) > 3:
                    raise ValidationError(where, "quorum takes a whole number")
                quorum = int(words[1])
            else:
                raise ValidationError(where, "want 'witness <vkey> [<url>]' or 'quorum <k>'")
        return cls(tuple(witnesses), len(witnesses) if quorum is None else quorum)

    def format(self) -> str:
        """The policy as text (parses back to an equal policy)."""
        lines = [f"witness {w.key.format()}" + (f" {w.url}" if w.url else "")
                 for w in self.witnesses]
        return "\n".join([*lines, f"quorum {self.quorum}"]) + "\n"

    def check(self, note: str) -> Witnessed:
        """Which of the policy's witnesses cosigned ``note``.

        A line that claims a policy witness's key and does not verify raises SignatureError
        (the note was tampered with); lines of other keys are ignored.
        """
        found = cosignatures(note, [w.key for w in self.witnesses])
        missing = tuple(w.name for w in self.witnesses if w.name not in found)
        size = Checkpoint.parse(parse(note).text).size
        return Witnessed(self.quorum, found, missing, size)


__all__ = ["MAX_WITNESSES", "Witness", "WitnessPolicy", "Witnessed"]
