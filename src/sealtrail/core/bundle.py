"""Evidence bundles: selected entries with everything needed to check them offline.

A bundle is an archive (zip or tar.gz, read by the caller) of these files:

- ``manifest.json`` — what was selected (log, filters, time range), counts, file digests;
- ``manifest.sig`` — a signed note by the log's key over the *bundle statement*::

      sealtrail.org/evidence-bundle@v1
      <origin>
      <checkpoint size>
      <number of events>
      <base64 SHA-256 over (index as uint64 LE || leaf hash) of every event, in order>
      <base64 SHA-256 of manifest.json>

  The first line is not the log's origin, so no checkpoint verifier can mistake it for a
  checkpoint. It is what makes a removed or added event detectable: the proofs alone would
  accept any subset;
- ``checkpoint.txt`` — the signed checkpoint every inclusion proof leads to;
- ``events.jsonl`` — ``{"index": i, "leaf": base64(leaf bytes)[, "opened": {...}]}``; the event
  is the leaf itself. ``opened`` holds sealed fields as the exporter opened them: covered by the
  log's signature (through the file digests in the signed manifest), but not by the Merkle
  proofs, which cover the ciphertext;
- ``proofs.jsonl`` — one RFC 6962 inclusion proof per event, same order
  (``leaf_index``, ``tree_size``, ``audit_path``);
- ``checkpoints/<size>.txt`` and ``consistency.jsonl`` — earlier signed checkpoints of the
  log and consistency proofs from each to ``checkpoint.txt`` (the log only grew);
- ``vkey.txt`` and ``README.md`` — convenience; the verifier trusts only the key it is given.

:func:`verify_bundle` needs the files and the trusted verifier key: no data directory, no
network. It raises VerificationError (or FormatError) naming the file, line and index at fault.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from sealtrail.core import b64, canonical
from sealtrail.core.checkpoint import Checkpoint, open_checkpoint
from sealtrail.core.errors import (
    ConsistencyError,
    FormatError,
    InclusionError,
    SignatureError,
    VerificationError,
)
from sealtrail.core.jsonlines import numbered_lines
from sealtrail.core.merkle import verify as merkle_verify
from sealtrail.core.merkle.hashing import leaf_hash
from sealtrail.core.note import Verifier, open_note
from sealtrail.core.note import parse as parse_note
from sealtrail.core.witness_policy import Witnessed, WitnessPolicy

FORMAT: Final = "sealtrail-bundle/1"
STATEMENT: Final = "sealtrail.org/evidence-bundle@v1"
REQUIRED: Final = ("manifest.json", "manifest.sig", "checkpoint.txt", "events.jsonl",
                   "proofs.jsonl")
_CHECKPOINT_FILE = re.compile(r"checkpoints/(0|[1-9]\d{0,19})\.txt\Z")


def events_digest(pairs: list[tuple[int, bytes]]) -> bytes:
    """SHA-256 over ``index (uint64 LE) || leaf hash`` of every event, in order."""
    h = hashlib.sha256()
    for index, lh in pairs:
        h.update(struct.pack("<Q", index))
        h.update(lh)
    return h.digest()


def statement(origin: str, size: int, count: int, digest: bytes, manifest: bytes) -> str:
    """The bundle statement the log signs (see the module docstring)."""
    return (f"{STATEMENT}\n{origin}\n{size}\n{count}\n{base64.b64encode(digest).decode()}\n"
            f"{base64.b64encode(hashlib.sha256(manifest).digest()).decode()}\n")


@dataclass(frozen=True, slots=True)
class BundleReport:
    """What a successful bundle verification covered."""

    origin: str
    size: int
    events: int
    checkpoints: int
    opened: int

    def summary(self) -> str:
        """One line for people."""
        return (f"OK: {self.events} events of {self.origin} proven included in the signed tree "
                f"of {self.size} entries; {self.checkpoints} earlier checkpoints consistent; "
                f"the signed bundle statement covers exactly these events"
                + (f" ({self.opened} carry opened fields: the exporter's statement, not proven)"
                   if self.opened else ""))


def _lines(files: Mapping[str, bytes], name: str) -> list[tuple[int, dict[str, Any]]]:
    out = []
    try:
        text = files[name].decode()
    except UnicodeDecodeError as exc:
        raise FormatError(f"{name} is not UTF-8") from exc
    for n, line in numbered_lines(text):  # LF only: JSON may hold U+2028 unescaped
        try:
            doc = json.loads(line)
        except ValueError as exc:
            raise FormatError(f"{name} line {n} is not JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise FormatError(f"{name} line {n} is not a JSON object")
        out.append((n, doc))
    return out


def _int_field(doc: Mapping[str, Any], key: str, where: str) -> int:
    value = doc.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise FormatError(f"{where}: {key!r} must be a non-negative integer")
    return value


def _checkpoint(files: Mapping[str, bytes], name: str, verifier: Verifier) -> Checkpoint:
    try:
        return open_checkpoint(files[name], verifier)
    except (VerificationError, UnicodeDecodeError) as exc:
        raise SignatureError(f"{name}: not a checkpoint signed by the trusted key: {exc}"
                             ) from exc


def _check_opened(opened: Any, leaf_obj: dict[str, Any], where: str) -> bool:
    if opened is None:
        return False
    sealed = leaf_obj.get("sealed") or {}
    fields = set(sealed.get("fields") or ())
    if not isinstance(opened, dict) or not set(opened) <= fields:
        extra = sorted(set(opened) - fields) if isinstance(opened, dict) else opened
        raise VerificationError(f"{where}: 'opened' names fields the entry does not seal "
                                f"({extra})")
    return True


def witnessed_coverage(files: Mapping[str, bytes], policy: WitnessPolicy
                       ) -> tuple[int, Witnessed | None, int]:
    """Under ``policy``, after :func:`verify_bundle` passed: the size of the largest of the
    bundle's checkpoints (``checkpoint.txt``, ``checkpoints/<size>.txt``) that meets it, that
    checkpoint's cosigners, and how many of the bundle's events lie past it (not covered by a
    witnessed checkpoint). (0, None, all) when none meets it. A cosignature line that claims
    a policy witness and does not verify raises SignatureError (tampering)."""
    notes = [files["checkpoint.txt"]] + [data for name, data in files.items()
                                         if _CHECKPOINT_FILE.match(name)]
    best: tuple[int, Witnessed | None] = (0, None)
    for raw in notes:
        note = raw.decode("utf-8", "replace")
        found = policy.check(note)
        size = Checkpoint.parse(parse_note(note).text).size
        if found.met and size > best[0]:
            best = (size, found)
    uncovered = sum(1 for _, doc in _lines(files, "events.jsonl")
                    if doc.get("index", 0) >= best[0])
    return best[0], best[1], uncovered


def verify_bundle(files: Mapping[str, bytes], vkey: str) -> BundleReport:
    """Check a bundle against the trusted verifier key ``vkey``; raise naming the first fault."""
    verifier = Verifier.parse(vkey.strip())
    for name in REQUIRED:
        if name not in files:
            raise FormatError(f"the bundle has no {name}")
    if "vkey.txt" in files and files["vkey.txt"].decode(errors="replace").strip() != vkey.strip():
        raise SignatureError("vkey.txt in the bundle is not the key you trust: the bundle was "
                             "made for (or re-signed by) another key")
    head = _checkpoint(files, "checkpoint.txt", verifier)
    # The signed statement: which events, at which size, under which manifest.
    try:
        note = open_note(files["manifest.sig"], [verifier])
    except VerificationError as exc:
        raise SignatureError(f"manifest.sig: not signed by the trusted key: {exc}") from exc
    parts = note.text.split("\n")
    if len(parts) != 7 or parts[0] != STATEMENT or parts[6] != "":
        raise FormatError(f"manifest.sig is not a {STATEMENT} statement")
    if parts[1] != head.origin:
        raise VerificationError(f"manifest.sig is for log {parts[1]!r}, the checkpoint for "
                                f"{head.origin!r}")
    if parts[2] != str(head.size):
        raise VerificationError(f"manifest.sig is for tree size {parts[2]}, checkpoint.txt "
                                f"for {head.size}")
    manifest_sha = base64.b64encode(hashlib.sha256(files["manifest.json"]).digest()).decode()
    if not hmac.compare_digest(parts[5], manifest_sha):
        raise VerificationError("manifest.json was changed after the log signed the bundle")
    # Events and their proofs.
    events = _lines(files, "events.jsonl")
    proofs = _lines(files, "proofs.jsonl")
    if len(events) != len(proofs):
        raise VerificationError(f"events.jsonl has {len(events)} events but proofs.jsonl "
                                f"{len(proofs)} proofs")
    pairs: list[tuple[int, bytes]] = []
    opened = 0
    last = -1
    for (n, ev), (pn, proof) in zip(events, proofs, strict=True):
        where = f"events.jsonl line {n}"
        index = _int_field(ev, "index", where)
        where = f"{where} (index {index})"
        if index <= last:
            raise VerificationError(f"{where}: indexes must increase (after {last})")
        last = index
        leaf_text = ev.get("leaf")
        if not isinstance(leaf_text, str):
            raise FormatError(f"{where}: 'leaf' must be base64 text")
        leaf = b64.decode(leaf_text, f"{where} leaf")
        try:
            leaf_obj = canonical.leaf_object(leaf)
        except (ValueError, msgspec.DecodeError) as exc:
            raise FormatError(f"{where}: the leaf is not an entry: {exc}") from exc
        if not isinstance(leaf_obj, dict):
            raise FormatError(f"{where}: the leaf is not an entry")
        if _check_opened(ev.get("opened"), leaf_obj, where):
            opened += 1
        pwhere = f"proofs.jsonl line {pn}"
        if _int_field(proof, "leaf_index", pwhere) != index:
            raise VerificationError(f"{pwhere}: the proof is for index {proof['leaf_index']}, "
                                    f"the event at {where} is {index}")
        if _int_field(proof, "tree_size", pwhere) != head.size:
            raise VerificationError(f"{pwhere}: the proof is for size {proof['tree_size']}, "
                                    f"checkpoint.txt for {head.size}")
        path = proof.get("audit_path")
        if not isinstance(path, list) or len(path) > 64:
            raise FormatError(f"{pwhere}: 'audit_path' must be a list of at most 64 hashes")
        hashes = [b64.decode(h, f"{pwhere} audit_path") if isinstance(h, str) else b""
                  for h in path]
        lh = leaf_hash(leaf)
        try:
            merkle_verify.verify_inclusion(index, head.size, lh, hashes, head.root)
        except InclusionError as exc:
            raise InclusionError(f"{where}: not included in the signed tree (the event or its "
                                 f"proof was changed, or it is from another log): {exc}"
                                 ) from exc
        pairs.append((index, lh))
    if parts[3] != str(len(pairs)):
        raise VerificationError(f"the log signed a bundle of {parts[3]} events; this one "
                                f"holds {len(pairs)} (events were removed or added)")
    digest = base64.b64encode(events_digest(pairs)).decode()
    if not hmac.compare_digest(parts[4], digest):
        raise VerificationError("the events are not the ones the log signed for this bundle "
                                "(an event was removed, added or replaced)")
    # Last (the checks above name the line at fault): the signed manifest names the digest
    # of each data file, which covers what the proofs cannot (the ``opened`` values, the
    # lines' order and form).
    try:
        digests = json.loads(files["manifest.json"]).get("files")
    except (ValueError, AttributeError) as exc:
        raise FormatError("manifest.json is not a JSON object") from exc
    for name in ("events.jsonl", "proofs.jsonl"):
        want = digests.get(name) if isinstance(digests, dict) else None
        if not isinstance(want, str) or not hmac.compare_digest(
                want, hashlib.sha256(files[name]).hexdigest()):
            raise VerificationError(f"{name} is not the file the log signed for this bundle "
                                    "(its digest in manifest.json differs)")
    # Earlier checkpoints: each must be consistent with the head.
    consistency = {(_int_field(d, "first", f"consistency.jsonl line {n}"),
                    _int_field(d, "second", f"consistency.jsonl line {n}")): (n, d)
                   for n, d in (_lines(files, "consistency.jsonl")
                                if "consistency.jsonl" in files else [])}
    earlier = 0
    for name in sorted(files):
        m = _CHECKPOINT_FILE.match(name)
        if m is None:
            continue
        cp = _checkpoint(files, name, verifier)
        if str(cp.size) != m.group(1):
            raise VerificationError(f"{name} holds a checkpoint for size {cp.size}")
        if cp.size > head.size:
            raise ConsistencyError(f"{name} is for size {cp.size}, larger than checkpoint.txt")
        if cp.size == head.size:
            if not hmac.compare_digest(cp.root, head.root):
                raise ConsistencyError(f"{name} and checkpoint.txt sign two roots for size "
                                       f"{cp.size}: the log forked")
            earlier += 1
            continue
        found = consistency.get((cp.size, head.size))
        if found is None:
            raise ConsistencyError(f"no consistency proof from {name} to checkpoint.txt")
        n, doc = found
        path = doc.get("consistency")
        if not isinstance(path, list) or len(path) > 128:
            raise FormatError(f"consistency.jsonl line {n}: 'consistency' must be a list")
        hashes = [b64.decode(h, f"consistency.jsonl line {n}") if isinstance(h, str) else b""
                  for h in path]
        try:
            merkle_verify.verify_consistency(cp.size, head.size, cp.root, head.root, hashes)
        except ConsistencyError as exc:
            raise ConsistencyError(f"{name}: the log did not only grow from it to "
                                   f"checkpoint.txt: {exc}") from exc
        earlier += 1
    return BundleReport(head.origin, head.size, len(pairs), earlier, opened)
