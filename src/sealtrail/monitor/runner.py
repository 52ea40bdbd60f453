"""The monitor: evaluates every committed event against the rules and raises alerts.

It runs beside ingest, never in its path: a thread reads each log from its cursor (only what is
committed, so only what is durable), opens the events, feeds the rule engine, and turns
detections into alerts. Delivery goes through the dispatcher's durable outbox, so a slow or
dead sink never holds anything up. The cursor and the engine's state are saved together every
few seconds, and with the alerts a step raised (at most once a second); after a crash the
monitor resumes from the last save and judges again what came after it: the engine is
deterministic, so it finds the same detections, and grouping ignores evidence an alert already
holds; no alert is raised twice and no event is skipped.

Besides rules, the monitor raises alerts about the trail itself (PCI DSS 10.7.2): a failed
integrity verification (reported by the service's verifier), storage errors, the data
directory's disk nearly full, a sink failing repeatedly, and the engine falling behind.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

from sealtrail.core.errors import ConfigError, SealtrailError
from sealtrail.core.timefmt import format_time, parse_time
from sealtrail.log.auditlog import AuditLog
from sealtrail.monitor.alerts import Alert, AlertStore, new_alert_id
from sealtrail.monitor.dispatch import Dispatcher
from sealtrail.monitor.engine import Engine
from sealtrail.monitor.privacy import Pseudonyms, scrub
from sealtrail.monitor.publish import Publisher, PublishSettings, PublishStats
from sealtrail.monitor.rules import Detection, Rule, Severity

log = logging.getLogger("sealtrail.monitor")

MONITOR_ACTOR: Final = {"id": "sealtrail-monitor", "type": "service", "name": "monitor"}
INTEGRITY_CLAUSES: Final = ("PCI DSS 10.3.4", "PCI DSS 10.7.2", "HIPAA 164.312(c)(1)",
                            "HIPAA 164.312(c)(2)")
TEST_RULE: Final = "builtin.alert_test"  # ``sealtrail alerts test``: proves delivery works
TRAIL_CLAUSES: Final = ("PCI DSS 10.7.2", "PCI DSS 10.7.3", "HIPAA 164.312(b)")

LogSource = Callable[[], Iterable[tuple[str, AuditLog]]]


@dataclass(frozen=True, slots=True)
class Suppression:
    """Drop detections of ``rule`` (and ``key``, when given) until ``until`` (None: always)."""

    rule: str
    key: str | None = None
    until: datetime | None = None
    reason: str = ""

    def applies(self, det: Detection, now: datetime) -> bool:
        """Whether this suppression drops the detection now."""
        if self.rule not in (det.rule, "*"):
            return False
        if self.key is not None and det.key != self.key:
            return False
        return self.until is None or now < self.until


@dataclass(slots=True)
class MonitorSettings:
    """What the monitor does besides rules; every bound configurable (docs/alerts.md)."""

    dedup_window: timedelta = timedelta(hours=1)
    suppress: list[Suppression] = field(default_factory=list)
    batch: int = 500                    # events read per log per step (alerts go out after each)
    save_every: float = 5.0             # seconds between saves of cursor and engine state
    tick_every: float = 10.0            # seconds between engine ticks (absence rules)
    poll: float = 0.05                  # seconds to sleep when there is nothing new
    disk_min_free_ratio: float = 0.05   # alert when free space falls below 5 % ...
    disk_min_free_bytes: int = 512 << 20  # ... or below 512 MiB
    lag_alert_entries: int = 50_000     # alert when this many committed events wait
    # Checkpoints published outward while the loop runs (monitor/publish.py); the
    # configuration fills in the sinks (by default every alert sink) and the hook.
    publish: PublishSettings = field(default_factory=PublishSettings)


_SUBJECT_MEMO: Final = 65_536  # entries whose subjects a log's state remembers


@dataclass(slots=True)
class _LogState:
    engine: Engine
    next_index: int
    saved_at: float = 0.0
    dirty: bool = False
    pseudonyms: Pseudonyms | None = None
    # Subject pseudonyms of the entries this process judged, from ``memo_from`` on (an entry
    # absent here names no subject); older evidence is read again from the log.
    memo: dict[int, list[str]] = field(default_factory=dict)
    memo_from: int | None = None

    def remember(self, index: int, refs: list[str]) -> None:
        if self.memo_from is None:
            self.memo_from = index
        if refs:
            self.memo[index] = refs
            if len(self.memo) > _SUBJECT_MEMO:
                oldest = next(iter(self.memo))
                del self.memo[oldest]
                self.memo_from = oldest + 1


@dataclass(slots=True)
class MonitorStats:
    """Counters for /metrics."""

    processed: dict[str, int] = field(default_factory=dict)
    lag: dict[str, int] = field(default_factory=dict)
    detections: int = 0
    suppressed: int = 0
    grouped: int = 0
    errors: int = 0
    last_error: str = ""


class Monitor:
    """Rules over every log of a data directory, alerts, and alerts about the trail itself."""

    def __init__(self, data_dir: Path, logs: LogSource, rules: Sequence[Rule], store: AlertStore,
                 *, dispatcher: Dispatcher | None = None,
                 settings: MonitorSettings | None = None,
                 clock: Callable[[], datetime]) -> None:
        self._data_dir = data_dir
        self._logs = logs
        self._rules = list(rules)
        self.store = store
        self._dispatcher = dispatcher
        self.settings = settings or MonitorSettings()
        self._clock = clock
        self._states: dict[str, _LogState] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ticked = 0.0
        self._in_step = False
        self._loop_fd: int | None = None
        self._in_loop = False  # True in the monitor that runs the loop and owns delivery
        self._pending: list[tuple[AuditLog | None, Alert]] = []
        # The loop's view of the current alert per (log, rule, key); changes made elsewhere
        # reach it through the change queue (_sweep, at the start of every step).
        self._current: dict[tuple[str, str, str], Alert | None] = {}
        self._disk_checked = 0.0
        self._erasures: list[str] = []  # logs whose step erased a subject: files to purge
        self.stats = MonitorStats()
        self._publisher: Publisher | None = None

    # -- running ------------------------------------------------------------------------------

    def start(self) -> None:
        """Run :meth:`step` in a daemon thread until :meth:`stop`.

        One loop per data directory: a second one (a monitor left behind by a killed
        service, a CLI run beside the service) would raise every alert twice, so it is
        refused with ConfigError (an exclusive lock on ``_monitor/loop.lock``).
        """
        if self._thread is None:
            self._lock_loop()
            self._thread = threading.Thread(target=self._run, name="sealtrail-monitor",
                                            daemon=True)
            self._thread.start()
            self._start_publisher()

    def _start_publisher(self) -> None:
        """The loop's owner publishes checkpoints outward (one publisher per data
        directory, like the loop); a publisher that cannot start is reported, never fatal."""
        if not self.settings.publish.enabled:
            return
        try:
            self._publisher = Publisher(self.settings.publish, self._logs,
                                        on_failure=self.publish_failed)
        except (SealtrailError, ValueError) as exc:
            self.publish_failed("publisher", f"cannot publish checkpoints: {exc}")
            return
        self._publisher.start()

    @property
    def publish_stats(self) -> PublishStats | None:
        """Counters of the checkpoint publisher (None when this monitor publishes nothing)."""
        return self._publisher.stats if self._publisher is not None else None

    def stop(self) -> None:
        """Stop the thread and save every log's cursor and state."""
        self._stop.set()
        if self._publisher is not None:
            self._publisher.stop()
            self._publisher = None
        if self._thread is not None:
            self._thread.join(10.0)
            self._thread = None
        self.save(force=True)
        if self._loop_fd is not None:
            os.close(self._loop_fd)  # releases the lock
            self._loop_fd = None

    def _lock_loop(self) -> None:
        path = self.store.path.parent / "loop.lock"
        # With the alerts in a PostgreSQL store nothing else made the monitor's directory.
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise ConfigError(f"another monitor already runs on {self._data_dir} (it holds "
                              f"{path}); one loop per data directory") from exc
        self._loop_fd = fd

    def _run(self) -> None:
        self._in_loop = True
        try:
            self._record_unrecorded()
        except Exception:  # retried at the next start; the alerts themselves are delivered
            log.exception("sealtrail: recording earlier alerts in their logs failed")
        while not self._stop.is_set():
            try:
                busy = self.step()
            except Exception as exc:  # the monitor must survive; the next step retries
                self.stats.errors += 1
                self.stats.last_error = str(exc)
                log.exception("sealtrail: monitor step failed")
                busy = 0
            if not busy:
                self._stop.wait(self.settings.poll)

    def step(self) -> int:
        """Evaluate what was committed since the last step; returns how many events."""
        done = 0
        with self._lock:
            if self._in_loop:
                self._sweep()  # see status changes made elsewhere before grouping into them
            for name, alog in self._logs():
                done += self._step_one(name, alog)
            mono = time.monotonic()
            if mono - self._ticked >= self.settings.tick_every:
                self._ticked = mono
                self._tick_all()
            if mono - self._disk_checked >= 30.0:
                self._disk_checked = mono
                self._check_disk()
            if self._in_loop:
                self._sweep()
            self.save()
        return done

    def _step_one(self, name: str, alog: AuditLog) -> int:
        """One log's step in one monitor-db transaction (alert writes share a fsync). When a
        step raised alerts, the cursor and engine state are saved in the same transaction (at
        most once a second), so a crash judges again at most a second of them, and grouping
        ignores evidence an alert already holds; when a step fails, the in-memory state it
        moved is dropped and reloaded from the last save (nothing half-done survives)."""
        self._in_step = True
        pending_before = len(self._pending)
        raised_before = self.stats.detections
        try:
            with self.store.transaction():
                done = self._step_log(name, alog)
                state = self._states[name]
                if (self.stats.detections != raised_before and state.dirty
                        and time.monotonic() - state.saved_at >= 1.0):
                    self.store.put_cursor(name, state.next_index, state.engine.snapshot())
                    state.saved_at = time.monotonic()
                    state.dirty = False
        except BaseException:
            self._states.pop(name, None)
            for group in [g for g in self._current if g[0] == name]:
                del self._current[group]
            del self._pending[pending_before:]
            raise
        finally:
            self._in_step = False
        if self._erasures:
            self._erasures.clear()
            self.store.purge_files()  # the erased pseudonyms' old pages leave the WAL too
        self._flush_alerts()
        return done

    def _state(self, name: str, alog: AuditLog) -> _LogState:
        state = self._states.get(name)
        if state is None:
            next_index, saved = self.store.cursor(name)
            pseudonyms = Pseudonyms.of_log(alog)
            try:
                engine = Engine(self._rules, saved, pseudonyms=pseudonyms)
            except ConfigError as exc:
                log.warning("sealtrail: the monitor state of log %s is unusable (%s); "
                            "starting fresh from index %d", name, exc, next_index)
                engine = Engine(self._rules, pseudonyms=pseudonyms)
            state = _LogState(engine, next_index, pseudonyms=pseudonyms)
            self._states[name] = state
        return state

    def _step_log(self, name: str, alog: AuditLog) -> int:
        state = self._state(name, alog)
        size = alog.size
        if state.next_index > size:
            # The log is shorter than what the monitor already read: truncated.
            self.raise_alert(name, system_detection(
                "builtin.integrity_failure", "Audit log integrity failure", "critical", name,
                f"log {name} has {size} entries but the monitor had read {state.next_index}: "
                "it was truncated", INTEGRITY_CLAUSES), alog=alog)
            state.next_index = size
            return 0
        end = min(size, state.next_index + self.settings.batch)
        count = 0
        for entry in alog.entries(state.next_index, end):
            state.next_index = entry.index + 1
            state.dirty = True
            if entry.retired:
                continue
            try:
                ev = alog.read(entry)
            except SealtrailError as exc:
                self.stats.errors += 1
                self.stats.last_error = f"log {name} entry {entry.index}: {exc}"
                continue
            if _own(ev):
                continue
            count += 1
            if state.pseudonyms is not None:
                state.remember(entry.index, state.pseudonyms.subject_refs(ev))
            for det in state.engine.process(entry.index, ev):
                self._handle(name, alog, det)
            erased = _erased_subject(ev)
            if erased is not None:
                self._erase_subject(name, state, erased)
        state.next_index = max(state.next_index, end)
        self.stats.processed[name] = self.stats.processed.get(name, 0) + count
        lag = size - state.next_index
        self.stats.lag[name] = lag
        if lag >= self.settings.lag_alert_entries:
            self.raise_alert(name, system_detection(
                "builtin.monitor_lag", "Rule engine falling behind", "high", name,
                f"{lag} committed events of log {name} wait for the rule engine",
                TRAIL_CLAUSES), alog=alog)
        return count

    def _record_unrecorded(self) -> None:
        """Append the ``alert.open`` events a crash kept out of their logs."""
        logs = dict(self._logs())
        by_log: dict[str, list[Alert]] = {}
        for alert in self.store.unrecorded():
            by_log.setdefault(alert.log, []).append(alert)
        for name, alerts in by_log.items():
            if name in logs:
                self._record_open(logs[name], alerts)

    def _tick_all(self) -> None:
        now = self._clock()
        for name, alog in self._logs():
            state = self._state(name, alog)
            for det in state.engine.tick(now):
                self._handle(name, alog, det)
            state.dirty = True
        self._flush_alerts()

    def save(self, *, force: bool = False) -> None:
        """Save cursors and engine states that changed (at most every ``save_every`` s)."""
        mono = time.monotonic()
        with self._lock:
            for name, state in self._states.items():
                if state.dirty and (force or mono - state.saved_at >= self.settings.save_every):
                    self.store.put_cursor(name, state.next_index, state.engine.snapshot())
                    state.saved_at = mono
                    state.dirty = False

    # -- detections to alerts -------------------------------------------------------------------

    def _handle(self, name: str, alog: AuditLog, det: Detection) -> None:
        self.stats.detections += 1
        now = self._clock()
        if any(s.applies(det, now) for s in self.settings.suppress):
            self.stats.suppressed += 1
            return
        self.raise_alert(name, det, alog=alog, subjects=self._evidence_subjects(name, alog,
                                                                                 det.entries))

    def _evidence_subjects(self, name: str, alog: AuditLog, entries: Sequence[int]
                           ) -> list[str]:
        """The pseudonyms of the data subjects the evidence entries name."""
        state = self._states.get(name)
        if state is None or state.pseudonyms is None:
            return []
        refs: set[str] = set()
        for index in entries:
            if state.memo_from is not None and index >= state.memo_from:
                refs.update(state.memo.get(index, ()))
                continue
            try:  # evidence judged before this process started: ask the log
                refs.update(state.pseudonyms.subject_refs(alog.read(alog.entry(index))))
            except SealtrailError:
                continue  # retired or unreadable: it names no subject we could erase
        return sorted(refs)

    def _erase_subject(self, name: str, state: _LogState, ref: str) -> None:
        """A ``subject.erase`` event: what the monitor keeps about that subject goes — the
        pseudonyms in the keys and messages of the alerts whose evidence names it (also in
        the outbox), the link to it, and the engine's state under its keys."""
        changed = self.store.erase_subject(ref)
        for alert, old_key in changed:
            state.engine.forget(alert.rule, old_key)
            cached = self._current.pop((alert.log, alert.rule, old_key), None)
            if cached is not None and alert.status != "resolved":
                self._current[(alert.log, alert.rule, alert.key)] = alert
        state.engine.forget_containing(ref)
        state.dirty = True
        self.store.put_cursor(name, state.next_index, state.engine.snapshot())
        state.saved_at = time.monotonic()
        if changed and self._dispatcher is not None:
            self._dispatcher.rewrite([a.id for a, _ in changed], _scrub_alert)
        self._erasures.append(name)

    def raise_alert(self, log_name: str, det: Detection, *,
                    alog: AuditLog | None = None, subjects: Sequence[str] = ()) -> Alert:
        """Open an alert, or fold the detection into the open one of the same rule and key.

        A new alert is recorded in the log (``alert.open``, when the log takes appends) and
        handed to the sinks; a folded one updates count, last seen and evidence silently.
        """
        now_text = format_time(self._clock())
        seen = det.time or now_text
        rule, key, entries = det.rule, det.key, det.entries
        with self._lock:
            group = (log_name, rule, key)
            if self._in_loop and group in self._current:
                current = self._current[group]
            else:
                current = self.store.current(log_name, rule, key)
                if self._in_loop:
                    self._current[group] = current
            if current is not None and _within(current.last_seen, seen,
                                               self.settings.dedup_window):
                if entries and current.entries and max(entries) <= max(current.entries):
                    return current  # evidence it already holds: a replay after a restart
                current.count += 1
                current.last_seen = max(current.last_seen, seen)
                current.entries = [*current.entries, *entries][-100:]
                if self.store.update_group(current):
                    self.store.link_subjects(current.id, subjects)
                    self.stats.grouped += 1
                    if current.opened_index is None and alog is not None:
                        self._record_open(alog, [current])
                    return current
                # Resolved by someone else since the loop last looked: a new alert it is.
            current = None
            alert = Alert(new_alert_id(), log_name, rule, key, det.title, det.severity, "open",
                          seen, seen, 1, list(entries)[-100:], list(det.clauses), det.message,
                          None, now_text, MONITOR_ACTOR["id"])
            with self.store.transaction():  # first: a crash before the log event still groups
                self.store.put(alert)
                self.store.link_subjects(alert.id, subjects)
                self.store.queue_change(alert.id, "open")
            if self._in_loop:
                self._current[group] = alert
            self._pending.append((alog, alert))
            if not self._in_step:
                self._flush_alerts()
            return alert

    def _flush_alerts(self) -> None:
        """Record the new alerts in their logs (one append per log) and hand them to sinks."""
        pending, self._pending = self._pending, []
        by_log: dict[int, tuple[AuditLog, list[Alert]]] = {}
        for alog, alert in pending:
            if alog is not None:
                by_log.setdefault(id(alog), (alog, []))[1].append(alert)
        for alog, alerts in by_log.values():
            self._record_open(alog, alerts)
        if not self._in_loop:
            return
        self._sweep()

    def _record_open(self, alog: AuditLog, alerts: list[Alert]) -> None:
        try:
            receipts = alog.append_own([{
                "actor": dict(MONITOR_ACTOR), "action": "alert.open", "category": "system",
                "source": alog.own_source, "outcome": "success",
                "target": {"type": "alert", "id": alert.id},
                # The key and message may name a person or an address: they go in metadata,
                # which the default policy seals; the reason keeps only rule-level words.
                "reason": f"[{alert.severity}] {alert.title}"[:4096],
                "metadata": {"rule": alert.rule, "key": alert.key, "count": alert.count,
                             "message": alert.message[:1024],
                             "entries": alert.entries[:100], "clauses": alert.clauses}}
                for alert in alerts])
        except SealtrailError as exc:
            # A tampered or failing log may refuse appends: the alerts must still go out.
            self.stats.errors += 1
            self.stats.last_error = f"recording {len(alerts)} alert(s): {exc}"
            return
        with self.store.transaction():
            for alert, receipt in zip(alerts, receipts, strict=True):
                alert.opened_index = receipt.index
                self.store.set_opened(alert.id, receipt.index)

    def _sweep(self) -> None:
        """Hand the queued alert changes to the dispatcher, in order (see alerts.py)."""
        origins = {name: alog.origin for name, alog in self._logs()}
        for seq, alert_id, status in self.store.changes():
            alert = self.store.get(alert_id)
            if alert is not None:
                group = (alert.log, alert.rule, alert.key)
                cached = self._current.get(group)
                if alert.status == "resolved":
                    if cached is not None and cached.id == alert.id:
                        self._current[group] = None
                elif cached is None or cached.id == alert.id:
                    self._current[group] = alert
            if alert is not None and self._dispatcher is not None:
                payload = alert.to_dict()
                payload["status"] = status
                if alert.log in origins:
                    payload["origin"] = origins[alert.log]
                try:
                    self._dispatcher.submit(payload)
                except SealtrailError as exc:
                    self.stats.errors += 1
                    self.stats.last_error = f"queueing alert {alert.id}: {exc}"
                    return  # retried at the next step
            self.store.change_sent(seq)

    # -- lifecycle ------------------------------------------------------------------------------

    def change_status(self, alog: AuditLog, alert_id: str, status: str, *,
                      actor: Mapping[str, Any], reason: str) -> Alert:
        """Acknowledge or resolve an alert: the change is an event naming who and why."""
        if status not in ("acknowledged", "resolved"):
            raise ConfigError("status: acknowledged or resolved")
        if not reason.strip():
            raise ConfigError("reason: say why (what was checked, what was done)")
        with self._lock:
            alert = self.store.get(alert_id)
            if alert is None or alert.log != alog.name:
                raise ConfigError(f"alert {alert_id!r}: no such alert in log {alog.name!r}")
            if alert.status == "resolved":
                raise ConfigError(f"alert {alert_id}: already resolved")
            if alert.status == status:
                raise ConfigError(f"alert {alert_id}: already {status}")
            action = "alert.acknowledge" if status == "acknowledged" else "alert.resolve"
            alog.append_own([{"actor": dict(actor), "action": action, "category": "system",
                         "outcome": "success", "target": {"type": "alert", "id": alert.id},
                         "reason": reason[:4096],
                         "metadata": {"rule": alert.rule, "key": alert.key,
                                      "previous": alert.status}}])
            alert.status = status
            alert.updated_at = format_time(self._clock())
            alert.updated_by = str(actor.get("id", ""))
            alert.note = reason[:4096]
            with self.store.transaction():  # the monitor's loop notifies the sinks
                self.store.put(alert)
                self.store.queue_change(alert.id, status)
            return alert

    # -- the trail itself -----------------------------------------------------------------------

    def integrity_result(self, name: str, ok: bool, problem: str,
                         alog: AuditLog | None = None) -> None:
        """What the verifier found for a log; a failure raises a critical alert."""
        if ok:
            return
        self.raise_alert(name, system_detection(
            "builtin.integrity_failure", "Audit log integrity failure", "critical", name,
            f"verification of log {name} failed: {problem}", INTEGRITY_CLAUSES), alog=alog)

    def trail_failure(self, rule: str, title: str, key: str, message: str,
                      severity: Severity = "high") -> None:
        """A failure of the trail's machinery (storage, a sink); not tied to one log."""
        self.raise_alert("", system_detection(rule, title, severity, key, message,
                                              TRAIL_CLAUSES))

    def sink_failed(self, sink: str, error: str, consecutive: int) -> None:
        """The dispatcher's callback: a sink failed ``consecutive`` times in a row."""
        self.trail_failure("builtin.sink_failing", "Alert sink failing", sink,
                           f"alert sink {sink} failed {consecutive} times in a row: {error}")

    def publish_failed(self, what: str, error: str) -> None:
        """The publisher's callback: a destination (or a log's checkpoint) failed; called on
        the first failure of a streak."""
        self.trail_failure("builtin.publish_failing", "Checkpoint publication failing", what,
                           error)

    def _check_disk(self) -> None:
        try:
            usage = shutil.disk_usage(self._data_dir)
        except OSError as exc:
            self.trail_failure("builtin.storage_error", "Audit storage error",
                               str(self._data_dir), f"cannot read disk usage: {exc}")
            return
        low = (usage.free < self.settings.disk_min_free_bytes
               or usage.free < usage.total * self.settings.disk_min_free_ratio)
        if low:
            self.trail_failure("builtin.disk_low", "Audit storage nearly full",
                               str(self._data_dir),
                               f"{usage.free >> 20} MiB free of {usage.total >> 20} MiB where "
                               "the audit trail is stored: appends will fail when it is full",
                               severity="critical")


def system_detection(rule: str, title: str, severity: Severity, key: str, message: str,  # noqa: PLR0917 - the fields of a Detection, in its order
                     clauses: Sequence[str]) -> Detection:
    """A detection made by the monitor itself (not by a rule over events)."""
    return Detection(rule, title, severity, key, [], "", tuple(clauses), message)


def _erased_subject(ev: Mapping[str, Any]) -> str | None:
    """The pseudonym a ``subject.erase`` event names (its target), else None."""
    if ev.get("action") != "subject.erase":
        return None
    target = ev.get("target")
    if not isinstance(target, dict) or target.get("type") != "data_subject":
        return None
    ref = target.get("id")
    return ref if isinstance(ref, str) and ref.startswith("ref:") else None


def _scrub_alert(doc: dict[str, Any]) -> dict[str, Any]:
    for k in ("key", "message"):
        if isinstance(doc.get(k), str):
            doc[k] = scrub(doc[k])
    return doc


def _own(ev: Mapping[str, Any]) -> bool:
    """The monitor's own alert events are not judged again (no alert about alerts)."""
    actor = ev.get("actor") or {}
    return actor.get("id") == MONITOR_ACTOR["id"] and str(ev.get("action", "")).startswith(
        "alert.")


def _within(last: str, seen: str, window: timedelta) -> bool:
    try:
        return parse_time(seen) - parse_time(last) <= window
    except ValueError:
        return False
