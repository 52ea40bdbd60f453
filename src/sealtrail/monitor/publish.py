"""Checkpoints published outward on a schedule, so a copy exists off the machine.

A log's signed checkpoint is the proof an outsider needs to catch a rollback later (``sealtrail
verify --checkpoint FILE``); it is only worth something if somebody kept one. While the monitor
runs, the :class:`Publisher` sends each log's latest checkpoint note, right after start and
then every ``interval`` (default one hour), to

* every configured alert sink (or those ``publish.sinks`` names): a signed webhook with
  ``{"type": "sealtrail.checkpoint", "log", "origin", "size", "note"}``, a short Slack or
  e-mail text with the note, one RFC 5424 syslog message per log with the note escaped onto
  one line (``sinks.escape_note``; ``sinks.unescape_note`` gives it back exactly);
* the ``checkpoint.publish`` hook: a command (an argument list, no shell) run once per log with
  the note on stdin and ``SEALTRAIL_LOG``, ``SEALTRAIL_ORIGIN``, ``SEALTRAIL_SIZE`` (and
  ``SEALTRAIL_HOOK=checkpoint.publish``) in a minimal environment, killed (with its process
  group) after ``timeout``.

Rules, all kept simple:

* a round reads each log's stored checkpoint and publishes it only if it verifies with the
  log's key (``open_checkpoint`` with ``alog.verifier`` and the log's origin) and is not
  smaller than, or forked from, the head this machine remembers (the head memory); anything
  else is refused and reported, never sent;
* a destination gets a log's checkpoint only when it differs from the last one it accepted
  (remembered in memory: after a restart each destination gets the current one again);
* destinations run in parallel, each in its own worker: a slow, failing or hanging one delays
  nobody else, and a round waits for none longer than its own timeout;
* a failed destination is tried again after ``retry`` (1 min, or the interval if shorter), a
  round without failures waits ``interval``; the first failure of a streak is reported
  (``on_failure``: the monitor raises ``builtin.publish_failing``);
* nothing is recorded in the log: a checkpoint is proof material, not an event. Counters are
  in :attr:`Publisher.stats`.

The publisher runs in its own thread, never in the monitor's loop or in ingest.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, runtime_checkable

from sealtrail.core.checkpoint import open_checkpoint
from sealtrail.core.errors import SealtrailError
from sealtrail.log.auditlog import AuditLog
from sealtrail.monitor.sinks import CHECKPOINT_TYPE, Sink, SinkError, build_sinks

__all__ = [
    "HOOK_NAME",
    "Destination",
    "HookDestination",
    "HookSettings",
    "Publication",
    "PublishSettings",
    "PublishStats",
    "Publisher",
]

log = logging.getLogger("sealtrail.monitor")

HOOK_NAME: Final = "checkpoint.publish"
# The hook's environment: these of ours (the monitor's own holds the passphrase and webhook
# secrets, which a hook has no business seeing), the configured ``env``, the publication.
_ENV_KEEP: Final = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR")
_STDERR_SHOWN: Final = 200  # characters of a failing hook's stderr kept in the error

LogSource = Callable[[], Iterable[tuple[str, AuditLog]]]
FailureReport = Callable[[str, str], None]  # (what failed, why)


@dataclass(frozen=True, slots=True)
class HookSettings:
    """The ``checkpoint.publish`` hook: ``command`` (argv, no shell), run per log with the note
    on stdin, killed after ``timeout`` seconds; ``env`` adds variables."""

    command: tuple[str, ...]
    timeout: float = 30.0
    env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class PublishSettings:
    """When and where checkpoints are published (monitor configuration ``publish``/``hooks``).

    ``interval`` is in seconds, 0 publishes nothing; ``sinks`` are sink configurations (as
    ``build_sinks`` takes them: they hold secrets, so they stay out of ``repr``).
    """

    interval: float = 3600.0
    sinks: tuple[Mapping[str, Any], ...] = field(default=(), repr=False)
    hook: HookSettings | None = None
    retry: float = 60.0

    @property
    def enabled(self) -> bool:
        """Whether there is anything to publish to, ever."""
        return self.interval > 0 and (bool(self.sinks) or self.hook is not None)


@dataclass(frozen=True, slots=True)
class Publication:
    """One log's verified checkpoint, as published."""

    log: str
    origin: str
    size: int
    note: str

    def document(self) -> dict[str, Any]:
        """What webhooks receive (and the other sinks format)."""
        return {"type": CHECKPOINT_TYPE, "log": self.log, "origin": self.origin,
                "size": self.size, "note": self.note}


@runtime_checkable
class _CheckpointSink(Protocol):
    @property
    def name(self) -> str: ...

    def publish_checkpoint(self, doc: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


class Destination(Protocol):
    """Where publications go: ``publish`` raises :class:`SinkError` when it could not."""

    @property
    def name(self) -> str: ...

    def publish(self, pub: Publication) -> None: ...

    def close(self) -> None: ...


class _SinkDestination:
    def __init__(self, sink: _CheckpointSink) -> None:
        self._sink = sink

    @property
    def name(self) -> str:
        return self._sink.name

    def publish(self, pub: Publication) -> None:
        self._sink.publish_checkpoint(pub.document())

    def close(self) -> None:
        self._sink.close()


class HookDestination:
    """Runs the ``checkpoint.publish`` hook once per publication."""

    def __init__(self, settings: HookSettings) -> None:
        if not settings.command or not all(settings.command):
            raise ValueError("the hook command is a non-empty list of non-empty arguments")
        self._settings = settings
        self._running: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()
        self._closed = False

    @property
    def name(self) -> str:
        return f"hook:{HOOK_NAME}"

    def __repr__(self) -> str:
        return f"HookDestination(command={self._settings.command[0]!r})"

    def _env(self, pub: Publication) -> dict[str, str]:
        env = {k: os.environ[k] for k in _ENV_KEEP if k in os.environ}
        env.update(self._settings.env)
        env.update({"SEALTRAIL_HOOK": HOOK_NAME, "SEALTRAIL_LOG": pub.log,
                    "SEALTRAIL_ORIGIN": pub.origin, "SEALTRAIL_SIZE": str(pub.size)})
        return env

    def publish(self, pub: Publication) -> None:
        """Run the command with the note on stdin; SinkError unless it exits 0 in time."""
        timeout = self._settings.timeout
        where = f"hook {HOOK_NAME}"
        with self._lock:
            if self._closed:
                raise SinkError(f"{where}: the publisher is stopping")
            try:
                proc = subprocess.Popen(  # noqa: S603 - the operator's command, no shell
                    list(self._settings.command), stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=self._env(pub),
                    start_new_session=True, close_fds=True)
            except OSError as exc:
                raise SinkError(f"{where}: cannot run {self._settings.command[0]}: "
                                f"{exc.strerror or exc}") from exc
            self._running.add(proc)
        try:
            try:
                _, err = proc.communicate(pub.note.encode("utf-8"), timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                proc.wait()
                raise SinkError(f"{where}: did not finish within {timeout:g} s; "
                                "killed") from None
        finally:
            with self._lock:
                self._running.discard(proc)
            for pipe in (proc.stdin, proc.stderr):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
        if proc.returncode != 0:
            how = (f"killed by signal {-proc.returncode}" if proc.returncode < 0
                   else f"exited with status {proc.returncode}")
            tail = " ".join(err.decode("utf-8", "replace").split())[-_STDERR_SHOWN:]
            raise SinkError(f"{where}: {how}" + (f": {tail}" if tail else ""))

    def close(self) -> None:
        """Kill a hook still running (the monitor is stopping)."""
        with self._lock:
            self._closed = True
            running = list(self._running)
        for proc in running:
            _kill_group(proc)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the hook and whatever it started (its own session, so its own group)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(OSError):
            proc.kill()


@dataclass(slots=True)
class PublishStats:
    """Counters per destination (since start), for metrics."""

    published: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    refused: int = 0  # checkpoints that did not verify or went backwards: never sent
    rounds: int = 0
    last_error: str = ""


class Publisher:
    """Publishes every log's checkpoint to its destinations on a schedule (module docstring).

    It owns the sinks it builds from ``settings.sinks`` and the hook; :meth:`stop` closes them.
    """

    def __init__(self, settings: PublishSettings, logs: LogSource, *,
                 on_failure: FailureReport | None = None,
                 destinations: Sequence[Destination] | None = None) -> None:
        self.settings = settings
        self._logs = logs
        self._on_failure = on_failure
        if destinations is None:
            destinations = _destinations(settings)
        names = [d.name for d in destinations]
        if len(set(names)) != len(names):
            raise ValueError(f"destination names must be unique: {sorted(names)}")
        self._dests = list(destinations)
        self._sent: dict[str, dict[str, str]] = {d.name: {} for d in self._dests}
        self._busy: dict[str, Future[None]] = {}
        self._streak: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(self._dests)),
                                        thread_name_prefix="sealtrail-publish")
        self.stats = PublishStats()

    @property
    def destinations(self) -> list[str]:
        """The destinations' names (sink names, ``hook:checkpoint.publish``)."""
        return [d.name for d in self._dests]

    # -- running ------------------------------------------------------------------------------

    def start(self) -> None:
        """Publish now, then every interval, in a daemon thread until :meth:`stop`."""
        if self._thread is None and self.settings.interval > 0 and self._dests:
            self._thread = threading.Thread(target=self._run, name="sealtrail-publisher",
                                            daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the schedule, kill a running hook, close the sinks."""
        self._stop.set()
        for dest in self._dests:
            if isinstance(dest, HookDestination):
                dest.close()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._pool.shutdown(wait=False, cancel_futures=True)
        for dest in self._dests:
            try:
                dest.close()
            except Exception:  # one failing to close must not keep the others open
                log.exception("closing publication destination %s failed", dest.name)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                failures = self.publish_once()
            except Exception as exc:  # the schedule must survive; the next round retries
                log.exception("sealtrail: publishing checkpoints failed")
                failures = {"publisher": str(exc)}
            wait = self.settings.interval
            if failures:
                wait = min(wait, self.settings.retry)
            self._stop.wait(wait)

    # -- one round ----------------------------------------------------------------------------

    def snapshot(self) -> tuple[list[Publication], dict[str, str]]:
        """Every log's stored checkpoint that verifies and does not go backwards, and the
        logs whose checkpoint is refused (``log NAME`` → why; reported, never sent)."""
        out, refused = [], {}
        for name, alog in self._logs():
            key = f"log {name}"
            try:
                pub = _verified(name, alog)
            except (SealtrailError, ValueError) as exc:
                with self._lock:
                    self.stats.refused += 1
                refused[key] = f"the checkpoint of log {name} is not published: {exc}"
                self._failed(key, refused[key])
                continue
            self._succeeded(key)
            if pub is not None:
                out.append(pub)
        return out, refused

    def publish_once(self, timeout: float | None = None) -> dict[str, str]:
        """One round: each destination gets the checkpoints that changed for it. Returns the
        failures (destination or ``log NAME`` → why); waits for each destination at most its
        own timeout (or ``timeout``). A destination still busy from an earlier round is
        skipped and counts as failed."""
        pubs, failures = self.snapshot()
        with self._lock:
            self.stats.rounds += 1
        futures: dict[str, Future[None]] = {}
        for dest in self._dests:
            busy = self._busy.get(dest.name)
            if busy is not None and not busy.done():
                failures[dest.name] = "the previous publication is still running"
                self._failed(dest.name, f"publishing checkpoints to {dest.name}: "
                             "the previous publication is still running")
                continue
            due = [p for p in pubs if self._sent[dest.name].get(p.log) != p.note]
            if not due:
                continue
            try:
                fut = self._pool.submit(self._publish_to, dest, due)
            except RuntimeError:  # the pool is shut down: stopping
                break
            self._busy[dest.name] = futures[dest.name] = fut
        limit = timeout if timeout is not None else self._round_limit(len(pubs))
        wait_futures(list(futures.values()), timeout=limit)
        for name, fut in futures.items():
            if not fut.done():
                failures[name] = "still running"
                continue
            exc = fut.exception()
            if exc is not None:
                failures[name] = str(exc)
        return failures

    def _round_limit(self, logs: int) -> float:
        """How long a round waits for its destinations: a sink's requests time out within
        seconds (30 s is generous), the hook within its timeout; per log, plus slack."""
        hook = self.settings.hook
        per_log = max(hook.timeout if hook is not None else 0.0, 30.0)
        return per_log * max(1, logs) + 5.0

    def _publish_to(self, dest: Destination, pubs: list[Publication]) -> None:
        """Send ``pubs`` to one destination, each log's failure counted; raises SinkError with
        the first failure after trying every log."""
        first: SinkError | None = None
        for pub in pubs:
            if self._stop.is_set():
                return
            try:
                dest.publish(pub)
            except SinkError as exc:
                error: SinkError = exc
            except Exception as exc:  # a bug in a destination must not stop the others
                log.exception("publication destination %s raised", dest.name)
                error = SinkError(f"{dest.name}: {type(exc).__name__}: {exc}")
            else:
                self._sent[dest.name][pub.log] = pub.note
                with self._lock:
                    self.stats.published[dest.name] = self.stats.published.get(dest.name, 0) + 1
                continue
            with self._lock:
                self.stats.failed[dest.name] = self.stats.failed.get(dest.name, 0) + 1
            log.warning("sealtrail: publishing the checkpoint of log %s to %s failed: %s",
                        pub.log, dest.name, error)
            first = first or error
        if first is not None:
            self._failed(dest.name, f"publishing checkpoints to {dest.name} failed: {first}")
            raise first
        self._succeeded(dest.name)

    def _failed(self, key: str, message: str) -> None:
        with self._lock:
            self.stats.last_error = message
            streak = self._streak.get(key, 0) + 1
            self._streak[key] = streak
        if streak == 1 and self._on_failure is not None:
            try:
                self._on_failure(key, message)
            except Exception:
                log.exception("the publication failure callback raised")

    def _succeeded(self, key: str) -> None:
        with self._lock:
            self._streak.pop(key, None)


def _verified(name: str, alog: AuditLog) -> Publication | None:
    """The log's stored checkpoint if it verifies and does not go backwards; None for a log
    without one yet. ValueError (or a SealtrailError) says why it is refused."""
    try:
        signed = alog.checkpoint()
    except SealtrailError:
        if alog.size == 0:
            return None
        raise
    cp = open_checkpoint(signed.note, alog.verifier, alog.origin)  # VerificationError
    remembered = alog.head_memory.load()
    if remembered is not None:
        seen = remembered.checkpoint
        if cp.size < seen.size:
            raise ValueError(f"it signs {cp.size} entries but this machine saw the log sign "
                             f"{seen.size}: rolled back")
        if cp.size == seen.size and cp.root != seen.root:
            raise ValueError(f"its root at size {cp.size} is not the one this machine saw "
                             "signed: forked")
    return Publication(name, cp.origin, cp.size, signed.note)


def _destinations(settings: PublishSettings) -> list[Destination]:
    out: list[Destination] = []
    sinks: list[Sink] = build_sinks(settings.sinks, where="publish.sinks")
    for sink in sinks:
        if isinstance(sink, _CheckpointSink):
            out.append(_SinkDestination(sink))
        else:  # every built-in sink can; kept for sinks added later
            sink.close()
    if settings.hook is not None:
        out.append(HookDestination(settings.hook))
    return out
