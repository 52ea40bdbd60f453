"""What one service node holds while it runs, shared by every request.

:class:`ServiceState` is built once from a :class:`~sealtrail.server.config.ServiceConfig`
(the composition root names every concrete part here: the logs, the API keys, the monitor and
its alert store, the background verification and retention jobs, the metrics, the rate
limiter), kept on ``app.state.service`` and reached by routes through
:mod:`sealtrail.server.deps`. :meth:`ServiceState.start` and :meth:`ServiceState.stop` are the
app's lifespan.

Every process serves every route; the background jobs (verification, retention, the monitor)
run only in the process that leads the data directory (:mod:`sealtrail.server.leader`), so
``serve --workers N``, or two ``serve`` on one directory, run each job once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from sealtrail.core.errors import SealtrailError
from sealtrail.log.apikeys import ApiKeys
from sealtrail.log.auditlog import AuditLog
from sealtrail.log.users import Users
from sealtrail.monitor.alerts import AlertStore
from sealtrail.monitor.dispatch import Dispatcher
from sealtrail.monitor.runner import Monitor
from sealtrail.monitor.watch import Result, Verifier
from sealtrail.monitor.wiring import Wired, wire
from sealtrail.server.config import ServiceConfig
from sealtrail.server.leader import Leadership
from sealtrail.server.logs import Logs
from sealtrail.server.metrics import Metrics, MonitorState
from sealtrail.server.monitor_process import MonitorProcess
from sealtrail.server.pg_leader import PgLeadership
from sealtrail.server.ratelimit import RateLimiter
from sealtrail.server.retention_job import RetentionJob
from sealtrail.server.review_job import ReviewJob
from sealtrail.server.timestamp_job import TimestampJob
from sealtrail.server.witnessing_job import WitnessingJob


@dataclass(frozen=True, slots=True)
class ServiceState:
    """The parts of a running node (built by :meth:`build`, one per app)."""

    config: ServiceConfig
    logs: Logs
    keys: ApiKeys
    users: Users
    monitor: Monitor
    dispatcher: Dispatcher | None
    alert_store: AlertStore
    child: MonitorProcess | None
    verifier: Verifier
    retention: RetentionJob
    metrics: Metrics
    limiter: RateLimiter
    review: ReviewJob | None = None  # overdue reviews become alerts (leader only)
    witnessing: WitnessingJob | None = None  # checkpoints to witnesses, sealing (leader)
    timestamps: TimestampJob | None = None  # RFC 3161 tokens on checkpoints (leader)
    leadership: Leadership | PgLeadership = field(init=False)
    _running: list[Callable[[], None]] = field(init=False, default_factory=list)
    # Starting and stopping the leader's jobs: the leadership's thread (taking or losing the
    # lead) and the app's shutdown may do either at once.
    _jobs: threading.Lock = field(init=False, default_factory=threading.Lock)
    # Console sign-in attempts per client address (a spray over many names, which the
    # per-name lockout does not see): one a second, ten at once.
    signin_limiter: RateLimiter = field(init=False,
                                        default_factory=lambda: RateLimiter(1.0, 10.0))

    def __post_init__(self) -> None:
        # One data directory: a file lock. A PostgreSQL store shared by several nodes: a
        # session advisory lock in that database (server/pg_leader.py), lost when the
        # session is, so the jobs stop on losing it.
        lead: Leadership | PgLeadership = (
            Leadership(self.config.data_dir, self._lead) if self.config.store is None
            else PgLeadership(self.config.store, "jobs", self._lead, self._unlead))
        object.__setattr__(self, "leadership", lead)

    @classmethod
    def build(cls, config: ServiceConfig) -> ServiceState:
        """Open the data directory's logs and keys and set up the jobs (none started yet)."""
        logs = Logs(config.data_dir, config.passphrase, config.clock, config.store)
        keys = ApiKeys(config.data_dir, store=config.store)
        users = Users(config.data_dir, store=config.store)
        # The rules run on this monitor when configured, not handed to a child process and
        # this is the only worker; otherwise it serves the API only (alerts the service
        # raises, alert changes), and with several workers the leader wires one for the
        # rules (_lead): every worker's dispatcher would deliver each alert again.
        wired = wire(config.data_dir, logs,
                     config.monitor if config.monitor_command is None and not config.shared
                     else None, config.clock, config.store)
        monitor, dispatcher, alert_store = wired.monitor, wired.dispatcher, wired.store
        child = (MonitorProcess(config.monitor_command, monitor)
                 if config.monitor_command is not None else None)

        def verified(name: str, result: Result) -> None:
            # A failed verification is an alert (the monitor records it in the log if it can).
            if not result.ok:
                try:
                    alog: AuditLog | None = logs.get(name)
                except SealtrailError:
                    alog = None
                monitor.integrity_result(name, result.ok, result.problem, alog)

        verifier = Verifier(logs, config.clock, delay=config.verify_delay,
                            interval=config.verify_interval,
                            min_interval=config.verify_min_interval,
                            increment_interval=config.verify_increment_interval,
                            on_result=verified)
        retention = RetentionJob(logs, config.clock, delay=config.retention_delay,
                                 interval=config.retention_interval)
        # Hourly, on the monitor that serves the API (it records alerts in the log).
        review = ReviewJob(logs, monitor, config.clock, delay=config.retention_delay,
                           interval=3600.0)
        witnessing = WitnessingJob(logs, monitor, config.clock, delay=1.0,
                                   interval=config.witness_interval,
                                   alert_after=config.witness_alert_after)
        # Checks every minute; each log's own setting says how often it is stamped.
        timestamps = TimestampJob(logs, config.clock, delay=config.retention_delay / 2,
                                  interval=config.timestamp_interval)
        metrics = Metrics(logs, config.clock, verifier.results)
        metrics.registry.register(MonitorState(monitor, dispatcher))
        return cls(config=config, logs=logs, keys=keys, users=users, monitor=monitor,
                   dispatcher=dispatcher, alert_store=alert_store, child=child,
                   verifier=verifier, retention=retention, metrics=metrics,
                   limiter=RateLimiter(config.rate, config.burst), review=review,
                   witnessing=witnessing, timestamps=timestamps)

    @property
    def monitor_in_process(self) -> bool:
        """Whether the rules run on a thread of this process (not in a child, not at all)."""
        return self.config.monitor is not None and self.config.monitor_command is None

    def start(self) -> None:
        """Take part in electing the leader; if this process leads, start the background
        work (verification, retention, the monitor) now, else when it takes the lead."""
        self.leadership.start()

    def _lead(self) -> None:
        """Start the jobs only the leader runs (each one's stop is kept for :meth:`stop`)."""
        with self._jobs:
            self._start_jobs()

    def _start_jobs(self) -> None:
        self.verifier.start()
        self._running.append(self.verifier.stop)
        self.retention.start()
        self._running.append(self.retention.stop)
        if self.review is not None:
            self.review.start()
            self._running.append(self.review.stop)
        if self.witnessing is not None:
            self.witnessing.start()
            self._running.append(self.witnessing.stop)
        if self.timestamps is not None:
            self.timestamps.start()
            self._running.append(self.timestamps.stop)
        if self.monitor_in_process:
            rules = self.monitor
            if self.config.shared:
                led: Wired = wire(self.config.data_dir, self.logs, self.config.monitor,
                                  self.config.clock, self.config.store)
                self._running.append(led.close)
                rules = led.monitor
            rules.start()
            self._running.append(rules.stop)
        if self.child is not None:
            self.child.start()
            self._running.append(self.child.stop)

    def _unlead(self) -> None:
        """The lead was lost (the store's session ended: a pause, a cut, a restart): stop
        the leader's jobs now; another node runs them (this one again if it retakes it)."""
        with self._jobs:
            while self._running:
                self._running.pop()()

    def stop(self) -> None:
        """Stop the jobs in the reverse order (the monitor before the logs it reads), release
        the lead, then close the logs."""
        self.leadership.stop()  # no job starts after this
        with self._jobs:
            while self._running:
                self._running.pop()()
        self.leadership.release()
        if self.dispatcher is not None:
            self.dispatcher.close(5.0)
        self.alert_store.close()
        if self.witnessing is not None:
            self.witnessing.close()
        self.logs.close()
        self.keys.close()
        self.users.close()
