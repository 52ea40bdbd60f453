"""Which process of a data directory runs the singleton jobs: the leader, chosen by a lock.

Several processes may serve one data directory at once (``serve --workers N``, or two
``serve`` started separately); the engine lets them all append. The background jobs must run
once per directory, not once per process: two integrity watches double the verification
cost, two retention runs race each other, and two monitors raise every alert twice. So each
process tries to take an exclusive, non-blocking ``flock`` on ``DATA/.leader.lock``; the one
that holds it is the leader and starts the jobs, the others serve requests only and keep
trying every :data:`POLL_INTERVAL` seconds.

The kernel releases the lock when its holder exits, however it exits (SIGKILL included), so
leadership passes to another process within about :data:`POLL_INTERVAL`; a leader never gives
it up while it runs, so there is nothing to do on losing it. ``flock`` locks belong to an open
file: a second :class:`Leadership` in the same process does not share the first one's lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Final

log = logging.getLogger("sealtrail.server")

POLL_INTERVAL: Final = 0.5
"""Seconds between two attempts of a follower to take the lock (how long the singleton jobs
may be without a leader after the leader died)."""
LOCK_NAME: Final = ".leader.lock"
"""The lock file in the data directory (created 0600; it holds nothing, only the lock)."""


class Leadership:
    """Take ``DATA/.leader.lock`` when it is free and then call ``on_acquire`` once.

    :meth:`start` tries at once (a process that finds the lock free is leader before it
    serves its first request, and an ``on_acquire`` failing there fails the start), then, if
    another process holds it, a daemon thread tries every ``interval`` seconds. :meth:`stop`
    ends the attempts; :meth:`release`, once the jobs stopped, gives the lock up.
    """

    def __init__(self, data_dir: Path, on_acquire: Callable[[], None], *,
                 interval: float = POLL_INTERVAL) -> None:
        self.path = Path(data_dir) / LOCK_NAME
        self._on_acquire = on_acquire
        self._interval = interval
        self._fd: int | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._acquired = threading.Event()

    @property
    def leader(self) -> bool:
        """Whether this process holds the lock (and so started, or is starting, the jobs)."""
        return self._acquired.is_set()

    def start(self) -> None:
        """Try to lead now; if another process leads, keep trying in a daemon thread."""
        if self._try():
            return
        self._thread = threading.Thread(target=self._poll, name="sealtrail-leader",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop trying to take the lock (the lock, if held, stays held: :meth:`release`)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5.0)

    def release(self) -> None:
        """Stop trying and release the lock: another process may lead from its next try.
        Call it after this process's jobs have stopped."""
        self.stop()
        self._acquired.clear()
        if self._fd is not None:
            os.close(self._fd)  # closing the file releases the flock
            self._fd = None

    def _poll(self) -> None:
        while not self._stopping.wait(self._interval):
            try:
                if self._try():
                    return
            except Exception:  # logged, not raised: nothing would see it end this thread
                log.exception("sealtrail: this process took the leader lock but could not "
                              "start every background job")
                return

    def _try(self) -> bool:
        """Take the lock if free; on success start the jobs. Whether this process leads."""
        if self._stopping.is_set():
            return False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        with contextlib.suppress(OSError):  # a record for the operator, not for the lock
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        log.info("sealtrail: process %d leads %s (runs the background jobs)", os.getpid(),
                 self.path.parent)
        self._acquired.set()
        self._on_acquire()
        return True


__all__ = ["LOCK_NAME", "POLL_INTERVAL", "Leadership"]
