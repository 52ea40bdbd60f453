"""Published checkpoints (issue 11), tried as the attacker would.

* A checkpoint in ``state`` that the log's key did not sign (a root edited in place, a note
  signed by the attacker's own key for the same origin) is never published: the receivers get
  nothing and the refusal is reported.
* A log rolled back to an older genuine head (entries deleted, the old note put back) is not
  published as if it were current: the head memory says it went backwards.
* What a published copy is for: the attacker who also deletes the head memory passes a plain
  ``sealtrail verify``, but not ``sealtrail verify --checkpoint`` with the note an outsider got
  from the webhook.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from sealtrail import AuditLog
from sealtrail.core.checkpoint import Checkpoint
from sealtrail.core.note import Signer
from sealtrail.log.headmemory import FILE
from sealtrail.monitor.publish import Publisher, PublishSettings
from tests.clirun import sealtrail
from tests.faults.test_rollback_to_older_signed_head import _roll_back
from tests.monitor.receivers import UdpListener, WebhookReceiver, wait_until

SECRET = "published-checkpoint-secret"


def _events(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"actor": {"id": f"u{i}"}, "action": "doc.read", "outcome": "success"}
            for i in range(start, start + n)]


def _publisher(alog: AuditLog, receiver: WebhookReceiver, udp: UdpListener,
               reported: list[tuple[str, str]]) -> Publisher:
    sinks = ({"type": "webhook", "url": receiver.url, "secret": SECRET},
             {"type": "syslog", "host": "127.0.0.1", "port": udp.port})
    return Publisher(PublishSettings(sinks=sinks), lambda: [("default", alog)],
                     on_failure=lambda what, why: reported.append((what, why)))


def _set_stored_note(db_path: Path, note: str) -> None:
    with closing(sqlite3.connect(db_path)) as db, db:
        db.execute("UPDATE state SET checkpoint = ?", (note,))


def _forgeries(alog: AuditLog) -> list[str]:
    genuine = alog.checkpoint()
    cp = genuine.checkpoint
    body_end = genuine.note.index("\n\n")
    # 1. the root edited in place, the genuine signature kept
    other_root = Checkpoint(cp.origin, cp.size, bytes(32)).format()
    edited = other_root[:-1] + genuine.note[body_end:]
    # 2. a well-formed note for the same origin, signed by a key the attacker made
    mallory = Signer.from_seed(cp.origin, b"\x07" * 32)
    own_key = mallory.sign(Checkpoint(cp.origin, cp.size + 5, bytes(32)).format())
    return [edited, own_key]


def test_a_checkpoint_the_log_did_not_sign_is_never_published(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path) as alog, WebhookReceiver() as receiver, \
            UdpListener() as udp:
        alog.append_many(_events(4))
        genuine = alog.checkpoint().note
        db = tmp_path / "default" / "log.db"
        for forged in _forgeries(alog):
            _set_stored_note(db, forged)
            assert alog.checkpoint().note == forged  # what a round reads
            reported: list[tuple[str, str]] = []
            pub = _publisher(alog, receiver, udp, reported)
            try:
                failures = pub.publish_once()
            finally:
                pub.stop()
            assert set(failures) == {"log default"}
            assert "not published" in failures["log default"]
            assert [what for what, _ in reported] == ["log default"]
            assert pub.stats.refused == 1
            assert pub.stats.published == {}
        assert receiver.requests == []
        assert udp.datagrams == []
        # Put back, the genuine checkpoint goes out.
        _set_stored_note(db, genuine)
        pub = _publisher(alog, receiver, udp, [])
        try:
            assert pub.publish_once() == {}
        finally:
            pub.stop()
        assert json.loads(receiver.requests[0].body)["note"] == genuine
        assert wait_until(lambda: len(udp.datagrams) == 1)


def test_a_rolled_back_log_is_not_published_as_current(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path) as alog:
        alog.append_many(_events(10))
        old = alog.checkpoint().note
        alog.append_many(_events(20, 10))
    _roll_back(tmp_path / "default" / "log.db", 10, old)
    with AuditLog.open(tmp_path, create=False) as alog, WebhookReceiver() as receiver, \
            UdpListener() as udp:
        assert alog.checkpoint().note == old  # genuine, verifies with the key, but older
        reported: list[tuple[str, str]] = []
        pub = _publisher(alog, receiver, udp, reported)
        try:
            failures = pub.publish_once()
        finally:
            pub.stop()
        assert "rolled back" in failures["log default"]
        assert "rolled back" in reported[0][1]
        assert receiver.requests == []
        assert udp.datagrams == []


def test_an_outsiders_published_copy_catches_a_rollback_the_machine_forgot(
        tmp_path: Path) -> None:
    with AuditLog.open(tmp_path) as alog, WebhookReceiver() as receiver, \
            UdpListener() as udp:
        alog.append_many(_events(10))
        old = alog.checkpoint().note
        alog.append_many(_events(20, 10))
        vkey = alog.vkey()
        pub = _publisher(alog, receiver, udp, [])
        try:
            assert pub.publish_once() == {}
        finally:
            pub.stop()
    # The outsider keeps what the webhook brought.
    kept = tmp_path / "kept.note"
    kept.write_text(json.loads(receiver.requests[0].body)["note"])
    # The attacker rolls the log back to the genuine head at 10 and deletes the memory too.
    _roll_back(tmp_path / "default" / "log.db", 10, old)
    (tmp_path / "default" / FILE).unlink()
    # --no-derived: the tree and its checkpoints only (a careful attacker also trims the
    # blind-index rows _roll_back leaves behind; that is another test's business).
    verify = ["--data", str(tmp_path), "verify", "--no-derived", "--vkey", vkey]
    plain = sealtrail(*verify, text=True)
    assert plain.returncode == 0, plain.stdout + plain.stderr  # nothing on the machine knows
    (tmp_path / "default" / FILE).unlink(missing_ok=True)  # what that verify remembered
    caught = sealtrail(*verify, "--checkpoint", str(kept), text=True)
    assert caught.returncode == 1, caught.stdout + caught.stderr
    assert "TAMPERED: truncated" in caught.stdout
    assert "the trusted checkpoint shows 30" in caught.stdout
