"""Crash safety with prepare workers and the deferred index step: SIGKILL loses nothing acked.

A child (``crash_child_workers.py``) opens the log with ``workers=2`` and appends batches of
1000-1500 events, which its two spawned worker processes prepare in parts; about 30% of the
events name a subject, many of them new to the log, so new subject keys are proposed by both
parts of a batch and settled at the commit. It prints ``try`` before each batch, ``ack`` with
the receipts after it and ``workers`` with the pool's pids. The tests kill

- the child itself at random moments (its workers, its group commit or its background index
  step may be running): the reopened log verifies, keeps every acknowledged id exactly once at
  its receipt's index, holds the batch cut short entirely or not at all, its derived tables
  (blind index, subject keys) check out before and after the index catches up, and a subject
  search finds every entry naming the subject; and the workers do not outlive the child;
- one worker at a time: the child's calls keep succeeding (that call prepares in the child,
  the next starts a new pool) and nothing acknowledged is lost or doubled;
- the child right after its last batch, with the background index step held back: the index
  cursor stays in the store, and the next open finds it, searches catch up, and so on.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from sealtrail.log.auditlog import AuditLog
from sealtrail.log.derived import verify_derived
from sealtrail.log.protect import UNINDEXED_KEY

CHILD = Path(__file__).with_name("crash_child_workers.py")
KILLS = 10
WORKER_KILLS = 4

pytestmark = pytest.mark.slow


# -- the child --------------------------------------------------------------------------------


class Child:
    """A running ``crash_child_workers.py``, the lines it printed so far and the processes it
    started (seen whenever it printed its workers).

    Its workers inherit its stdout and stderr: while one lives on, the pipes stay open, so
    they are read by threads and :meth:`finish` ends what the child left before joining them.
    """

    def __init__(self, data_dir: Path, seed: int, mode: str, batches: int = -1) -> None:
        args = [sys.executable, str(CHILD), str(data_dir), str(seed), mode]
        if batches >= 0:
            args.append(str(batches))
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.lines: list[str] = []
        self.changed = threading.Condition()
        self.known: dict[int, Any] = {}  # pid -> psutil.Process of every descendant seen
        self.orphans: list[str] = []     # descendants still running after it ended
        self._err: list[str] = []
        self._readers = [threading.Thread(target=self._read, daemon=True),
                         threading.Thread(target=self._read_err, daemon=True)]
        for reader in self._readers:
            reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("workers "):
                self.look()
            with self.changed:
                self.lines.append(line)
                self.changed.notify_all()

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._err.append(line)

    def look(self) -> None:
        """Remember its live descendants (the workers and multiprocessing's resource
        tracker)."""
        try:
            for proc in psutil.Process(self.proc.pid).children(recursive=True):
                self.known.setdefault(proc.pid, proc)
        except psutil.Error:
            pass

    def wait_for(self, predicate: Any, timeout: float, what: str) -> None:
        """Wait until ``predicate(lines)`` holds (AssertionError naming ``what`` if not)."""
        with self.changed:
            ok = self.changed.wait_for(
                lambda: predicate(self.lines) or self.proc.poll() is not None, timeout)
            if not (ok and predicate(self.lines)):
                raise AssertionError(f"the child did not get to {what} "
                                     f"(exit {self.proc.poll()}); stderr: {self.stderr()}")

    def kill(self) -> None:
        self.look()
        os.kill(self.proc.pid, signal.SIGKILL)

    def finish(self, timeout: float = 30, grace: float = 0.0) -> int:
        """Wait for it to end; its exit code. Descendants still running ``grace`` seconds
        later are noted in :attr:`orphans` and killed; then its output is read to the end."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            with contextlib.suppress(OSError):  # every thread's stack, on its stderr
                os.kill(self.proc.pid, signal.SIGUSR1)
            time.sleep(1.0)
            self.kill()
            self.proc.wait(10)
            for reader in self._readers:
                reader.join(10)
            tail = "".join(self.lines[-5:])
            raise AssertionError(f"the child did not end within {timeout} s; last lines: "
                                 f"{tail}; stderr: {self.stderr()}") from exc
        finally:
            left = still_running(list(self.known.values()), grace)
            self.orphans = [f"{p.pid} ({' '.join(p.cmdline())[-60:]})" for p in left
                            if _alive(p)]
            kill_all(left)
            for reader in self._readers:
                reader.join(10)
            assert self.proc.stdout is not None
            assert self.proc.stderr is not None
            self.proc.stdout.close()
            self.proc.stderr.close()
        return code

    def stderr(self) -> str:
        return "".join(self._err)


@dataclass(slots=True)
class Run:
    """What one child printed: acknowledged ids, the batch cut short, the workers it had."""

    acked: dict[str, int] = field(default_factory=dict)  # id -> index from its receipt
    in_flight: list[str] = field(default_factory=list)  # ids of the batch cut short
    batches: int = 0                                     # batches tried
    workers: list[list[int]] = field(default_factory=list)  # each `workers` line
    extra: dict[str, list[str]] = field(default_factory=dict)  # other lines, by verb


def parse(lines: list[str]) -> Run:
    run = Run()
    for line in lines:
        if not line.endswith("\n"):  # cut off by the kill: that line was never complete
            break
        verb, _, rest = line.rstrip("\n").partition(" ")
        if verb == "try":
            run.in_flight = rest.split()
            run.batches += 1
        elif verb == "ack":
            for item in rest.split():
                index, ident = item.split(":", 1)
                run.acked[ident] = int(index)
            run.in_flight = []
        elif verb == "workers":
            run.workers.append([int(p) for p in rest.split()])
        else:
            run.extra[verb] = rest.split()
    return run


def workers_line(lines: list[str]) -> list[int]:
    """The pids of the child's last complete ``workers`` line ([] if none yet)."""
    for line in reversed(lines):
        if line.startswith("workers ") and line.endswith("\n"):
            return [int(p) for p in line.split()[1:]]
    return []


def still_running(procs: list[Any], grace: float) -> list[Any]:
    """Those of ``procs`` still alive (not even a zombie) after ``grace`` seconds."""
    _, alive = psutil.wait_procs(procs, timeout=grace)
    return [p for p in alive if _alive(p)]


def _alive(proc: Any) -> bool:
    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def kill_all(procs: list[Any]) -> None:
    for proc in procs:
        with suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(procs, timeout=5)


# -- what every reopen checks -------------------------------------------------------------------


@dataclass(slots=True)
class Seen:
    """What the test knows about the log after the rounds so far."""

    where: dict[str, int] = field(default_factory=dict)  # every stored id -> its index
    subjects: dict[str, set[int]] = field(default_factory=dict)  # subject -> entries naming it
    size: int = 0


@contextmanager
def reopened(data_dir: Path) -> Iterator[AuditLog]:
    with AuditLog.open(data_dir, create=False, workers=1) as log:
        yield log


def check_store(log: AuditLog, seen: Seen, acked: dict[str, int], run: Run) -> None:
    """The log verifies, every acknowledged id is stored once at its receipt's index, the
    batch cut short is all or nothing; ``seen`` takes in the new entries."""
    report = log.verify()
    size = log.size
    assert report.size == size >= seen.size
    for entry in log.entries(seen.size):
        ident = str(entry.event()["id"])
        assert ident not in seen.where, f"id {ident} is stored twice"
        seen.where[ident] = entry.index
        for subject in log.read(entry).get("subjects") or ():
            seen.subjects.setdefault(subject, set()).add(entry.index)
    seen.size = size
    lost = [i for i in acked if i not in seen.where]
    assert not lost, f"acknowledged ids lost: {lost[:3]} (of {len(lost)})"
    moved = [i for i, idx in acked.items() if seen.where[i] != idx]
    assert not moved, f"acknowledged ids not at their receipt's index: {moved[:3]}"
    stored = [i in seen.where for i in run.in_flight]
    assert all(stored) or not any(stored), f"batch cut short stored in part: {Counter(stored)}"


def check_index(log: AuditLog, seen: Seen) -> dict[str, int]:
    """The derived tables check out before and after the index catches up; afterwards no
    cursor is left and a subject search finds exactly the entries naming the subject.
    Returns the index status found on opening."""
    before = log.index_status()
    assert before["size"] == log.size
    cursor = log.store.meta().get(UNINDEXED_KEY)
    assert (cursor is None) == (before["indexed"] == before["size"]), (cursor, before)
    verify_derived(log)  # entries at/after the cursor must have no rows
    log.catch_up_index()
    assert log.index_status() == {"indexed": log.size, "size": log.size}
    assert UNINDEXED_KEY not in log.store.meta()
    verify_derived(log)
    for subject, indexes in seen.subjects.items():
        found = log.find("subject", subject)
        assert found == sorted(found, reverse=True)
        assert set(found) == indexes, (
            f"find('subject', {subject!r}): missing {sorted(indexes - set(found))[:5]}, "
            f"extra {sorted(set(found) - indexes)[:5]}")
    return before


# -- a) the child killed, its workers running ----------------------------------------------------


def test_sigkill_of_a_writer_with_workers_loses_nothing_acknowledged(tmp_path: Path) -> None:
    """Ten random SIGKILLs of a writer whose batches two workers prepare (each within a second
    of its first batch): every acknowledged id survives exactly once at its index, a batch cut
    short is atomic, the derived tables check out and subject searches find every entry naming
    the subject."""
    rng = random.Random(20261202)
    seen = Seen()
    acked: dict[str, int] = {}
    batches = 0
    behind = 0
    for round_no in range(KILLS):
        child = Child(tmp_path, rng.randrange(2**31), "forever")
        try:
            # From its first batch on: the pool starting, parts prepared, commits, index steps.
            child.wait_for(lambda lines: any(x.startswith("try ") for x in lines), 30,
                           "its first batch")
            time.sleep(rng.uniform(0.0, 1.0))
        finally:
            child.kill()
            code = child.finish(10)  # (orphans are test_workers_do_not_outlive_...'s subject)
        assert code == -signal.SIGKILL, child.stderr()
        run = parse(child.lines)
        batches += run.batches
        acked.update(run.acked)
        with reopened(tmp_path) as log:
            try:
                check_store(log, seen, acked, run)
                status = check_index(log, seen)
            except AssertionError as exc:
                raise AssertionError(f"round {round_no}: {exc}") from exc
        behind += status["indexed"] < status["size"]
    assert batches >= KILLS  # every child was appending when killed
    assert len(acked) > 3000
    assert sum(len(s) for s in seen.subjects.values()) > seen.size // 5
    print(f"{KILLS} kills: {batches} batches tried, {len(acked)} ids acknowledged, "
          f"{seen.size} stored, {len(seen.subjects)} subjects; index behind on {behind} "
          "reopens")


def test_workers_do_not_outlive_a_killed_writer(tmp_path: Path) -> None:
    """When the writer dies by SIGKILL its prepare workers exit too (none keeps running,
    holding a read handle of the log, as an orphan), whatever they were doing: starting up,
    preparing a part or waiting for the next one."""
    rng = random.Random(7)
    orphans: list[str] = []
    for delay in (0.1, 0.4, 0.8, 1.2, 1.6):
        child = Child(tmp_path, rng.randrange(2**31), "forever")
        try:
            child.wait_for(lambda lines: "ready\n" in lines, 30, "ready")
            time.sleep(delay + rng.uniform(0.0, 0.2))
            child.look()
        finally:
            child.kill()
            child.finish(10, grace=5.0)
        run = parse(child.lines)
        assert set(workers_line(child.lines)) <= set(child.known)
        orphans += [f"after {run.batches} batches tried: {o}" for o in child.orphans]
    assert not orphans, ("processes of the killed writer still running 5 s after it died: "
                         + "; ".join(orphans))


# -- b) a worker killed ---------------------------------------------------------------------------


def test_sigkill_of_a_worker_fails_no_call(tmp_path: Path) -> None:
    """A worker killed mid-run (four times, each in a new pool) makes no call fail: that call
    prepares in the writer, the next one starts a new pool; nothing acknowledged is lost or
    doubled and the log and its derived tables check out."""
    rng = random.Random(99)
    batches = 30
    child = Child(tmp_path, 4242, "count", batches)
    killed: list[int] = []
    pools: list[set[int]] = []
    try:
        for _ in range(WORKER_KILLS):
            # A pool none of whose workers was killed yet: the previous kill's pool is gone.
            child.wait_for(lambda lines: bool(workers_line(lines))
                           and not set(workers_line(lines)) & set(killed), 120,
                           f"a new pool after killing workers {killed}")
            pool = set(workers_line(child.lines))
            pools.append(pool)
            assert pool <= set(child.known)
            time.sleep(rng.uniform(0.0, 0.2))  # often while the next batch is prepared
            victim = rng.choice(sorted(pool))
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)
        code = child.finish(60, grace=3.0)  # (the resource tracker ends just after it)
    except BaseException:
        if child.proc.poll() is None:
            child.kill()
            child.finish(10)
        raise
    assert code == 0, child.stderr()
    run = parse(child.lines)
    assert "done" in run.extra, child.stderr()
    assert run.batches == batches
    assert not run.in_flight
    assert len(pools) == WORKER_KILLS
    assert len(set(map(frozenset, pools))) == WORKER_KILLS
    # Every kill sent exactly one call back to the writer's own process.
    assert run.extra["fallbacks"] == [str(WORKER_KILLS)], (run.extra, child.stderr())
    assert not child.orphans, f"processes outlived their writer's close: {child.orphans}"
    with reopened(tmp_path) as log:
        seen = Seen()
        check_store(log, seen, run.acked, run)
        assert seen.size == len(run.acked)
        check_index(log, seen)


# -- c) the child killed with the index step behind ----------------------------------------------


@pytest.mark.parametrize("catch_up", ["by_find", "by_catch_up_index"])
def test_sigkill_with_the_index_behind(tmp_path: Path, catch_up: str) -> None:
    """A writer killed with its last batches not yet indexed leaves the cursor in the store:
    the next open reports the index behind, the derived tables check out (nothing indexed
    past the cursor), a search still finds the newest entries (it catches up first), and
    afterwards the index is complete. Twice, the second time on a log indexed up to before."""
    seen = Seen()
    acked: dict[str, int] = {}
    for round_no in range(2):
        child = Child(tmp_path, 1000 + round_no, "behind", 2)
        code = child.finish(60)
        run = parse(child.lines)
        assert code == -signal.SIGKILL, child.stderr()
        assert run.batches == 2
        assert not run.in_flight
        acked.update(run.acked)
        indexed, size = map(int, run.extra["status"])
        assert indexed == seen.size < size == seen.size + len(run.acked)
        with reopened(tmp_path) as log:
            assert log.index_status() == {"indexed": indexed, "size": size}
            assert log.store.meta()[UNINDEXED_KEY] == str(indexed)
            verify_derived(log)
            check_store(log, seen, acked, run)
            newest: dict[str, set[int]] = {}  # subject -> the unindexed entries naming it
            for entry in log.entries(indexed):
                for subject in log.read(entry).get("subjects") or ():
                    newest.setdefault(subject, set()).add(entry.index)
            assert newest
            if catch_up == "by_catch_up_index":
                log.catch_up_index()
                assert log.index_status() == {"indexed": size, "size": size}
            for subject, indexes in newest.items():
                missing = indexes - set(log.find("subject", subject))
                assert not missing, (subject, sorted(missing)[:5])
            assert log.index_status() == {"indexed": size, "size": size}
            assert UNINDEXED_KEY not in log.store.meta()
            check_index(log, seen)
