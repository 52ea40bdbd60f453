"""Attack: exporting audit data without the export being recorded.

The trail audits its own readers: every export appends an ``audit.export`` event. If the record
were written after the content, anything that stops the export midway (the reader closing the
pipe, a syslog collector refusing or dropping the connection, a crash) would leave personal data
out of the building with no trace. The CLI records the read first and serves nothing it could
not record. The CLI in-process (``tests/clirun.py``) and, for the closed pipe, a real CLI process
on a real pipe; real sockets on 127.0.0.1, a real SQLite store whose writes fail.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sealtrail import AuditLog
from tests.clirun import Ran, sealtrail
from tests.monitor.receivers import StreamListener
from tests.ports import free_port

SEALTRAIL = [sys.executable, "-m", "sealtrail.cli"]


def run(*args: str) -> Ran[str]:
    return sealtrail(*args, text=True)


def events(data: Path) -> list[dict[str, Any]]:
    """Every event of the log, opened."""
    with AuditLog.open(data) as log:
        return [log.read(e) for e in log.entries(0)]


def exports(data: Path) -> list[dict[str, Any]]:
    return [ev for ev in events(data) if ev["action"] == "audit.export"]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    with AuditLog.open(d) as log:
        log.append_many([{"action": "doc.read", "outcome": "success", "category": "data_access",
                          "actor": {"id": f"u{i}", "name": "Jane Doe"}} for i in range(8)])
    return d


def break_storage(data: Path) -> None:
    """Make every write of the log's store fail (as a full or failing disk would)."""
    db = sqlite3.connect(data / "default" / "log.db")
    try:
        db.executescript(
            "CREATE TRIGGER fail_insert BEFORE INSERT ON chunks "
            "BEGIN SELECT RAISE(ABORT, 'disk full (test)'); END;"
            "CREATE TRIGGER fail_update BEFORE UPDATE ON chunks "
            "BEGIN SELECT RAISE(ABORT, 'disk full (test)'); END;")
    finally:
        db.close()


# -- the read is recorded even when the output fails ---------------------------------------------

def test_export_to_a_closed_pipe_is_recorded(data: Path) -> None:
    """A subprocess: its standard output is a pipe with no reader (EPIPE on the first write)."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first byte
    try:
        proc = subprocess.run([*SEALTRAIL, "--data", str(data), "export", "--format", "jsonl"],
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120,
                              check=False, env={**os.environ, "COLUMNS": "200"})
    finally:
        os.close(write_end)
    assert proc.returncode == 1, proc.stderr
    assert "output was closed" in proc.stderr
    assert "Traceback" not in proc.stderr
    (record,) = exports(data)
    assert record["metadata"]["results"] == 8
    assert record["metadata"]["role"] == "operator"
    assert record["metadata"]["filter"]["format"] == "jsonl"
    assert record["metadata"]["filter"]["tree_size"] == 8


def test_syslog_collector_refusing_the_connection_is_recorded(data: Path) -> None:
    port = free_port()  # nothing listens there
    res = run("--data", str(data), "export", "--format", "syslog", "--syslog",
              f"127.0.0.1:{port}")
    assert res.returncode == 1
    assert f"127.0.0.1:{port}" in res.stderr
    (record,) = exports(data)
    assert record["metadata"]["filter"]["forwarded_to"] == f"127.0.0.1:{port}"
    assert record["metadata"]["results"] == 8


class SlammingCollector:
    """A TCP collector that accepts each connection and resets it at once."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.accepted = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
            conn.close()  # linger 0: a reset, not a graceful close

    def close(self) -> None:
        # close() alone does not wake a thread blocked in accept() (the join then waited its
        # full 5 s); shutdown() does, and accept() raises.
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(5)


@pytest.fixture
def slamming() -> Iterator[SlammingCollector]:
    collector = SlammingCollector()
    try:
        yield collector
    finally:
        collector.close()


def test_syslog_collector_dropping_the_connection_is_recorded(data: Path,
                                                              slamming: SlammingCollector
                                                              ) -> None:
    res = run("--data", str(data), "export", "--format", "syslog", "--syslog",
              f"127.0.0.1:{slamming.port}")
    # Whether the reset is noticed before the last write is up to the kernel; either way the
    # read was recorded before the first message left.
    assert res.returncode in (0, 1), res.stderr
    assert slamming.accepted >= 1
    (record,) = exports(data)
    assert record["metadata"]["filter"]["forwarded_to"] == f"127.0.0.1:{slamming.port}"


# -- a read that cannot be recorded is not served ------------------------------------------------

def test_no_record_no_export_file(data: Path, tmp_path: Path) -> None:
    break_storage(data)
    out = tmp_path / "export.jsonl"
    res = run("--data", str(data), "export", "--format", "jsonl", "--out", str(out))
    assert res.returncode != 0
    assert "disk full (test)" in res.stderr
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["data"]  # no temporary file either
    previous = tmp_path / "kept.csv"
    previous.write_text("yesterday's export\n")
    res = run("--data", str(data), "export", "--format", "csv", "--out", str(previous))
    assert res.returncode != 0
    assert previous.read_text() == "yesterday's export\n"  # left as it was


def test_no_record_nothing_on_stdout(data: Path) -> None:
    break_storage(data)
    res = run("--data", str(data), "export", "--format", "ocsf")
    assert res.returncode != 0
    assert res.stdout == ""
    assert "Jane Doe" not in res.stderr


@pytest.mark.parametrize("name", ["evidence.zip", "evidence.tar.gz"])
def test_no_record_no_bundle(data: Path, tmp_path: Path, name: str) -> None:
    break_storage(data)
    bundle = tmp_path / name
    res = run("--data", str(data), "export", "--bundle", str(bundle))
    assert res.returncode != 0
    assert "disk full (test)" in res.stderr
    assert not bundle.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["data"]


def test_no_record_nothing_sent_to_syslog(data: Path) -> None:
    break_storage(data)
    with StreamListener() as listener:
        res = run("--data", str(data), "export", "--format", "syslog", "--syslog",
                  f"127.0.0.1:{listener.port}")
        assert res.returncode != 0
        assert "disk full (test)" in res.stderr
        assert listener.messages == []


def test_the_record_precedes_the_output(data: Path, tmp_path: Path) -> None:
    """The export event is appended before the export is taken from a fixed tree size: it is
    not part of the export, and the bundle's own checkpoint covers it."""
    out = tmp_path / "export.jsonl"
    assert run("--data", str(data), "export", "--format", "jsonl", "--out",
               str(out)).returncode == 0
    assert len(out.read_text().splitlines()) == 8
    bundle = tmp_path / "evidence.zip"
    res = run("--data", str(data), "export", "--bundle", str(bundle))
    assert res.returncode == 0, res.stderr
    with zipfile.ZipFile(bundle) as z:
        assert len(z.read("events.jsonl").splitlines()) == 9  # 8 events and the first export
    first, second = exports(data)
    assert first["metadata"]["results"] == 8
    assert second["metadata"]["results"] == 9
