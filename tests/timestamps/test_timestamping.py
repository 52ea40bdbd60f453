"""Timestamps on a log (``sealtrail.log.timestamping``) and the service's job, over HTTP against
the real responder on loopback: the setting as a log entry, stamping and recording, checking,
and every way the TSA can fail without anything being recorded."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sealtrail.core.errors import ConfigError, TamperError, ValidationError
from sealtrail.core.policy import FieldPolicy
from sealtrail.core.tsp import load_anchors
from sealtrail.log.auditlog import AuditLog
from sealtrail.log.timestamping import (
    ACTION_SET,
    ACTION_STAMP,
    CONFIG_AT_META,
    CONFIG_META,
    PART_CHARS,
    TsaConfig,
    TsaError,
    load_config,
    recorded,
    remove_config,
    set_config,
    stamp,
    verify_timestamps,
)
from sealtrail.server.logs import Logs
from sealtrail.server.timestamp_job import TimestampJob
from tests.timestamps.tsa import Authority, Responder

OPS = {"id": "ops"}


def event(i: int) -> dict[str, object]:
    return {"actor": {"id": f"u{i}", "name": f"User {i}"}, "action": "doc.read",
            "outcome": "success", "category": "data_access", "target": {"id": f"doc-{i}"}}


@pytest.fixture
def alog(tmp_path: Path) -> Iterator[AuditLog]:
    """An encrypted log (the default) with a few entries."""
    log = AuditLog.open(tmp_path, "default")
    log.append_many([event(i) for i in range(5)])
    yield log
    log.close()


def edit_meta(alog: AuditLog, items: dict[str, str]) -> None:
    """What someone with the database does: write settings rows directly."""
    with alog.store.transaction():
        alog.store.set_meta(items)


def configure(alog: AuditLog, tsa: Responder, authority: Authority, every: int = 60) -> None:
    set_config(alog, TsaConfig(tsa.url, authority.pem().decode(), every), actor=OPS)


# -- the setting ----------------------------------------------------------------------------------

def test_the_setting_is_an_entry_and_loads(alog: AuditLog, responder: Responder,
                                           authority: Authority) -> None:
    assert load_config(alog) is None
    configure(alog, responder, authority, every=120)
    config = load_config(alog)
    assert config is not None
    assert (config.url, config.every) == (responder.url, 120)
    entry = alog.entry(alog.size - 1).event()
    assert entry["action"] == ACTION_SET
    assert entry["target"]["id"].startswith("tsa@sha256:")
    assert responder.url in entry["reason"]


def test_a_setting_written_into_the_table_is_refused(alog: AuditLog, responder: Responder,
                                                     authority: Authority) -> None:
    """A TSA setting no entry of the log made (the settings table edited by hand)."""
    text = ('{"ca_pem":' + repr(authority.pem().decode()).replace("'", '"') +
            ',"every":60,"url":"http://evil.example/tsr"}')
    edit_meta(alog, {CONFIG_META: text, CONFIG_AT_META: "3"})
    with pytest.raises(TamperError, match="no entry of the log set it"):
        load_config(alog)


def test_an_edited_setting_is_refused(alog: AuditLog, responder: Responder,
                                      authority: Authority) -> None:
    configure(alog, responder, authority)
    text = alog.store.meta()[CONFIG_META]
    edit_meta(alog, {CONFIG_META: text.replace("127.0.0.1", "10.9.9.9")})
    with pytest.raises(TamperError, match="differs from the one entry"):
        load_config(alog)


def test_a_setting_pointed_back_at_an_older_entry_is_refused(
        alog: AuditLog, responder: Responder, authority: Authority) -> None:
    configure(alog, responder, authority, every=60)
    old = alog.store.meta()
    configure(alog, responder, authority, every=90)
    edit_meta(alog, {CONFIG_META: old[CONFIG_META], CONFIG_AT_META: old[CONFIG_AT_META]})
    with pytest.raises(TamperError, match="the latest that set one"):
        load_config(alog)


def test_remove_turns_stamping_off(alog: AuditLog, responder: Responder,
                                   authority: Authority) -> None:
    configure(alog, responder, authority)
    remove_config(alog, actor=OPS)
    assert load_config(alog) is None
    with pytest.raises(ConfigError, match="no timestamp authority"):
        stamp(alog, datetime.now(UTC))
    with pytest.raises(ConfigError, match="no timestamp authority configured"):
        remove_config(alog, actor=OPS)


def test_bad_settings_name_the_field(authority: Authority) -> None:
    with pytest.raises(ValidationError, match="url"):
        TsaConfig("ftp://tsa.example", authority.pem().decode())
    with pytest.raises(ValidationError, match="every"):
        TsaConfig("http://tsa.example", authority.pem().decode(), 0)
    with pytest.raises(ValidationError, match="ca_cert"):
        TsaConfig("http://tsa.example", "not pem")


def test_a_log_that_seals_the_token_fields_still_keeps_stamps_readable(
        tmp_path: Path, responder: Responder, authority: Authority) -> None:
    """The policy seals reason and the target, where a stamp keeps its token and head: those
    of sealtrail's own stamp entries stay clear (core/reserved.py), a client's are sealed."""
    policy = FieldPolicy.parse(["reason", "metadata", "target.id", "target.type"])
    log = AuditLog.open(tmp_path, "sealed", policy=policy)
    try:
        client = log.append({**event(1), "reason": "private reason"})
        configure(log, responder, authority)
        done = stamp(log, datetime.now(UTC))
        raw = log.entry(done.index).event()
        assert "sealed" not in raw
        assert raw["target"]["type"] == "checkpoint"
        assert base64.b64decode(raw["reason"])[:1] == b"\x30"
        assert set(log.entry(client.index).event()["sealed"]["fields"]) == {
            "reason", "target.id"}
        assert load_config(log) is not None
        checked = verify_timestamps(log, load_anchors(authority.pem()))
        assert [(r.ok, r.index) for r in checked] == [(True, done.index)], checked
    finally:
        log.close()


# -- stamping -------------------------------------------------------------------------------------

def test_a_stamp_is_recorded_in_clear_and_verifies(alog: AuditLog, responder: Responder,
                                                   authority: Authority) -> None:
    configure(alog, responder, authority)
    head = alog.checkpoint().checkpoint
    done = stamp(alog, datetime.now(UTC))
    assert (done.size, done.root, done.parts) == (head.size, head.root, 1)
    assert done.index == head.size  # recorded right after the head it stamps
    # In clear in the encrypted log: what verify needs is outside the sealed fields.
    raw = alog.entry(done.index).event()
    assert raw["action"] == ACTION_STAMP
    assert raw["target"]["id"].startswith(f"{head.size} {base64.b64encode(head.root).decode()} "
                                          "1/1 sha256:")
    assert "reason" not in raw.get("sealed", {}).get("fields", [])
    assert base64.b64decode(raw["reason"])[:1] == b"\x30"
    results = verify_timestamps(alog, load_anchors(authority.pem()))
    assert [(r.ok, r.size, r.index) for r in results] == [(True, head.size, done.index)]
    assert results[0].gen_time == done.info.gen_time


def test_a_large_token_is_split_over_entries_and_put_back(
        alog: AuditLog, authority: Authority) -> None:
    """A TSA that sends a long chain: the token is longer than one entry's reason holds."""
    padding = [Authority.make(f"unrelated CA {i}").cert for i in range(6)]
    key, cert = authority.issue_tsa()
    tsa = Responder(key, cert, chain=padding)
    tsa.start()
    try:
        configure(alog, tsa, authority)
        done = stamp(alog, datetime.now(UTC))
    finally:
        tsa.stop()
    assert done.parts >= 2
    (item,) = recorded(alog)
    assert item.token is not None
    assert len(base64.b64encode(item.token)) > PART_CHARS
    assert [r.ok for r in verify_timestamps(alog, load_anchors(authority.pem()))] == [True]


def test_a_tsa_that_is_down_records_nothing(alog: AuditLog, responder: Responder,
                                            authority: Authority) -> None:
    configure(alog, responder, authority)
    size = alog.size
    responder.stop()
    with pytest.raises(TsaError, match=rf"TSA {responder.url}: unreachable"):
        stamp(alog, datetime.now(UTC))
    assert alog.size == size
    assert recorded(alog) == []


@pytest.mark.parametrize(("mode", "message"), [
    ("reject", "did not grant the request .status rejection"),
    ("http500", "HTTP 500"),
    ("huge", "larger than 65536 bytes"),
    ("wrong_nonce", r"TSTInfo\.nonce"),
    ("wrong_imprint", r"TSTInfo\.messageImprint"),
    ("tamper", "message-digest"),
])
def test_a_tsa_that_misbehaves_records_nothing(alog: AuditLog, responder: Responder,
                                               authority: Authority, mode: str,
                                               message: str) -> None:
    configure(alog, responder, authority)
    size = alog.size
    responder.mode = mode
    with pytest.raises(TsaError, match=message):
        stamp(alog, datetime.now(UTC))
    assert alog.size == size


def test_a_tsa_chaining_to_another_ca_records_nothing(
        alog: AuditLog, responder: Responder, authority: Authority) -> None:
    other = Authority.make("the CA the operator configured")
    set_config(alog, TsaConfig(responder.url, other.pem().decode(), 60), actor=OPS)
    size = alog.size
    with pytest.raises(TsaError, match="not issued by a trusted CA"):
        stamp(alog, datetime.now(UTC))
    assert alog.size == size


def test_a_tsa_clock_far_from_ours_records_nothing(alog: AuditLog, responder: Responder,
                                                   authority: Authority) -> None:
    configure(alog, responder, authority)
    with pytest.raises(TsaError, match="one of the clocks is wrong"):
        stamp(alog, datetime.now(UTC) + timedelta(hours=3))


# -- checking -------------------------------------------------------------------------------------

def test_verify_reports_each_stamp_and_a_wrong_anchor(alog: AuditLog, responder: Responder,
                                                      authority: Authority) -> None:
    configure(alog, responder, authority)
    first = stamp(alog, datetime.now(UTC))
    alog.append(event(9))
    second = stamp(alog, datetime.now(UTC))
    results = verify_timestamps(alog, load_anchors(authority.pem()))
    assert [(r.size, r.ok) for r in results] == [(first.size, True), (second.size, True)]
    stranger = Authority.make("an auditor's other CA")
    wrong = verify_timestamps(alog, load_anchors(stranger.pem()))
    assert not any(r.ok for r in wrong)
    assert "not issued by a trusted CA" in wrong[0].problem


# -- the service's job ----------------------------------------------------------------------------

def test_the_job_stamps_when_due_and_the_log_changed(tmp_path: Path, responder: Responder,
                                                     authority: Authority) -> None:
    now = [datetime.now(UTC)]
    log = AuditLog.open(tmp_path, "shop")
    log.append(event(1))
    configure(log, responder, authority, every=60)
    log.close()
    logs = Logs(tmp_path)
    job = TimestampJob(logs, lambda: now[0], delay=0, interval=0)
    try:
        job.run_all()
        run = job.results["shop"]
        assert run.ok, run.problem
        assert run.stamped_size is not None
        shop = logs.get("shop")
        assert len(recorded(shop)) == 1
        # Changed but not due yet: no stamp.
        shop.append(event(2))
        now[0] += timedelta(seconds=30)
        job.run_all()
        assert len(recorded(shop)) == 1
        # Changed and due: stamped.
        now[0] += timedelta(seconds=31)
        job.run_all()
        assert [s.size for s in recorded(shop)] == [2, 4]
        # Due by time but nothing new since: no second stamp of the same state.
        now[0] += timedelta(seconds=61)
        job.run_all()
        assert len(recorded(shop)) == 2
        # The TSA goes down: logged and kept, nothing recorded; it comes back: stamped.
        shop.append(event(3))
        now[0] += timedelta(seconds=61)
        responder.mode = "http500"
        job.run_all()
        assert not job.results["shop"].ok
        assert "HTTP 500" in job.results["shop"].problem
        assert len(recorded(shop)) == 2
        responder.mode = "ok"
        job.run_all()
        assert job.results["shop"].ok
        assert len(recorded(shop)) == 3
        checked = verify_timestamps(shop, load_anchors(authority.pem()))
        assert all(r.ok for r in checked), [r.problem for r in checked if not r.ok]
    finally:
        logs.close()


def test_a_restarted_job_reads_the_last_stamp_from_the_log(
        tmp_path: Path, responder: Responder, authority: Authority) -> None:
    log = AuditLog.open(tmp_path, "shop")
    log.append(event(1))
    configure(log, responder, authority, every=60)
    stamp(log, datetime.now(UTC))
    log.append(event(2))
    log.close()
    logs = Logs(tmp_path)
    try:
        job = TimestampJob(logs, lambda: datetime.now(UTC), delay=0, interval=0)
        job.run_all()  # stamped a moment ago (by the log's entry): not due
        assert "shop" not in job.results
        assert len(recorded(logs.get("shop"))) == 1
        later = TimestampJob(logs, lambda: datetime.now(UTC) + timedelta(seconds=61),
                             delay=0, interval=0)
        later.run_all()
        assert later.results["shop"].ok
    finally:
        logs.close()


def test_the_job_skips_logs_without_a_tsa(tmp_path: Path) -> None:
    log = AuditLog.open(tmp_path, "plain")
    log.append(event(1))
    log.close()
    logs = Logs(tmp_path)
    try:
        job = TimestampJob(logs, lambda: datetime.now(UTC), delay=0, interval=0)
        job.run_all()
        assert job.results == {}
        assert recorded(logs.get("plain")) == []
    finally:
        logs.close()


def test_the_job_runs_on_its_own_thread_and_stops(tmp_path: Path, responder: Responder,
                                                  authority: Authority) -> None:
    log = AuditLog.open(tmp_path, "shop")
    log.append(event(1))
    configure(log, responder, authority, every=60)
    log.close()
    logs = Logs(tmp_path)
    job = TimestampJob(logs, lambda: datetime.now(UTC), delay=0, interval=0.05)
    try:
        job.start()
        deadline = time.monotonic() + 10
        while "shop" not in job.results and time.monotonic() < deadline:
            time.sleep(0.02)
        job.stop()
        assert job.results["shop"].ok, job.results["shop"].problem
        assert len(recorded(logs.get("shop"))) == 1
    finally:
        job.stop()
        logs.close()


def test_an_interval_of_zero_turns_the_job_off(tmp_path: Path) -> None:
    logs = Logs(tmp_path)
    job = TimestampJob(logs, lambda: datetime.now(UTC), delay=0, interval=0)
    job.start()
    assert not any(t.name == "sealtrail-timestamps" for t in threading.enumerate())
    job.stop()
