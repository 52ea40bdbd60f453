"""A log's settings, bound to its signing key and its entries so that editing them is caught.

Two kinds of setting decide what sealtrail does with a log:

* **fixed at creation** — ``encryption``, the sealed field ``policy``, ``redaction``, the leaf
  version, origin and log name. They are written once, as a *settings statement*: a C2SP
  signed note by the log's own key whose first line is ``sealtrail.org/log-settings@v1`` (never
  an origin, so no checkpoint verifier accepts it as a tree head) and whose body is the
  canonical JSON of the settings. A log opens with the settings the statement signs; the
  copies in the ``meta`` table are what other tools read, and :func:`check_stored` names any
  difference. Editing ``meta`` therefore changes nothing but the verification result.
* **changed later** — the retention policy, legal holds, the active data key. Each change is an
  entry sealtrail appends itself (``retention.policy.set``, ``subject.hold.add`` /
  ``.release``, ``keys.rotate``) in the same transaction as the stored copy, with what
  ``verify`` needs in clear in the entry's ``target`` (a digest, a pseudonym, a key id).
  :func:`check_stored` replays those entries, in log order, against the stored copies.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from sealtrail.core import canonical
from sealtrail.core.errors import FormatError, KeyringError, TamperError, VerificationError
from sealtrail.core.note import Signer, Verifier, open_note
from sealtrail.core.timefmt import parse_time

STATEMENT: Final = "sealtrail.org/log-settings@v1"
SETTINGS_META: Final = "settings"          # the signed statement
POLICY_META: Final = "retention_policy"    # the stored retention policy (compact JSON)
POLICY_AT_META: Final = "retention_policy_at"  # the index of the entry that set it
ACTIVE_KEY_META: Final = "active_key"      # the data key the last recorded rotation made active
MAX_HOLD_LAG_S: Final = 60.0              # see _same_time
FIXED: Final = ("origin", "log", "leaf_version", "encryption", "policy", "redaction")
WITNESSES_META: Final = "witnesses"        # the log's witnesses and policy (compact JSON)
WITNESSES_AT_META: Final = "witnesses_at"  # the index of the entry that set them


@dataclass(frozen=True, slots=True)
class Digested:
    """A setting stored as text whose digest the entry that set it names (``<name>@sha256:``
    in its target id), and the meta row keeping that entry's index."""

    action: str
    meta_key: str
    at_key: str
    label: str


DIGESTED: Final = (
    Digested("retention.policy.set", POLICY_META, POLICY_AT_META, "retention policy"),
    Digested("sealtrail.witnesses.set", WITNESSES_META, WITNESSES_AT_META,
             "witness configuration"),
    # log/timestamping.py (it imports this module's digest: the keys are named here).
    Digested("sealtrail.timestamps.set", "tsa_config", "tsa_config_at",
             "timestamp authority setting"),
)

# The entries that change a stored setting (verify collects them while it streams the log).
SETTING_ACTIONS: Final = frozenset({"subject.hold.add", "subject.hold.release", "keys.rotate",
                                    *(d.action for d in DIGESTED)})


@dataclass(frozen=True, slots=True)
class Fixed:
    """The settings a log is created with; they never change."""

    origin: str
    log: str
    leaf_version: str
    encryption: str      # "on" or "off"
    policy: str          # sealed field paths, comma-separated
    redaction: str       # "mask", "hash" or "off"

    def as_meta(self) -> dict[str, str]:
        """The settings as the ``meta`` rows that mirror them."""
        return {name: getattr(self, name) for name in FIXED}

    def statement(self) -> str:
        """The text the log's key signs: the statement's name, then canonical JSON."""
        body = canonical.compact_json(self.as_meta(), ascii=True)
        return f"{STATEMENT}\n{body}\n"

    def sign(self, signer: Signer) -> str:
        """The signed settings statement (a C2SP signed note)."""
        return signer.sign(self.statement())

    @classmethod
    def open(cls, note: str, verifier: Verifier, origin: str) -> Fixed:
        """Verify a signed settings statement and parse it; raises VerificationError."""
        text = open_note(note, [verifier]).text
        first, _, rest = text.partition("\n")
        if first != STATEMENT or not rest.endswith("\n") or "\n" in rest[:-1]:
            raise FormatError(f"not a {STATEMENT} statement")
        try:
            doc = json.loads(rest)
        except ValueError as exc:
            raise FormatError("the settings statement is not JSON") from exc
        if not isinstance(doc, dict) or set(doc) != set(FIXED) or not all(
                isinstance(v, str) for v in doc.values()):
            raise FormatError(f"the settings statement must hold exactly {', '.join(FIXED)}")
        fixed = cls(**doc)
        if fixed.origin != origin:
            raise FormatError(f"the settings statement is for {fixed.origin!r}, not {origin!r}")
        if fixed.statement() != text:
            raise FormatError("the settings statement is not in canonical form")
        return fixed


def fixed_from_meta(meta: Mapping[str, str]) -> Fixed:
    """The fixed settings as the ``meta`` table states them (legacy logs, and new ones)."""
    return Fixed(meta.get("origin", ""), meta.get("log", ""), meta.get("leaf_version", "1"),
                 meta.get("encryption", "off"), meta.get("policy", ""),
                 meta.get("redaction", "off"))


def signed_fixed(meta: Mapping[str, str], verifier: Verifier, origin: str) -> Fixed:
    """The fixed settings the log's key signed; TamperError when missing or not genuine."""
    note = meta.get(SETTINGS_META)
    if note is None:
        raise TamperError("settings", 0, "the log's signed settings statement is missing (the "
                          "settings table was edited, or the log predates signed settings: "
                          "run 'sealtrail settings adopt --reason TEXT' after checking them)")
    try:
        return Fixed.open(note, verifier, origin)
    except VerificationError as exc:
        raise TamperError("settings", 0, f"the log's settings statement is not one its key "
                          f"signed: {exc}") from exc


def digest(text: str) -> str:
    """The digest that names a stored setting's value in the entry that set it."""
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def policy_target(name: str, text: str) -> str:
    """The ``target.id`` of a ``retention.policy.set`` entry: the policy's name and digest."""
    return f"{name[:180]}@{digest(text)}"


@dataclass(frozen=True, slots=True)
class SettingRecord:
    """One entry that changed a stored setting, as verify reads it (clear fields only)."""

    index: int
    action: str
    target_id: str
    time: str = ""
    leaf: bytes = b""  # the entry's verified bytes, kept only when its target is not clear


def check_stored(meta: Mapping[str, str],
                 holds: Iterable[tuple[int, bytes, str, str | None]],
                 records: Iterable[SettingRecord], verifier: Verifier, origin: str, *,
                 open_target: Callable[[SettingRecord], str | None] | None = None) -> None:
    """Compare every stored setting with what the log's key and entries say; raise
    TamperError naming the setting (and the entry, when one is involved).

    ``holds`` are the stored legal holds as (number, subject ref, created-at, released-at or
    None);
    ``records`` the setting entries in log order.
    ``open_target``: the target id of a record whose target is sealed in its verified bytes
    (``leaf``), opened with the log's keyring (None while it stays locked). Versions before
    sealtrail kept its own records' targets clear sealed them when the log's policy seals
    ``target.id``; without a keyring such a record is KeyringError (it cannot be checked),
    not tampering. A record with no target at all stays tampering.
    """
    # 1. Fixed settings: the meta rows must equal the signed statement.
    fixed = signed_fixed(meta, verifier, origin)
    for name, want in fixed.as_meta().items():
        if meta.get(name) != want:
            raise TamperError("settings", 0, f"the stored setting {name!r} is "
                              f"{meta.get(name)!r} but the log was created with {want!r} "
                              "(the settings table was edited)")
    # Records whose target an older version sealed, opened (after the signed settings: an
    # edited settings row is tampering, whether or not the keyring is at hand).
    ordered = sorted((opened_record(r, open_target) for r in records), key=lambda r: r.index)
    # 2. Digested settings (the retention policy, the witnesses): the stored text is the one
    #    the latest entry of its action names.
    for kind in DIGESTED:
        _check_digested(meta, kind, [r for r in ordered if r.action == kind.action])
    # 3. Legal holds: the stored holds are exactly the replay of hold entries.
    _check_holds(list(holds), [r for r in ordered if r.action.startswith("subject.hold.")])
    # 4. The active data key is the one the latest rotation entry made active.
    rotations = [r for r in ordered if r.action == "keys.rotate"]
    want_key = rotations[-1].target_id if rotations else "d1"
    have_key = meta.get(ACTIVE_KEY_META, "d1")
    if fixed.encryption == "on" and have_key != want_key:
        where = rotations[-1].index if rotations else 0
        raise TamperError("settings", where, f"the recorded active data key is {have_key!r}; "
                          f"the log's last rotation entry says {want_key!r}")


def opened_record(rec: SettingRecord,
                  open_target: Callable[[SettingRecord], str | None] | None) -> SettingRecord:
    """``rec`` with its target read through ``open_target`` when an older version sealed it
    (KeyringError while that cannot be done); any other record as it is."""
    if rec.target_id or not _target_sealed(rec.leaf):
        return rec
    target = open_target(rec) if open_target is not None else None
    if target is None:
        raise KeyringError(f"entry {rec.index} ({rec.action}) has its target sealed (written "
                           "by a version that sealed sealtrail's own targets): open the "
                           "keyring to check it (SEALTRAIL_PASSPHRASE or --passphrase-file)")
    return replace(rec, target_id=target)


def _target_sealed(leaf: bytes) -> bool:
    """Whether an entry's bytes seal its ``target.id``."""
    try:
        obj = json.loads(leaf) if leaf else None
    except ValueError:
        return False
    return isinstance(obj, dict) and _seals_target(obj)


def _seals_target(obj: Mapping[str, Any]) -> bool:
    sealed = obj.get("sealed")
    return isinstance(sealed, dict) and "target.id" in (sealed.get("fields") or ())


def target_opener(reveal: Callable[[int, dict[str, Any]], dict[str, Any]]
                  ) -> Callable[[SettingRecord], str | None]:
    """An ``open_target`` for :func:`check_stored` from a way to open an entry's sealed
    fields (``Protector.reveal``: the entry as given while the keyring is locked): the target
    id of the record's verified bytes, "" when it has none, None while it stays sealed."""
    def open_target(record: SettingRecord) -> str | None:
        obj = reveal(record.index, json.loads(record.leaf))
        if _seals_target(obj):
            return None
        target = obj.get("target")
        found = target.get("id") if isinstance(target, dict) else None
        return found if isinstance(found, str) else ""

    return open_target


def _check_digested(meta: Mapping[str, str], kind: Digested,
                    records: list[SettingRecord]) -> None:
    stored = meta.get(kind.meta_key)
    if not records:
        if stored is not None:
            raise TamperError("settings", 0, f"a {kind.label} is stored but no entry of the "
                              "log set it (the settings table was edited)")
        return
    last = records[-1]
    _, _, want_digest = last.target_id.rpartition("@")
    if stored is None:
        raise TamperError("settings", last.index, f"the {kind.label} set by entry "
                          f"{last.index} is missing from the settings table")
    if not want_digest.startswith("sha256:"):
        raise TamperError("settings", last.index, f"entry {last.index} does not name the "
                          f"digest of the {kind.label} it set")
    if meta.get(kind.at_key) != str(last.index):
        raise TamperError("settings", last.index, f"the stored {kind.label} does not point at "
                          f"entry {last.index}, the latest that set one")
    if not hmac.compare_digest(digest(stored), want_digest):
        raise TamperError("settings", last.index, f"the stored {kind.label} differs from the "
                          f"one entry {last.index} set (the settings table was edited)")


def _check_holds(stored: list[tuple[int, bytes, str, str | None]],
                 records: list[SettingRecord]) -> None:
    """Replay ``subject.hold.add`` / ``.release`` (target: the subject's ``ref:`` pseudonym,
    time: when the hold was made or released) and compare with the stored holds, hold by hold
    in creation order: the subject, and the dates a listing or a refused erasure shows."""
    expected: list[tuple[bytes, str, str | None]] = []   # (ref, created, released)
    for rec in records:
        if not rec.target_id.startswith("ref:"):
            raise TamperError("settings", rec.index, f"hold entry {rec.index} does not name a "
                              "subject pseudonym")
        try:
            ref = base64.urlsafe_b64decode(rec.target_id[4:] + "=" * (-len(rec.target_id) % 4))
        except ValueError as exc:
            raise TamperError("settings", rec.index, f"hold entry {rec.index} has a malformed "
                              "pseudonym") from exc
        if rec.action == "subject.hold.add":
            expected.append((ref, rec.time, None))
        else:
            expected = [(r, made, rec.time) if r == ref and done is None else (r, made, done)
                        for r, made, done in expected]
    have = [(bytes(ref), created, released) for _, ref, created, released in sorted(stored)]
    if len(have) == len(expected) and all(
            h[0] == e[0] and _same_time(h[1], e[1]) and (h[2] is None) == (e[2] is None)
            and (h[2] is None or _same_time(h[2], e[2] or "")) for h, e in zip(
                have, expected, strict=True)):
        return
    first = next((i for i, (a, b) in enumerate(zip(have, expected, strict=False))
                  if a != b), min(len(have), len(expected)))
    where = records[min(first, len(records) - 1)].index if records else 0
    raise TamperError("settings", where, f"the stored legal holds differ from the log's hold "
                      f"entries (from hold #{first + 1}: {len(have)} stored, {len(expected)} "
                      "recorded, subjects and dates compared; the holds table was edited)")


def _same_time(stored: str, recorded: str) -> bool:
    """A stored hold time agrees with its entry's time: equal (this version writes the hold's
    time into its entry), or at most a minute before it (entries of earlier versions carry
    their commit time, a moment after the row's). A date moved by hand is further off."""
    if stored == recorded:
        return True
    try:
        lag = (parse_time(recorded) - parse_time(stored)).total_seconds()
    except ValueError:
        return False
    return 0 <= lag <= MAX_HOLD_LAG_S


__all__ = ["ACTIVE_KEY_META", "DIGESTED", "FIXED", "POLICY_AT_META", "POLICY_META",
           "SETTINGS_META", "SETTING_ACTIONS", "STATEMENT", "WITNESSES_AT_META",
           "WITNESSES_META", "Digested", "Fixed", "SettingRecord", "check_stored", "digest",
           "fixed_from_meta", "opened_record", "policy_target", "signed_fixed",
           "target_opener"]
