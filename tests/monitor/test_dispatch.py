"""The dispatcher: durable outbox, retries, dedup, failure callback, flush, isolation of sinks."""

from __future__ import annotations

import stat
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from sealtrail.core.errors import ConfigError, StorageError, ValidationError
from sealtrail.monitor.dispatch import Dispatcher, RetryPolicy, backoff
from sealtrail.monitor.sinks import SinkError, SyslogSink, WebhookSink
from tests.monitor.receivers import UdpListener, WebhookReceiver, parse_rfc5424, wait_until
from tests.monitor.test_sinks import ALERT, SECRET

FAST = RetryPolicy(base=0.005, cap=0.05, failure_threshold=3)


class Recorder:
    """A sink that keeps what it is sent; ``gate`` (when set) blocks each send until opened."""

    def __init__(self, name: str, gate: threading.Event | None = None) -> None:
        self.name = name
        self.sent: list[Mapping[str, Any]] = []
        self.closed = False
        self._gate = gate

    def send(self, alert: Mapping[str, Any]) -> None:
        if self._gate is not None and not self._gate.wait(10):
            raise SinkError("gate never opened")
        self.sent.append(alert)

    def close(self) -> None:
        self.closed = True


class Failing:
    """A sink whose receiver is always down."""

    def __init__(self, name: str) -> None:
        self.name = name

    def send(self, alert: Mapping[str, Any]) -> None:
        raise SinkError("down")

    def close(self) -> None:
        """Nothing to close."""


def _alert(n: int, **extra: Any) -> dict[str, Any]:
    return {**ALERT, "id": f"0191f0c2-0000-7000-8000-{n:012d}", **extra}


def test_backoff_doubles_up_to_the_cap_with_equal_jitter() -> None:
    """Retry k waits between half and all of min(cap, base * 2**k)."""
    for attempt in range(40):
        full = min(300.0, 1.0 * 2 ** attempt)
        assert backoff(attempt, base=1.0, cap=300.0, jitter=0.0) == full / 2
        assert backoff(attempt, base=1.0, cap=300.0, jitter=0.999999) == pytest.approx(
            full, rel=1e-5)
    assert backoff(10_000, base=1.0, cap=300.0, jitter=0.5) <= 300.0


def test_a_webhook_delivery_is_retried_until_the_receiver_recovers(tmp_path: Path) -> None:
    """Two 500s, then 200: three identical, correctly signed requests, one delivery."""
    with WebhookReceiver() as receiver:
        receiver.fail_next(2, 500)
        dispatcher = Dispatcher([WebhookSink(receiver.url, SECRET, name="hook")],
                                tmp_path / "outbox.db", policy=FAST)
        try:
            assert dispatcher.submit(ALERT) == 1
            assert dispatcher.flush(10)
            stats = dispatcher.stats()["hook"]
        finally:
            dispatcher.close()
    assert len(receiver.requests) == 3
    assert {r.body for r in receiver.requests} == {receiver.requests[0].body}
    assert {r.headers["sealtrail-alert-id"] for r in receiver.requests} == {ALERT["id"]}
    assert (stats.delivered, stats.failed, stats.pending, stats.consecutive_failures) == (
        1, 0, 0, 0)
    assert stats.last_error is not None
    assert "HTTP 500" in stats.last_error


def test_a_400_is_not_retried(tmp_path: Path) -> None:
    """A permanent refusal marks the delivery failed after one request."""
    with WebhookReceiver() as receiver:
        receiver.fail_next(100, 400)
        dispatcher = Dispatcher([WebhookSink(receiver.url, SECRET, name="hook")],
                                tmp_path / "outbox.db", policy=FAST)
        try:
            dispatcher.submit(ALERT)
            assert dispatcher.flush(10)
            time.sleep(0.1)  # time for a (wrong) retry to show up
            stats = dispatcher.stats()["hook"]
        finally:
            dispatcher.close()
    assert len(receiver.requests) == 1
    assert (stats.delivered, stats.failed, stats.pending) == (0, 1, 0)


def test_pending_alerts_survive_a_restart_and_are_delivered_once(tmp_path: Path) -> None:
    """Receiver down: the alert waits in the outbox (0600) across a dispatcher restart, and is
    delivered exactly once when a new dispatcher finds the receiver up; resubmitting it then
    delivers nothing more."""
    outbox = tmp_path / "state" / "outbox.db"
    with WebhookReceiver() as first:
        port = first.port
    url = f"http://127.0.0.1:{port}/hook"
    dispatcher = Dispatcher([WebhookSink(url, SECRET, name="hook")], outbox, policy=FAST)
    try:
        dispatcher.submit(ALERT)
        assert wait_until(lambda: dispatcher.stats()["hook"].consecutive_failures >= 2)
        assert not dispatcher.flush(0.05)
    finally:
        dispatcher.close()
    assert stat.S_IMODE(outbox.stat().st_mode) == 0o600
    with WebhookReceiver(port=port) as receiver:
        again = Dispatcher([WebhookSink(url, SECRET, name="hook")], outbox, policy=FAST)
        try:
            assert again.stats()["hook"].pending == 1
            assert again.flush(10)
            assert again.submit(ALERT) == 0
            assert again.flush(10)
            time.sleep(0.1)
            stats = again.stats()["hook"]
        finally:
            again.close()
    assert [r.headers["sealtrail-alert-id"] for r in receiver.requests] == [ALERT["id"]]
    assert (stats.delivered, stats.pending) == (1, 0)


def test_the_same_alert_is_delivered_once_per_sink(tmp_path: Path) -> None:
    """Submitting an alert id twice queues it once per sink (webhook and syslog); a status
    change of the same alert is a new notification."""
    with WebhookReceiver() as receiver, UdpListener() as listener:
        dispatcher = Dispatcher([WebhookSink(receiver.url, SECRET, name="hook"),
                                 SyslogSink("127.0.0.1", listener.port, name="siem")],
                                tmp_path / "outbox.db", policy=FAST)
        try:
            assert dispatcher.submit(ALERT) == 2
            assert dispatcher.submit({**ALERT, "count": 8}) == 0
            assert dispatcher.flush(10)
            assert dispatcher.submit({**ALERT, "status": "resolved"}) == 2
            assert dispatcher.flush(10)
            assert wait_until(lambda: len(listener.datagrams) == 2)
            time.sleep(0.1)
        finally:
            dispatcher.close()
    assert [r.headers["sealtrail-alert-status"] for r in receiver.requests] == [
        "open", "resolved"]
    statuses = [parse_rfc5424(d).sd["sealtrail@32473"]["status"] for d in listener.datagrams]
    assert sorted(statuses) == ["open", "resolved"]


def test_on_failure_is_called_once_per_streak_of_n_failures(tmp_path: Path) -> None:
    """After exactly N consecutive failures the callback gets (sink, error, N), once while the
    streak lasts; a success ends the streak and a new streak calls it again."""
    calls: list[tuple[str, str, int]] = []
    with WebhookReceiver() as receiver:
        receiver.fail_next(6, 503)
        dispatcher = Dispatcher([WebhookSink(receiver.url, SECRET, name="hook")],
                                tmp_path / "outbox.db", policy=FAST,
                                on_failure=lambda *a: calls.append(a))
        try:
            dispatcher.submit(_alert(1))
            assert dispatcher.flush(10)
            assert len(receiver.requests) == 7
            assert dispatcher.stats()["hook"].consecutive_failures == 0
            receiver.fail_next(3, 500)
            dispatcher.submit(_alert(2))
            assert dispatcher.flush(10)
        finally:
            dispatcher.close()
    assert len(calls) == 2
    assert calls[0][0] == "hook"
    assert calls[0][2] == 3
    assert "HTTP 503" in calls[0][1]
    assert "HTTP 500" in calls[1][1]


def test_a_failing_callback_does_not_stop_delivery(tmp_path: Path) -> None:
    """on_failure raising is logged; the sink's thread carries on."""

    def boom(sink: str, error: str, n: int) -> None:
        raise RuntimeError("callback bug")

    with WebhookReceiver() as receiver:
        receiver.fail_next(1, 500)
        dispatcher = Dispatcher([WebhookSink(receiver.url, SECRET, name="hook")],
                                tmp_path / "outbox.db",
                                policy=RetryPolicy(base=0.005, cap=0.05, failure_threshold=1),
                                on_failure=boom)
        try:
            dispatcher.submit(ALERT)
            assert dispatcher.flush(10)
            assert dispatcher.stats()["hook"].delivered == 1
        finally:
            dispatcher.close()


def test_an_alert_older_than_max_age_is_failed(tmp_path: Path) -> None:
    """A delivery still failing after ``max_age`` (by the injected clock) is marked failed,
    its last error kept."""
    now = [1_800_000_000.0]
    with WebhookReceiver() as receiver:
        receiver.fail_next(1000, 500)
        dispatcher = Dispatcher([WebhookSink(receiver.url, SECRET, name="hook")],
                                tmp_path / "outbox.db", clock=lambda: now[0],
                                policy=RetryPolicy(base=0.005, cap=0.02, max_age=60))
        try:
            dispatcher.submit(ALERT)
            assert wait_until(lambda: len(receiver.requests) == 1)
            assert not dispatcher.flush(0.05)  # the clock stands still: not due again yet
            now[0] += 61
            assert dispatcher.flush(10)
            stats = dispatcher.stats()["hook"]
        finally:
            dispatcher.close()
    assert (stats.delivered, stats.failed, stats.pending) == (0, 1, 0)
    assert stats.last_error is not None
    assert "not delivered within 60 s" in stats.last_error


def test_submit_returns_at_once_and_one_stuck_sink_does_not_hold_up_another(
        tmp_path: Path) -> None:
    """While one sink's send hangs, submit still returns at once and the other sink still
    delivers; flush times out (False) until the stuck one is released."""
    gate = threading.Event()
    stuck, quick = Recorder("stuck", gate), Recorder("quick")
    dispatcher = Dispatcher([stuck, quick], tmp_path / "outbox.db", policy=FAST)
    try:
        started = time.monotonic()
        for n in range(20):
            dispatcher.submit(_alert(n))
        assert time.monotonic() - started < 2.0
        assert wait_until(lambda: len(quick.sent) == 20)
        assert stuck.sent == []
        assert not dispatcher.flush(0.1)
        assert dispatcher.stats()["stuck"].pending == 20
        gate.set()
        assert dispatcher.flush(10)
    finally:
        gate.set()
        dispatcher.close()
    assert [a["id"] for a in stuck.sent] == [_alert(n)["id"] for n in range(20)]
    assert stuck.closed
    assert quick.closed


def test_a_dead_sink_is_probed_once_per_backoff_not_once_per_alert(tmp_path: Path) -> None:
    """With many alerts pending for a dead receiver, attempts follow the sink's backoff: far
    fewer requests than alerts times tries."""
    with WebhookReceiver() as receiver:
        receiver.fail_next(10_000, 503)
        dispatcher = Dispatcher([WebhookSink(receiver.url, SECRET, name="hook")],
                                tmp_path / "outbox.db",
                                policy=RetryPolicy(base=0.05, cap=0.2))
        try:
            for n in range(50):
                dispatcher.submit(_alert(n))
            time.sleep(0.6)
        finally:
            dispatcher.close()
    assert 2 <= len(receiver.requests) <= 12


def test_invalid_alerts_and_closed_dispatchers_are_refused(tmp_path: Path) -> None:
    """No id, a non-string id, NaN or an unserialisable value: ValidationError; submitting
    after close: StorageError; two sinks with one name: ConfigError."""
    dispatcher = Dispatcher([Recorder("r")], tmp_path / "outbox.db", policy=FAST)
    try:
        for bad in ({"rule": "x"}, {"id": 7}, {"id": ""}, {"id": "a", "count": float("nan")},
                    {"id": "a", "when": object()}):
            with pytest.raises(ValidationError):
                dispatcher.submit(bad)
    finally:
        dispatcher.close()
    with pytest.raises(StorageError):
        dispatcher.submit(ALERT)
    with pytest.raises(ConfigError):
        Dispatcher([Recorder("r"), Recorder("r")], tmp_path / "other.db")
    with pytest.raises(ConfigError):
        RetryPolicy(base=0)


def test_deliveries_for_a_sink_no_longer_configured_wait(tmp_path: Path) -> None:
    """Rows of a sink removed from the configuration are neither delivered elsewhere nor
    counted; they are delivered when a sink of that name comes back."""
    outbox = tmp_path / "outbox.db"
    first = Dispatcher([Failing("old")], outbox, policy=FAST)
    try:
        first.submit(ALERT)
    finally:
        first.close()
    other = Recorder("new")
    second = Dispatcher([other], outbox, policy=FAST)
    try:
        assert second.flush(1)
        assert set(second.stats()) == {"new"}
    finally:
        second.close()
    assert other.sent == []
    back = Recorder("old")
    third = Dispatcher([back], outbox, policy=FAST)
    try:
        assert third.flush(10)
    finally:
        third.close()
    assert [a["id"] for a in back.sent] == [ALERT["id"]]
