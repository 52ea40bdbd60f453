"""The alternatives, run on the same events: stdlib logging, a hash chain, django-auditlog,
pymerkle (in memory and SQLite)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import django
from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from pymerkle import InmemoryTree, SqliteTree

from harness import REPEATS, Once, percentile, temp_dir, timed_calls
from workload import iter_batches, json_bytes

Events = list[dict[str, Any]]


def _file_logger(path: Path) -> tuple[logging.Logger, logging.FileHandler]:
    logger = logging.getLogger(f"sealtrail-bench.{path}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    return logger, handler


def _close(logger: logging.Logger, handler: logging.FileHandler) -> None:
    handler.flush()
    if handler.stream is not None:
        os.fsync(handler.stream.fileno())  # one fsync at the end (none per event)
    logger.removeHandler(handler)
    handler.close()


def logging_json(events: Events) -> Once:
    """The naive baseline: ``logger.info(json.dumps(event))`` to a FileHandler."""
    def once() -> tuple[int, float, list[float]]:
        with temp_dir("logging") as d:
            logger, handler = _file_logger(d / "audit.log")
            t0 = time.perf_counter()
            info = logger.info
            dumps = json.dumps
            for ev in events:
                info(dumps(ev))
            _close(logger, handler)
            return len(events), time.perf_counter() - t0, []
    return once


def logging_hash_chain(events: Events) -> Once:
    """The same, each line carrying ``sha256(prev_hash + line)`` (a hash chain)."""
    def once() -> tuple[int, float, list[float]]:
        with temp_dir("chain") as d:
            logger, handler = _file_logger(d / "audit.log")
            t0 = time.perf_counter()
            info = logger.info
            dumps = json.dumps
            sha256 = hashlib.sha256
            prev = bytes(32)
            for ev in events:
                line = dumps(ev)
                prev = sha256(prev + line.encode()).digest()
                info("%s %s", prev.hex(), line)
            _close(logger, handler)
            return len(events), time.perf_counter() - t0, []
    return once


# -- django-auditlog -------------------------------------------------------------------------


class Django:
    """django-auditlog's ``LogEntry`` on SQLite (Django's defaults: rollback journal,
    synchronous=FULL, autocommit: one transaction per ``create``)."""

    def __init__(self, directory: Path) -> None:
        settings.configure(
            DEBUG=False,
            USE_TZ=True,
            SECRET_KEY="sealtrail-bench",
            INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "auditlog"],
            DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3",
                                   "NAME": str(directory / "django.sqlite3")}},
            DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        )
        django.setup()
        call_command("migrate", verbosity=0, interactive=False)
        # Models can only be imported once Django is set up: look them up in the registry.
        self.model: Any = apps.get_model("auditlog", "LogEntry")
        content_types: Any = apps.get_model("contenttypes", "ContentType")
        self.content_type: Any = content_types.objects.get_for_model(
            apps.get_model("auth", "User"))

    def _fields(self, ev: dict[str, Any]) -> dict[str, Any]:
        return {
            "content_type": self.content_type,
            "object_pk": ev["target"]["id"],
            "object_repr": ev["target"]["name"],
            "action": self.model.Action.ACCESS,
            "changes": ev,
            "actor": None,
            "remote_addr": ev["actor"]["ip"],
            "additional_data": {"action": ev["action"], "outcome": ev["outcome"]},
        }

    def per_row(self, events: Events, n: int) -> Once:
        """``LogEntry.objects.create`` per event (autocommit: durable per row)."""
        create = self.model.objects.create

        def once() -> tuple[int, float, list[float]]:
            t0 = time.perf_counter()
            lat = timed_calls(lambda i: create(**self._fields(events[i])), list(range(n)))
            return n, time.perf_counter() - t0, lat
        return once

    def bulk(self, events: Events, batch: int = 1000) -> Once:
        """``LogEntry.objects.bulk_create`` in batches of ``batch`` (one transaction each)."""
        model = self.model

        def once() -> tuple[int, float, list[float]]:
            t0 = time.perf_counter()
            for i in range(0, len(events), batch):
                rows = [model(**self._fields(ev)) for ev in events[i:i + batch]]
                model.objects.bulk_create(rows, batch_size=batch)
            return len(events), time.perf_counter() - t0, []
        return once


# -- pymerkle --------------------------------------------------------------------------------


def pymerkle_inmemory(lines: list[bytes]) -> Once:
    """``InmemoryTree.append_entry`` per event (not durable: nothing reaches the disk)."""

    def once() -> tuple[int, float, list[float]]:
        tree = InmemoryTree()
        append = tree.append_entry
        t0 = time.perf_counter()
        for line in lines:
            append(line)
        return len(lines), time.perf_counter() - t0, []
    return once


def pymerkle_sqlite_single(lines: list[bytes], n: int) -> Once:
    """``SqliteTree.append_entry`` per event: one transaction (and fsync) each."""

    def once() -> tuple[int, float, list[float]]:
        with temp_dir("pymerkle-single") as d:
            tree = SqliteTree(str(d / "merkle.db"))
            try:
                t0 = time.perf_counter()
                lat = timed_calls(lambda i: tree.append_entry(lines[i]), list(range(n)))
                return n, time.perf_counter() - t0, lat
            finally:
                tree.close()
    return once


def pymerkle_sqlite_bulk(lines: list[bytes], batch: int = 1000) -> Once:
    """``SqliteTree.append_entries`` in batches of ``batch`` (one transaction each)."""

    def once() -> tuple[int, float, list[float]]:
        with temp_dir("pymerkle-bulk") as d:
            tree = SqliteTree(str(d / "merkle.db"))
            try:
                t0 = time.perf_counter()
                for i in range(0, len(lines), batch):
                    tree.append_entries(lines[i:i + batch])
                return len(lines), time.perf_counter() - t0, []
            finally:
                tree.close()
    return once


def _lines(n: int) -> Iterator[bytes]:
    for batch in iter_batches(n, 10_000):
        yield from (json_bytes(ev) for ev in batch)


class PymerkleProofs:
    """Proof generation times on a pymerkle tree of ``n`` entries (1-based indices)."""

    def __init__(self, rounds: list[list[float]], cons: list[list[float]], build_s: float):
        self.incl = rounds
        self.cons = cons
        self.build_s = build_s

    @staticmethod
    def _median_us(rounds: list[list[float]]) -> float:
        meds = sorted(percentile(r, 0.5) for r in rounds)
        return meds[len(meds) // 2] * 1e6

    @staticmethod
    def _p99_us(rounds: list[list[float]]) -> float:
        return percentile([x for r in rounds for x in r], 0.99) * 1e6

    @property
    def incl_median_us(self) -> float:
        return self._median_us(self.incl)

    @property
    def incl_p99_us(self) -> float:
        return self._p99_us(self.incl)

    @property
    def cons_median_us(self) -> float:
        return self._median_us(self.cons)

    @property
    def cons_p99_us(self) -> float:
        return self._p99_us(self.cons)


def _time_proofs(tree: Any, n: int, samples: int, seed: int) -> tuple[list[list[float]],
                                                                      list[list[float]]]:
    rnd = random.Random(seed)
    incl: list[list[float]] = []
    cons: list[list[float]] = []
    for _ in range(REPEATS):
        idx = [rnd.randrange(1, n + 1) for _ in range(samples)]
        firsts = [rnd.randrange(1, n) for _ in range(samples)]
        incl.append(timed_calls(tree.prove_inclusion, idx))
        cons.append(timed_calls(tree.prove_consistency, firsts))
    return incl, cons


def pymerkle_inmemory_proofs(n: int, samples: int, seed: int = 7) -> PymerkleProofs:
    """Build an ``InmemoryTree`` of ``n`` events, then time random proofs."""

    tree = InmemoryTree()
    t0 = time.perf_counter()
    for line in _lines(n):
        tree.append_entry(line)
    build = time.perf_counter() - t0
    incl, cons = _time_proofs(tree, n, samples, seed)
    return PymerkleProofs(incl, cons, build)


def pymerkle_sqlite_proofs(n: int, samples: int, seed: int = 7) -> PymerkleProofs:
    """Build a ``SqliteTree`` of ``n`` events (bulk), then time random proofs (cold cache
    first: its subroot cache fills as proofs are made)."""

    with temp_dir("pymerkle-proofs") as d:
        tree = SqliteTree(str(d / "merkle.db"))
        try:
            t0 = time.perf_counter()
            batch: list[bytes] = []
            for line in _lines(n):
                batch.append(line)
                if len(batch) == 10_000:
                    tree.append_entries(batch)
                    batch = []
            if batch:
                tree.append_entries(batch)
            build = time.perf_counter() - t0
            incl, cons = _time_proofs(tree, n, samples, seed)
        finally:
            tree.close()
    return PymerkleProofs(incl, cons, build)
