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
import os
import secrets
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import msgspec
import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sealtrail.core.errors import ConfigError, DecryptionError, TamperError
from sealtrail.core.merkle.hashing import leaf_hash
from sealtrail.log.auditlog import AuditLog, Receipt
from sealtrail.log.receipts import leaf_hashes, range_root
from sealtrail.log.retention import PROTECTED_ACTIONS, RetentionPolicy, retire
from sealtrail.store.protocol import Chunk

MAGIC: Final = b"sealtrail-archive/1\n"
SEGMENT_MAX: Final = 65536
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


def archive_dir(alog: AuditLog) -> Path:
    """Where a log's segment files live (created 0700 on first use)."""
    return alog.store.path.parent / "archive"


def plan_archive(alog: AuditLog, policy: RetentionPolicy) -> list[Segment]:
    """Segments of entries past their category's online period (receipts stay online)."""
    now = alog.now()
    out: list[Segment] = []
    run: list[Any] = []  # [start, end, month]
    for entry in alog.entries(0, alog.size):
        ok = False
        month = ""
        if not entry.retired:
            head = _head.decode(entry.leaf)
            rule = policy.rule_for(head.category)
            month = head.received_at[:7]
            if rule.online is not None and head.action not in PROTECTED_ACTIONS:
                ok = now - _parse(head.received_at) > rule.online
        if ok and run and run[1] == entry.index and run[2] == month \
                and run[1] - run[0] < SEGMENT_MAX:
            run[1] += 1
            continue
        if run:
            out.append(Segment(run[0], run[1], run[2]))
            run = []
        if ok:
            run = [entry.index, entry.index + 1, month]
    if run:
        out.append(Segment(run[0], run[1], run[2]))
    return out


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _aad(origin: str, start: int, end: int) -> bytes:
    return f"sealtrail archive key\x00{origin}\x00{start}\x00{end}".encode()


def write_segment(alog: AuditLog, seg: Segment) -> tuple[Path, str]:
    """Write one segment file durably (0600, fsync, atomic rename); returns (path, sha256)."""
    leaves = [e.leaf for e in alog.entries(seg.start, seg.end)]
    if len(leaves) != seg.end - seg.start or not all(leaves):
        raise ConfigError(f"entries {seg.start}..{seg.end - 1} are not all online")
    body = struct.pack(f"<{len(leaves)}I", *map(len, leaves)) + b"".join(leaves)
    root = range_root(alog.store, [(seg.start, seg.end)])
    header: dict[str, Any] = {"origin": alog.origin, "start": seg.start, "end": seg.end,
                              "count": len(leaves), "root": root.hex(),
                              "body_sha256": hashlib.sha256(body).hexdigest()}
    compressed = zstandard.ZstdCompressor(level=10).compress(body)
    keyring = alog.keyring
    if keyring is not None:
        file_key = AESGCM.generate_key(bit_length=256)
        wrap_nonce = secrets.token_bytes(12)
        wrapped = keyring.data[keyring.active].encrypt(
            wrap_nonce, file_key, _aad(alog.origin, seg.start, seg.end))
        header["kid"] = keyring.active
        header["wrapped"] = base64.b64encode(wrap_nonce + wrapped).decode()
        nonce = secrets.token_bytes(12)
        header["nonce"] = base64.b64encode(nonce).decode()
        line = json.dumps(header, sort_keys=True).encode() + b"\n"
        payload = AESGCM(file_key).encrypt(nonce, compressed, line)
    else:
        line = json.dumps(header, sort_keys=True).encode() + b"\n"
        payload = compressed
    directory = archive_dir(alog)
    directory.mkdir(mode=0o700, exist_ok=True)
    path = directory / seg.name
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        data = MAGIC + line + payload
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    return path, hashlib.sha256(data).hexdigest()


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
            blob = base64.b64decode(header["wrapped"])
            file_key = aead.decrypt(blob[:12], blob[12:], _aad(alog.origin, start, end))
            payload = AESGCM(file_key).decrypt(base64.b64decode(header["nonce"]), payload,
                                               line)
        except Exception as exc:  # InvalidTag and malformed base64 alike
            raise DecryptionError(f"{path.name}: the archive does not open (altered, or "
                                  "not this log's)") from exc
    try:
        body = zstandard.ZstdDecompressor().decompress(payload, max_output_size=1 << 34)
    except zstandard.ZstdError as exc:
        raise DecryptionError(f"{path.name}: the archive body is corrupt") from exc
    if not hmac.compare_digest(hashlib.sha256(body).hexdigest(), str(header["body_sha256"])):
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
    store = alog.store

    def hook(_at: int) -> None:
        rows = [r for r in store.retired() if r[0] < end and start < r[1]]
        if not rows or any(k != "archive" for _, _, _, k in rows):
            raise ConfigError(f"entries {start}..{end - 1} are not archived (already restored, "
                              "or purged)")
        by_start = dict(zip(range(start, end), leaves, strict=True))
        rewritten = []
        for chunk in store.iter_chunks(start, end):
            current = chunk.leaves()
            for k in range(chunk.count):
                idx = chunk.start + k
                if idx in by_start and not current[k]:
                    current[k] = by_start[idx]
            ids = [chunk.ids[16 * k:16 * k + 16] for k in range(chunk.count)]
            rewritten.append((chunk.start,
                              Chunk.pack(chunk.start, chunk.batch_end, ids, current).data))
        store.replace_chunk_data(rewritten)
        store.delete_retired(start, end)

    event = {"actor": dict(actor), "action": "retention.restore", "outcome": "success",
             "category": "system", "target": {"type": "entries", "id": f"{start}-{end}"},
             "reason": f"archive/{path.name} restored: entries {start}..{end - 1} back online"}
    return alog.commit_with(event, hook)
