"""The leader's jobs start again after a stop: a node that loses the lead (its PostgreSQL
session ended) stops them, and must run them again when it takes the lead back."""

from __future__ import annotations

import sys
import threading
from typing import Any

from tests.monitor.receivers import wait_until

from sealtrail.log.schedule import Schedule
from sealtrail.server.monitor_process import MonitorProcess


def test_a_stopped_schedule_runs_again_when_started() -> None:
    """start, stop, start: the job runs after the second start too."""
    runs: list[int] = []
    ran = threading.Event()

    def job() -> None:
        runs.append(1)
        ran.set()

    schedule = Schedule("test-job", job, delay=0.0, next_wait=lambda _d: 0.05)
    schedule.start()
    assert ran.wait(5)
    schedule.stop()
    before = len(runs)
    ran.clear()
    schedule.start()
    assert ran.wait(5)
    assert len(runs) > before
    schedule.stop()


class _Monitor:
    """What MonitorProcess reports a dead child to (nothing here)."""

    def trail_failure(self, *_args: Any, **_kwargs: Any) -> None:
        return None


def test_a_stopped_monitor_child_runs_again_when_started() -> None:
    """The child process is started again after stop (not left dead)."""
    child = MonitorProcess([sys.executable, "-c", "import sys; sys.stdin.read()"],
                           _Monitor())  # type: ignore[arg-type]
    child.start()
    first = child._proc
    assert first is not None
    assert wait_until(lambda: first.poll() is None, 5)
    child.stop()
    assert first.poll() is not None
    child.start()
    second = child._proc
    assert second is not None
    assert second is not first
    assert wait_until(lambda: second.poll() is None, 5)
    child.stop()
    assert second.poll() is not None
