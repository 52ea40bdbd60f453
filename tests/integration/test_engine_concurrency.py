"""The engine under concurrency: many threads, several processes, reopening, key and config.

Group commit must hand out each index exactly once, every receipt must be provable against the
final checkpoint, a retried id must be stored once however the retries race, and two processes
appending to one data directory must neither lose nor duplicate entries.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from sealtrail.core.checkpoint import open_checkpoint
from sealtrail.core.errors import ConfigError
from sealtrail.core.uuid7 import make_uuid7
from sealtrail.log.auditlog import AuditLog, Receipt

THREADS = 64
PER_THREAD = 12


def event(actor: str, n: int, ident: str | None = None) -> dict[str, object]:
    """A valid event; with a client-supplied id when ``ident`` is given."""
    ev: dict[str, object] = {"actor": {"id": actor}, "action": "doc.read",
                             "outcome": "success", "metadata": {"n": n}}
    if ident is not None:
        ev["id"] = ident
    return ev


def new_id(ms: int = 1_700_000_000_000) -> str:
    """A fresh UUIDv7 text."""
    return str(make_uuid7(ms, os.urandom(10)))


def run_threads(count: int, target: Callable[[int], None]) -> None:
    """Run ``target(k)`` in ``count`` threads started together; re-raise the first failure."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def body(k: int) -> None:
        try:
            barrier.wait()
            target(k)
        except BaseException as exc:  # handed to the main thread, which re-raises it
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(k,)) for k in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def test_concurrent_single_appends_get_distinct_provable_indexes(tmp_path: Path) -> None:
    """64 threads appending singly get indexes 0..n-1 once each, all provable at the end."""
    receipts: list[list[Receipt]] = [[] for _ in range(THREADS)]
    with AuditLog.open(tmp_path) as log:

        def work(k: int) -> None:
            for n in range(PER_THREAD):
                receipts[k].append(log.append(event(f"thread-{k}", n)))

        run_threads(THREADS, work)
        total = THREADS * PER_THREAD
        flat = [r for rs in receipts for r in rs]
        assert sorted(r.index for r in flat) == list(range(total))
        assert not any(r.duplicate for r in flat)
        assert len({r.id for r in flat}) == total
        for rs in receipts:  # one thread's appends are sequenced in its order
            assert [r.index for r in rs] == sorted(r.index for r in rs)
        cp = open_checkpoint(log.checkpoint().note, log.verifier, log.origin)
        assert cp.size == total == log.size
        for r in flat:
            assert r.checkpoint_size > r.index
            proof = log.prove_inclusion(r.index)
            assert proof.leaf_hash == r.leaf_hash
            assert proof.root_hash == cp.root
            proof.verify()
            # And the receipt's own checkpoint size is consistent with the final one.
            log.prove_consistency(r.checkpoint_size).verify()
        entries = {e.index: log.read(e) for e in log.entries(0)}
        for k, rs in enumerate(receipts):
            assert [entries[r.index]["metadata"]["n"] for r in rs] == list(range(PER_THREAD))
            assert all(entries[r.index]["actor"]["id"] == f"thread-{k}" for r in rs)
        report = log.verify()
        assert (report.size, report.root) == (total, cp.root)


def test_duplicate_ids_from_many_threads_are_stored_once(tmp_path: Path) -> None:
    """The same ids submitted at once from 16 threads, singly and in batches, are stored once."""
    ids = [new_id() for _ in range(40)]
    results: list[list[Receipt]] = [[] for _ in range(16)]
    with AuditLog.open(tmp_path) as log:
        log.append(event("before", 0))

        def work(k: int) -> None:
            mine = ids[k % 4::1] if k % 2 else list(reversed(ids))
            if k % 3:
                results[k] = [log.append(event(f"t{k}", n, i)) for n, i in enumerate(mine)]
            else:
                results[k] = log.append_many([event(f"t{k}", n, i) for n, i in enumerate(mine)])

        run_threads(16, work)
        assert log.size == 1 + len(ids)
        index_of: dict[str, int] = {}
        for rs in results:
            for r in rs:
                assert index_of.setdefault(r.id, r.index) == r.index
        assert sorted(index_of.values()) == list(range(1, 1 + len(ids)))
        stored = Counter(str(e.event()["id"]) for e in log.entries(1))
        assert stored == Counter(ids)
        fresh = sum(not r.duplicate for rs in results for r in rs)
        assert fresh == len(ids)
        log.verify()


WRITER = """
import os, sys, time
from sealtrail.log.auditlog import AuditLog
data_dir, name, ids, go = sys.argv[1], sys.argv[2], sys.argv[3].split(","), sys.argv[4]
with AuditLog.open(data_dir, create=False) as log:
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.002)
    for n, i in enumerate(ids):
        ev = {"id": i, "actor": {"id": name}, "action": "doc.read", "outcome": "success"}
        if n % 5 == 4:
            rs = log.append_many([ev, *({**ev, "id": j} for j in ids[max(0, n - 3):n])])
        else:
            rs = [log.append(ev)]
        print(" ".join(f"{r.index}:{r.id}" for r in rs), flush=True)
"""


def test_two_processes_appending_at_once_lose_nothing(tmp_path: Path) -> None:
    """Two processes appending to one data directory, with overlapping ids, lose and repeat none."""
    with AuditLog.open(tmp_path) as log:
        log.append(event("parent", 0))
    own = [[new_id() for _ in range(120)] for _ in range(2)]
    shared = [new_id() for _ in range(30)]
    args = [own[0] + shared, shared + own[1]]
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), f"proc-{k}",
                               ",".join(args[k]), str(go)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for k in range(2)]
    for p in procs:  # both have the log open: start them together
        assert p.stdout is not None
        assert p.stdout.readline() == "ready\n"
    go.touch()
    outputs = [p.communicate(timeout=120) for p in procs]
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
    firsts = [[int(line.split(":", 1)[0]) for line in out.splitlines()] for out, _ in outputs]
    assert min(firsts[1]) < max(firsts[0])  # the two writers really interleaved
    assert min(firsts[0]) < max(firsts[1])
    with AuditLog.open(tmp_path, create=False) as log:
        report = log.verify()
        expected = {*own[0], *own[1], *shared}
        assert report.size == log.size == 1 + len(expected)
        stored = [str(e.event()["id"]) for e in log.entries(1)]
        assert Counter(stored) == Counter(expected)
        where = {ident: k + 1 for k, ident in enumerate(stored)}
        for out, _ in outputs:
            for line in out.splitlines():
                for item in line.split():
                    index, ident = item.split(":", 1)
                    assert where[ident] == int(index)  # every receipt names the stored index


def test_reopening_preserves_size_root_and_checkpoint(tmp_path: Path) -> None:
    """Closing and reopening a log keeps its size, root and checkpoint, and appends continue."""
    with AuditLog.open(tmp_path) as log:
        log.append_many([event("a", n) for n in range(300)])
        log.append(event("b", 0))
        size, root, note = log.size, log.root_at(log.size), log.checkpoint().note
    with AuditLog.open(tmp_path, create=False) as log:
        assert (log.size, log.root_at(log.size), log.checkpoint().note) == (size, root, note)
        assert log.verify().root == root
        receipt = log.append(event("c", 0))
        assert receipt.index == size
        log.prove_consistency(size).verify()
        assert log.prove_consistency(size).first_root == root


def test_open_without_create_on_a_missing_log_is_config_error(tmp_path: Path) -> None:
    """Opening a missing log with ``create=False`` is a ConfigError and creates nothing."""
    with pytest.raises(ConfigError, match="sealtrail init"):
        AuditLog.open(tmp_path, "audit", create=False)
    assert not (tmp_path / "audit").exists()


@pytest.mark.parametrize("name", ["", "Upper", "../escape", "a/b", ".hidden", "x" * 64])
def test_bad_log_names_are_config_errors(tmp_path: Path, name: str) -> None:
    """A log name that could escape the data directory or is malformed is a ConfigError."""
    with pytest.raises(ConfigError, match="log name"):
        AuditLog.open(tmp_path, name)


def test_signing_key_is_private(tmp_path: Path) -> None:
    """The signing key file is created with mode 0600 inside a 0700 directory."""
    with AuditLog.open(tmp_path) as log:
        key = log.directory / "signing.key"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert stat.S_IMODE(log.directory.stat().st_mode) & 0o077 == 0
        assert not [p for p in log.directory.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o610])
def test_opening_refuses_a_key_others_can_read(tmp_path: Path, mode: int) -> None:
    """Opening a log whose signing key is group or world accessible is a ConfigError."""
    with AuditLog.open(tmp_path) as log:
        log.append(event("a", 0))
        key = log.directory / "signing.key"
    key.chmod(mode)
    with pytest.raises(ConfigError, match="chmod 600"):
        AuditLog.open(tmp_path, create=False)
    key.chmod(0o600)
    with AuditLog.open(tmp_path, create=False) as log:
        assert log.verify().size == 1


def test_a_key_of_another_log_is_refused(tmp_path: Path) -> None:
    """A signing key swapped in from another log (another origin) is a ConfigError."""
    with AuditLog.open(tmp_path, "one"):
        pass
    with AuditLog.open(tmp_path, "two"):
        pass
    (tmp_path / "one" / "signing.key").write_bytes((tmp_path / "two" / "signing.key").read_bytes())
    with pytest.raises(ConfigError, match="origin"):
        AuditLog.open(tmp_path, "one", create=False)


def test_closed_log_refuses_appends(tmp_path: Path) -> None:
    """Appending to a closed log is a ConfigError, not a crash or a silent loss."""
    log = AuditLog.open(tmp_path)
    log.close()
    with pytest.raises(ConfigError, match="closed"):
        log.append(event("a", 0, str(uuid.uuid4())))
