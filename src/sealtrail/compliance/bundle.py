"""Making evidence bundles (the format and the offline check are in ``core/bundle.py``).

The export is itself an audited read: the ``audit.export`` event is appended before a byte
of the bundle is written, so the bundle's checkpoint covers it, an auditor can see in any later
export who exported what, and an export that cannot be recorded writes nothing. Entries are
streamed: memory stays flat in the number of events (the selection is spooled to private
temporary files first).

Bundles and exports hold personal data: they are created mode 0600 whatever the umask
(:func:`open_private`), under a temporary name renamed into place only when complete, and the
archive's members carry mode 0600 too.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import secrets
import stat
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, Final

from sealtrail.compliance.siem import OPEN_SEALED_DETAIL
from sealtrail.core import b64
from sealtrail.core.bundle import (
    FORMAT,
    REQUIRED,
    BundleReport,
    events_digest,
    statement,
    verify_bundle,
)
from sealtrail.core.canonical import encode_json
from sealtrail.core.checkpoint import open_checkpoint
from sealtrail.core.errors import ConfigError, FormatError, SealtrailError
from sealtrail.core.merkle.hashing import leaf_hash
from sealtrail.core.timefmt import format_time
from sealtrail.log import witnesses
from sealtrail.log.auditlog import AuditLog, Entry
from sealtrail.log.search import Filter, search

MAX_MEMBER_BYTES: Final = 4 << 30   # refuse archive members larger than 4 GiB when reading
MAX_TOTAL_BYTES: Final = 8 << 30    # and archives that unpack to more than 8 GiB in all
MAX_MEMBERS: Final = 100_000

README = """# sealtrail evidence bundle

This archive holds audit events of the log `{origin}` and the proofs that they are part of
its tamper-evident record. You can check it on any machine, with no access to the system
that produced it, using only the log's public verifier key (obtain that key from the
organisation through a channel you trust, not from this archive):

    pip install sealtrail
    sealtrail verify-bundle THIS_FILE --vkey 'KEY'

Exit status 0 means every check below passed; any failure is named (file, line, index).

What is checked:

1. `checkpoint.txt` is signed by the key you trust: the log committed to a tree of
   {size} entries with that root hash.
2. Every line of `events.jsonl` is an entry (`leaf`, base64 of its exact bytes) whose
   inclusion proof (`proofs.jsonl`, RFC 6962 audit path) leads to that signed root: the
   event is in the log, unaltered, at that index.
3. `manifest.sig` is a statement signed by the same key naming exactly which entries
   (index and leaf hash) this bundle holds, and the digest of `manifest.json`: an event
   removed, added or swapped is detected.
4. Each `checkpoints/<size>.txt` is an earlier signed checkpoint, and `consistency.jsonl`
   proves the log only grew from it to `checkpoint.txt` (nothing was rewritten).

What is not proven: fields listed under `opened` are personal data that the log stores
encrypted; the exporter opened them for you. The proofs cover their ciphertext (in the leaf),
not the opened values.

Selection: {selection}
Events: {count}. Exported at {created} by {exporter}.
"""


@dataclass(frozen=True, slots=True)
class BundleSummary:
    """What an export wrote."""

    path: Path
    events: int
    size: int
    checkpoints: int
    bytes: int
    receipt_index: int


PRIVATE_MODE: Final = 0o600
"""The mode of every file sealtrail writes that holds event content (and of archive members)."""


def _create_private(path: Path) -> BinaryIO:
    """A new file at ``path`` (it must not exist), mode 0600 whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                 PRIVATE_MODE)
    try:
        os.fchmod(fd, PRIVATE_MODE)  # the umask may have taken bits away; set exactly 0600
        return os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        raise


@contextlib.contextmanager
def open_private(path: Path) -> Iterator[BinaryIO]:
    """Write a file that holds personal data: mode 0600, complete or absent.

    A regular file (or a new name) is written under a temporary name in the same directory,
    created 0600 whatever the umask, and renamed over ``path`` only when the ``with`` block ends
    without an exception (after an fsync); on an exception it is removed and ``path`` is left
    as it was. A path that exists and is not a regular file (a FIFO, a terminal,
    ``/dev/stdout``) is written directly and its mode left alone.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        with path.open("wb") as direct:
            yield direct
        return
    part = path.with_name(f".{path.name}.{secrets.token_hex(6)}.part")
    f = _create_private(part)
    try:
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(part, path)
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def _kind(path: Path) -> str:
    if path.name.endswith(".zip"):
        return "zip"
    if path.name.endswith((".tar.gz", ".tgz")):
        return "tar"
    raise ConfigError(f"--bundle {path.name}: the file name must end in .zip, .tar.gz or .tgz")


def _members_writer(dest: BinaryIO, kind: str) -> Any:
    if kind == "zip":
        return zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6)
    return tarfile.open(fileobj=dest, mode="w:gz")


def _add(archive: Any, kind: str, name: str, data: bytes | IO[bytes], size: int) -> None:
    if kind == "zip":
        info = zipfile.ZipInfo(name, date_time=time.localtime(time.time())[:6])
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = (stat.S_IFREG | PRIVATE_MODE) << 16
        if isinstance(data, bytes):
            archive.writestr(info, data, compresslevel=6)
        else:
            with archive.open(info, "w", force_zip64=True) as out:
                while chunk := data.read(1 << 20):
                    out.write(chunk)
        return
    info_t = tarfile.TarInfo(name)
    info_t.size = size
    info_t.mtime = int(time.time())
    info_t.mode = PRIVATE_MODE
    archive.addfile(info_t, io.BytesIO(data) if isinstance(data, bytes) else data)


def _selected(alog: AuditLog, flt: Filter, end: int) -> Iterator[tuple[Entry, dict[str, Any]]]:
    yield from search(alog, flt, limit=end + 1, newest_first=False, before=end)


def _opened(ev: Mapping[str, Any], entry: Entry) -> dict[str, Any] | None:
    obj = entry.event()
    fields = (obj.get("sealed") or {}).get("fields") or []
    out: dict[str, Any] = {}
    for path in fields:
        value: Any = ev
        for part in path.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if value is not None:
            out[path] = value
    return out or None


def export_bundle(alog: AuditLog, path: Path, *, flt: Filter, actor: Mapping[str, Any],
                  role: str = "operator", opened: bool = False) -> BundleSummary:
    """Write an evidence bundle of the entries matching ``flt`` to ``path`` (mode 0600).

    Personal fields stay sealed unless ``opened`` (then their values travel under ``opened``,
    decrypted, and the ``audit.export`` record says ``open_sealed: true``): the same default
    and the same record as SIEM exports.

    The read is recorded (``audit.export`` by ``actor`` in ``role``) before any byte of the
    bundle is written; when it cannot be recorded the exception propagates and ``path`` is
    left as it was.
    """
    kind = _kind(path)
    tmp = Path(tempfile.mkdtemp(prefix="sealtrail-bundle-"))
    try:
        with open_private(path) as dest:
            archive = _members_writer(dest, kind)
            try:
                receipt, pairs, size, earlier = _write_bundle(
                    alog, archive, kind, tmp, path=path, flt=flt, actor=actor, role=role,
                    opened=opened)
            finally:
                archive.close()
    finally:
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()
    return BundleSummary(path, len(pairs), size, len(earlier), path.stat().st_size, receipt.index)


def _write_bundle(alog: AuditLog, archive: Any, kind: str, tmp: Path, *, path: Path,
                  flt: Filter, actor: Mapping[str, Any], role: str, opened: bool
                  ) -> tuple[Any, list[tuple[int, bytes]], int, list[tuple[int, str]]]:
    end = alog.size
    # 1. Events: stream the selection to a private spool file, remembering (index, leaf hash).
    pairs: list[tuple[int, bytes]] = []
    events_file = tmp / "events.jsonl"
    with _create_private(events_file) as out:
        for entry, ev in _selected(alog, flt, end):
            if entry.retired:
                continue
            line: dict[str, Any] = {"index": entry.index,
                                    "leaf": base64.b64encode(entry.leaf).decode()}
            if opened:
                got = _opened(ev, entry)
                if got is not None:
                    line["opened"] = got
            out.write(encode_json(line) + b"\n")
            pairs.append((entry.index, leaf_hash(entry.leaf)))
    # 2. The export is an audited read: record it before anything is written to the bundle,
    #    and before taking the checkpoint (which then covers it).
    receipt = alog.record_access(actor, "audit.export", role=role,
                                 details={**flt.describe(alog.pseudonym), "bundle": path.name,
                                          "tree_size": end, OPEN_SEALED_DETAIL: opened},
                                 results=len(pairs))
    head = alog.checkpoint()
    size = head.checkpoint.size
    # 3. Proofs against that one checkpoint.
    proofs_file = tmp / "proofs.jsonl"
    with _create_private(proofs_file) as out:
        for index, audit in alog.inclusion_paths((i for i, _ in pairs), size):
            out.write(encode_json({"leaf_index": index, "tree_size": size,
                              "audit_path": [b64.encode(h) for h in audit]}) + b"\n")
    # 4. Earlier checkpoints from the first selected index on, each linked to the head.
    first = pairs[0][0] if pairs else size
    earlier = [(s, note) for s, note in alog.kept_checkpoints()
               if first < s < size][-64:]
    # The latest witnessed checkpoint too (with its cosignature lines), when it covers a
    # selected event: verify-bundle --witness-policy reports what it covers.
    # The stored note is checked first (the state row is not trusted): a note that does not
    # verify or names another root is left out rather than spoiling the bundle.
    witnessed = witnesses.State.load(alog)
    if first < witnessed.witnessed_size < size and witnessed.witnessed_note:
        with contextlib.suppress(SealtrailError):
            cp = open_checkpoint(witnessed.witnessed_note, alog.verifier, alog.origin)
            if alog.prove_consistency(cp.size, size).first_root == cp.root:
                earlier = sorted([(s, n) for s, n in earlier if s != cp.size]
                                 + [(cp.size, witnessed.witnessed_note)])
    consistency = b"".join(
        encode_json(alog.prove_consistency(s, size).to_json()) + b"\n"
        for s, _ in earlier)
    created = format_time(alog.now())
    selection = dict(flt.describe(alog.pseudonym).items())
    manifest = encode_json({
        "format": FORMAT, "log": alog.name, "origin": alog.origin, "created": created,
        "selection": selection, "events": len(pairs), "checkpoint_size": size,
        "earlier_checkpoints": [s for s, _ in earlier],
        "export_event": receipt.index,
        "files": {"events.jsonl": _sha256_file(events_file),
                  "proofs.jsonl": _sha256_file(proofs_file)}})
    sig = alog.sign_statement(statement(alog.origin, size, len(pairs),
                                        events_digest(pairs), manifest))
    readme = README.format(origin=alog.origin, size=size, count=len(pairs),
                           created=created, exporter=actor.get("id", "?"),
                           selection=json.dumps(selection) if selection else "all events")
    for name, data in (("README.md", readme.encode()), ("manifest.json", manifest),
                       ("manifest.sig", sig.encode()),
                       ("vkey.txt", (alog.vkey() + "\n").encode()),
                       ("checkpoint.txt", head.note.encode()),
                       ("consistency.jsonl", consistency)):
        _add(archive, kind, name, data, len(data))
    for s, note in earlier:
        _add(archive, kind, f"checkpoints/{s}.txt", note.encode(), len(note.encode()))
    for f in (events_file, proofs_file):
        with f.open("rb") as src:
            _add(archive, kind, f.name, src, f.stat().st_size)
    return receipt, pairs, size, earlier


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def read_bundle(path: Path) -> dict[str, bytes]:
    """The members of a bundle archive (zip or tar.gz), with limits on count and size.

    A name that appears twice is refused: a viewer and the verifier must not be able to see
    two different ``events.jsonl``.
    """
    files: dict[str, bytes] = {}
    total = 0

    def take(name: str, size: int, read: Any) -> None:
        nonlocal total
        if name in files:
            raise FormatError(f"{path.name}: member {name} appears twice")
        if size > MAX_MEMBER_BYTES or total + size > MAX_TOTAL_BYTES:
            raise FormatError(f"{path.name}: member {name} is too large")
        data = read()
        if len(data) != size:
            raise FormatError(f"{path.name}: member {name} is not the size it declares")
        total += size
        files[name] = data

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                infos = z.infolist()
                if len(infos) > MAX_MEMBERS:
                    raise FormatError(f"{path.name}: too many members")
                for info in infos:
                    if not info.is_dir():
                        take(info.filename, info.file_size,
                             lambda info=info: z.read(info))
        elif tarfile.is_tarfile(path):
            with tarfile.open(path, "r:*") as t:
                for n, member in enumerate(t):
                    if n >= MAX_MEMBERS:
                        raise FormatError(f"{path.name}: too many members")
                    if not member.isfile():
                        continue
                    f = t.extractfile(member)
                    if f is not None:
                        take(member.name, member.size, f.read)
        else:
            raise FormatError(f"{path.name} is neither a zip nor a tar.gz archive")
    except (OSError, zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
        raise FormatError(f"{path.name}: cannot read the archive: {exc}") from exc
    missing = [n for n in REQUIRED if n not in files]
    if missing:
        raise FormatError(f"{path.name}: not an evidence bundle (no {', '.join(missing)})")
    return files


def verify_bundle_file(path: Path, vkey: str) -> BundleReport:
    """Read and verify a bundle file (see :func:`sealtrail.core.bundle.verify_bundle`)."""
    return verify_bundle(read_bundle(path), vkey)


__all__ = ["PRIVATE_MODE", "BundleSummary", "export_bundle", "open_private", "read_bundle",
           "verify_bundle_file"]
