"""Archive: moving entries past their online period into compressed, encrypted segment files.

Entries older than their category's ``online`` period (``log/retention.py``) are cut into
segments — runs of consecutive entries, split at calendar-month boundaries of ``received_at``
and at :data:`SEGMENT_MAX` entries — and each segment is written to
``<log dir>/archive/seg-<start>-<end>.starc``, then emptied in the database like a purge,
with a ``retention.archive`` receipt (``log/receipts.py``). Leaf hashes stay: the tree, every
checkpoint and every proof stay valid while a segment is away.

A segment file::

    b"sealtrail-archive/1\\n"
    <header: one line of JSON: origin, start, end, count, leaf-range root, sha256 of the plain
     body, and for an encrypted log the data key id and the wrapped file key>
    <body: zstandard(uint32 LE lengths of every leaf, then the leaves), sealed with
     AES-256-GCM under a random file key, the header line as associated data>

The file key is wrapped by the log's data key (so a keyring rotation keeps old archives
readable), and the header is authenticated, so a file moved to another log or range fails to
open. An unencrypted log writes compressed archives only. ``restore`` checks every leaf
against the stored leaf hashes before putting it back; the segment then verifies again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import struct
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import msgspec
import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sealtrail.core import envelope
from sealtrail.core.canonical import MAX_LEAF_BYTES
from sealtrail.core.errors import (
    ConfigError,
    DecryptionError,
    PolicyError,
    StorageError,
    TamperError,
)
from sealtrail.core.merkle.hashing import leaf_hash
from sealtrail.core.timefmt import parse_time
from sealtrail.log.auditlog import AuditLog, Entry, Receipt
from sealtrail.log.changes import Restore
from sealtrail.log.datadir import ARCHIVE_DIR
from sealtrail.log.receipts import leaf_hashes, range_root
from sealtrail.log.retention import PROTECTED_ACTIONS, RetentionPolicy, apply_purge, retire
from sealtrail.store.protocol import Chunk

MAGIC: Final = b"sealtrail-archive/1\n"
SEGMENT_MAX: Final = 65536            # entries per segment file at most
SEGMENT_MAX_BYTES: Final = 256 << 20  # and about this many bytes of leaves
SUFFIX: Final = ".starc"


class _Head(msgspec.Struct):
    action: str = ""
    category: str | None = None
    received_at: str = ""


_head = msgspec.json.Decoder(_Head)


@dataclass(frozen=True, slots=True)
class Segment:
    """A run of consecutive entries archived (or to archive) as one file."""

    start: int
    end: int
    month: str

    @property
    def name(self) -> str:
        """The segment file's name."""
        return f"seg-{self.start:012d}-{self.end:012d}{SUFFIX}"


_log = logging.getLogger("sealtrail.archive")

def archive_dir(alog: AuditLog) -> Path:
    """Where a log's segment files live (created 0700 on first use)."""
    return alog.directory / ARCHIVE_DIR


def plan_archive(alog: AuditLog, policy: RetentionPolicy) -> list[Segment]:
    """Segments of entries past their category's online period (receipts stay online)."""
    now = alog.now()
    out: list[Segment] = []
    run: list[Any] = []  # [start, end, month, bytes]
    for entry in alog.entries(0, alog.size):
        ok = False
        month = ""
        if not entry.retired:
            head = _head.decode(entry.leaf)
            rule = policy.rule_for(head.category)
            month = head.received_at[:7]
            if rule.online is not None and head.action not in PROTECTED_ACTIONS:
                ok = now - parse_time(head.received_at) > rule.online
        if ok and run and run[1] == entry.index and run[2] == month \
                and run[1] - run[0] < SEGMENT_MAX and run[3] < SEGMENT_MAX_BYTES:
            run[1] += 1
            run[3] += len(entry.leaf)
            continue
        if run:
            out.append(Segment(run[0], run[1], run[2]))
            run = []
        if ok:
            run = [entry.index, entry.index + 1, month, len(entry.leaf)]
    if run:
        out.append(Segment(run[0], run[1], run[2]))
    return out


def write_segment(alog: AuditLog, seg: Segment) -> tuple[Path, str]:
    """Write one segment file durably (0600, fsync, atomic rename) and read it back through
    :func:`restore`'s checks before anything is emptied; returns (path, sha256)."""
    leaves: list[bytes] = []
    newest = ""
    categories: set[str] = set()
    for entry in alog.entries(seg.start, seg.end):
        if not entry.leaf:
            raise ConfigError(f"entries {seg.start}..{seg.end - 1} are not all online")
        head = _head.decode(entry.leaf)
        newest = max(newest, head.received_at)
        categories.add(head.category or "default")
        leaves.append(entry.leaf)
    if len(leaves) != seg.end - seg.start:
        raise ConfigError(f"entries {seg.start}..{seg.end - 1} are not all online")
    body = struct.pack(f"<{len(leaves)}I", *map(len, leaves)) + b"".join(leaves)
    del leaves
    root = range_root(alog.store, [(seg.start, seg.end)])
    # In clear in the header (no personal data): what a later purge of the segment needs to
    # decide without opening it.
    header: dict[str, Any] = {"origin": alog.origin, "start": seg.start, "end": seg.end,
                              "count": seg.end - seg.start, "root": root.hex(),
                              "newest_received": newest, "categories": sorted(categories),
                              "body_sha256": hashlib.sha256(body).hexdigest()}
    compressed = zstandard.ZstdCompressor(level=10).compress(body)
    del body
    keyring = alog.keyring
    if keyring is not None:
        file_key = AESGCM.generate_key(bit_length=256)
        wrapped = envelope.wrap(keyring.data[keyring.active],
                                secrets.token_bytes(envelope.NONCE_BYTES), file_key,
                                envelope.archive_key_aad(alog.origin, seg.start, seg.end))
        header["kid"] = keyring.active
        header["wrapped"] = base64.b64encode(wrapped).decode()
        nonce = secrets.token_bytes(envelope.NONCE_BYTES)
        header["nonce"] = base64.b64encode(nonce).decode()
        line = json.dumps(header, sort_keys=True).encode() + b"\n"
        payload = envelope.encrypt(AESGCM(file_key), nonce, compressed, line)
    else:
        line = json.dumps(header, sort_keys=True).encode() + b"\n"
        payload = compressed
    directory = archive_dir(alog)
    directory.mkdir(mode=0o700, exist_ok=True)
    path = directory / seg.name
    # A temporary name of its own (mkstemp: O_EXCL, 0600): a CLI run beside the service's
    # job never writes into the other's file.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{seg.name}.", suffix=".tmp", dir=directory)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as f:
            for part in (MAGIC, line, payload):
                f.write(part)  # a buffered file writes every byte (os.write may not)
                digest.update(part)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    # Read back what is on disk, as a restore would, before the database lets go.
    start, end, back = read_segment(alog, path)
    stored = list(leaf_hashes(alog.store, [(start, end)]))
    if (start, end) != (seg.start, seg.end) or [leaf_hash(b) for b in back] != stored:
        path.unlink(missing_ok=True)
        raise StorageError(f"{path.name}: the segment read back differs from the log")
    return path, digest.hexdigest()


def archive(alog: AuditLog, policy: RetentionPolicy, *, actor: Mapping[str, Any]
            ) -> list[tuple[Segment, Receipt]]:
    """Archive every segment past its online period; one receipt per segment."""
    done = []
    for seg in plan_archive(alog, policy):
        path, digest = write_segment(alog, seg)
        reason = (f"retention policy {policy.name}: entries {seg.start}..{seg.end - 1} "
                  f"(received {seg.month}) moved offline to archive/{path.name} "
                  f"(sha256 {digest}); leaf hashes kept")
        done.append((seg, retire(alog, [(seg.start, seg.end)], kind="archive", actor=actor,
                                 reason=reason)))
    return done


def read_segment(alog: AuditLog, path: Path) -> tuple[int, int, list[bytes]]:
    """Open a segment file of this log: (start, end, leaves); raises on any mismatch."""
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        raise ConfigError(f"{path.name} is not a sealtrail archive segment")
    rest = data[len(MAGIC):]
    line, _, payload = rest.partition(b"\n")
    line += b"\n"
    try:
        header = json.loads(line)
        start, end = int(header["start"]), int(header["end"])
        body_sha256 = str(header["body_sha256"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path.name}: the archive header is malformed") from exc
    if header.get("origin") != alog.origin:
        raise ConfigError(f"{path.name} belongs to log {header.get('origin')!r}")
    if "kid" in header:
        keyring = alog.keyring
        if keyring is None:
            raise ConfigError("restoring an encrypted archive needs the keyring: set "
                              "SEALTRAIL_PASSPHRASE")
        aead = keyring.data.get(str(header["kid"]))
        if aead is None:
            raise DecryptionError(f"{path.name}: the keyring has no data key {header['kid']}")
        try:
            file_key = envelope.unwrap(aead, base64.b64decode(header["wrapped"]),
                                       envelope.archive_key_aad(alog.origin, start, end))
            payload = envelope.decrypt(AESGCM(file_key), base64.b64decode(header["nonce"]),
                                       payload, line)
        except (DecryptionError, ValueError, KeyError, TypeError) as exc:
            # a failed tag; or a header field missing, not text, not base64, of a bad length
            raise DecryptionError(f"{path.name}: the archive does not open (altered, or "
                                  "not this log's)") from exc
    try:
        limit = (end - start) * (MAX_LEAF_BYTES + 4)  # what ``count`` leaves can weigh at most
        body = zstandard.ZstdDecompressor().decompress(payload, max_output_size=limit)
    except zstandard.ZstdError as exc:
        raise DecryptionError(f"{path.name}: the archive body is corrupt") from exc
    # As bytes: hmac.compare_digest refuses text that is not ASCII with a TypeError.
    if not hmac.compare_digest(hashlib.sha256(body).hexdigest().encode(),
                               body_sha256.encode("utf-8", "surrogatepass")):
        raise DecryptionError(f"{path.name}: the archive body does not match its header")
    count = end - start
    try:
        leaves = Chunk(start, count, end, b"", body).leaves()
    except ValueError as exc:
        raise DecryptionError(f"{path.name}: the archive framing is broken") from exc
    return start, end, leaves


def restore(alog: AuditLog, path: Path, *, actor: Mapping[str, Any]) -> Receipt:
    """Bring an archived segment back online after checking every leaf against the tree."""
    start, end, leaves = read_segment(alog, path)
    stored = list(leaf_hashes(alog.store, [(start, end)]))
    for k, (leaf, want) in enumerate(zip(leaves, stored, strict=True)):
        if not hmac.compare_digest(leaf_hash(leaf), want):
            raise TamperError("changed", start + k, f"{path.name}: the archived entry does "
                              "not match its leaf hash in the tree")

    event = {"actor": dict(actor), "action": "retention.restore", "outcome": "success",
             "category": "system", "target": {"type": "entries", "id": f"{start}-{end}"},
             "reason": f"archive/{path.name} restored: entries {start}..{end - 1} back online"}
    return alog.commit_change(event, Restore(start, end, tuple(leaves)))


def _segment_header(path: Path) -> dict[str, Any] | None:
    """The clear header of a segment file (None when unreadable or of another format)."""
    try:
        with path.open("rb") as f:
            if f.read(len(MAGIC)) != MAGIC:
                return None
            doc = json.loads(f.readline(64 * 1024))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def plan_archived_purge(alog: AuditLog, policy: RetentionPolicy
                        ) -> list[tuple[int, int, Path]]:
    """Archived segments wholly past their maximum keep: (start, end, file). A segment under a
    legal hold (one of its events names a held subject) stays; with holds open, the segments
    are opened to look, which needs the keyring."""
    now = alog.now()
    out = []
    alog.check_settings()  # the holds below are what the log's hold entries say
    held = {bytes(r) for _, r, _, _, _ in alog.store.holds(open_only=True)}
    for start, end, _, kind in alog.store.retired():
        if kind != "archive":
            continue
        path = archive_dir(alog) / Segment(start, end, "").name
        header = _segment_header(path)
        if header is None and not path.exists():
            # Archived by another node (a PostgreSQL store's former leader): its file is in
            # that node's data directory. Kept here, and said, so a retention maximum is not
            # passed unnoticed (docs/deployment.md: put the archive on shared storage).
            _log.warning("sealtrail: archived segment %d-%d of log %s has no file in %s: "
                         "kept past its maximum (archived on another node?)", start, end,
                         alog.name, archive_dir(alog))
            continue
        if header is None or not header.get("newest_received"):
            continue  # written before segments said their age: kept
        age = now - parse_time(str(header["newest_received"]))
        rules = [policy.rule_for(c if c != "default" else None)
                 for c in header.get("categories") or ["default"]]
        if not all(r.max is not None and age > r.max and (r.min is None or age > r.min)
                   for r in rules):
            continue
        if held and _segment_held(alog, path, held):
            continue
        out.append((start, end, path))
    return out


def _segment_held(alog: AuditLog, path: Path, refs: set[bytes]) -> bool:
    start, _, leaves = read_segment(alog, path)
    for k, leaf in enumerate(leaves):
        ev = alog.read(Entry(start + k, leaf))
        if "subjects" in ev.get("erased", ()):
            continue
        if "sealed" in ev and "subjects" in (ev["sealed"].get("fields") or ()):
            raise PolicyError("legal holds are open and archived segments cannot be opened "
                              "(the keyring is locked): refusing to purge them")
        if any(alog.subject_ref(s) in refs for s in ev.get("subjects") or ()):
            return True
    return False


def purge_archived(alog: AuditLog, policy: RetentionPolicy, *, actor: Mapping[str, Any]
                   ) -> list[tuple[int, int, Receipt]]:
    """Purge archived segments past their maximum: a purge receipt each, then the file goes.
    (A crash between the two leaves a file whose range is purged: the next run deletes it.)"""
    done = []
    holds = tuple(int(n) for n, _, _, _, _ in alog.store.holds(open_only=True))
    for start, end, path in plan_archived_purge(alog, policy):
        reason = (f"retention policy {policy.name}: archived entries {start}..{end - 1} "
                  f"(archive/{path.name}) past their maximum keep: purged, file deleted; "
                  "leaf hashes kept")
        receipt = retire(alog, [(start, end)], kind="purge", actor=actor, reason=reason,
                         holds=holds, replaces_archive=True)
        path.unlink(missing_ok=True)
        done.append((start, end, receipt))
    _remove_purged_files(alog)
    return done


def _remove_purged_files(alog: AuditLog) -> None:
    """Delete segment files whose ranges are purged (a crash came before their deletion)."""
    directory = archive_dir(alog)
    if not directory.is_dir():
        return
    purged = {(s, e) for s, e, _, k in alog.store.retired() if k == "purge"}
    for s, e in purged:
        (directory / Segment(s, e, "").name).unlink(missing_ok=True)


@dataclass(frozen=True, slots=True)
class RetentionResult:
    """What one retention run did."""

    purged: int
    purge_receipt: int | None
    archived: list[tuple[Segment, Receipt]]
    archived_purged: list[tuple[int, int, Receipt]]
    plan: Any


def apply_retention(alog: AuditLog, policy: RetentionPolicy, *, actor: Mapping[str, Any]
                    ) -> RetentionResult:
    """The whole run: purge online entries past their maximum, purge archived segments past
    theirs (files deleted), then archive what is past its online period."""
    plan, receipt = apply_purge(alog, policy, actor=actor)
    gone = purge_archived(alog, policy, actor=actor)
    segments = archive(alog, policy, actor=actor)
    return RetentionResult(plan.count, None if receipt is None else receipt.index, segments,
                           gone, plan)
