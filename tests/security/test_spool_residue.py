"""Attack: reading delivered audit events back out of the SDK's spool file.

Someone who can read the application's disk (a backup, a stolen volume, a second user on the
host) looks for events the client already delivered in ``spool.db`` and its ``-wal``/``-shm``.
SQLite normally leaves deleted rows in free page space and older page copies in the WAL; the
spool zeroes deleted rows (``secure_delete``) and empties the WAL after each delivered batch,
so nothing of a delivered event remains while the client is still running.
"""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from sealtrail.client import Client
from sealtrail.client.spool import Spool
from tests.client.service import Service, make_service

MARKER = "ZQXJ-secret-7c41e9-patient-ssn-000-12-3456"


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    """A real service on loopback (stopped at the end)."""
    svc = make_service(tmp_path / "data")
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()


def encodings(text: str) -> list[bytes]:
    """The marker as UTF-8, UTF-16 (both orders) and base64 at the three byte alignments."""
    raw = text.encode()
    out = [raw, text.encode("utf-16-le"), text.encode("utf-16-be")]
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw)[4:-4]  # drop the parts the prefix and
        out.append(encoded)                                   # padding change
    return out


def residue(spool: Path) -> list[str]:
    """Which files of the spool still hold the marker in some encoding."""
    found = []
    for f in (spool, spool.with_name(spool.name + "-wal"), spool.with_name(spool.name + "-shm")):
        if not f.exists():
            continue
        data = f.read_bytes()
        found += [f"{f.name}: {enc[:12]!r}" for enc in encodings(MARKER) if enc in data]
    return found


def event(n: int) -> dict[str, object]:
    return {"actor": {"id": f"user-{n}", "name": f"{MARKER} {n}"}, "action": "record.read",
            "outcome": "success", "target": {"type": "record", "id": f"r{n}"},
            "metadata": {"note": MARKER, "n": n}, "subjects": [f"{MARKER}-{n}"]}


def test_delivered_events_leave_no_bytes_in_the_spool(service: Service, tmp_path: Path) -> None:
    spool = tmp_path / "spool.db"
    service.stop()                      # the events wait in the spool first
    with Client(service.url, service.ingest, spool_path=spool, batch_size=25,
                max_backoff=0.2) as client:
        for n in range(120):
            client.record(event(n))
        assert client.pending == 120
        assert residue(spool), "control: the spooled events must be found by this test"
        service.start()
        assert client.flush(30)
        assert client.delivered == 120
        assert client.pending == 0
        # The client is still open (its connection to the spool too): the bytes must be gone.
        assert residue(spool) == []
        assert spool.with_name("spool.db-wal").stat().st_size == 0
        # Later events are spooled and delivered the same way.
        client.record(event(999))
        assert client.flush(30)
        assert residue(spool) == []
    service.stop()
    assert len(service.stored()) == 121


def test_a_second_connection_holding_the_wal_delays_the_scrub_only(tmp_path: Path) -> None:
    """While another connection reads, the WAL cannot be emptied; the next batch empties it."""
    path = tmp_path / "spool.db"
    spool = Spool(path)
    try:
        seqs = [spool.put("default", f"id-{n}", MARKER.encode() + bytes([n]), 0.0)
                for n in range(10)]
        reader = sqlite3.connect(path, isolation_level=None)
        try:
            reader.execute("BEGIN")
            reader.execute("SELECT COUNT(*) FROM events").fetchone()  # holds a snapshot
            spool.remove(seqs[:5])
            assert spool.count("default") == 5
            assert residue(path)                     # the reader's snapshot still needs them
            reader.execute("COMMIT")
        finally:
            reader.close()
        spool.remove(seqs[5:])
        assert spool.count("default") == 0
        assert residue(path) == []
    finally:
        spool.close()
