"""What one service node holds while it runs, shared by every request.

:class:`ServiceState` is built once from a :class:`~sealtrail.server.config.ServiceConfig`
(the composition root names every concrete part here: the logs, the API keys, the monitor and
its alert store, the background verification and retention jobs, the metrics, the rate
limiter), kept on ``app.state.service`` and reached by routes through
:mod:`sealtrail.server.deps`. :meth:`ServiceState.start` and :meth:`ServiceState.stop` are the
app's lifespan.
"""

from __future__ import annotations

from dataclasses import dataclass

from sealtrail.core.errors import SealtrailError
from sealtrail.log.apikeys import ApiKeys
from sealtrail.log.auditlog import AuditLog
from sealtrail.monitor.alerts import AlertStore
from sealtrail.monitor.dispatch import Dispatcher
from sealtrail.monitor.runner import Monitor
from sealtrail.monitor.watch import Result, Verifier
from sealtrail.monitor.wiring import wire
from sealtrail.server.config import ServiceConfig
from sealtrail.server.logs import Logs
from sealtrail.server.metrics import Metrics, MonitorState
from sealtrail.server.monitor_process import MonitorProcess
from sealtrail.server.ratelimit import RateLimiter
from sealtrail.server.retention_job import RetentionJob


@dataclass(frozen=True, slots=True)
class ServiceState:
    """The parts of a running node (built by :meth:`build`, one per app)."""

    config: ServiceConfig
    logs: Logs
    keys: ApiKeys
    monitor: Monitor
    dispatcher: Dispatcher | None
    alert_store: AlertStore
    child: MonitorProcess | None
    verifier: Verifier
    retention: RetentionJob
    metrics: Metrics
    limiter: RateLimiter

    @classmethod
    def build(cls, config: ServiceConfig) -> ServiceState:
        """Open the data directory's logs and keys and set up the jobs (none started yet)."""
        logs = Logs(config.data_dir, config.passphrase, config.clock)
        keys = ApiKeys(config.data_dir)
        # The rules run here when configured and not handed to a child process; otherwise
        # this monitor serves the API only (alerts the service raises, alert changes).
        wired = wire(config.data_dir, logs,
                     config.monitor if config.monitor_command is None else None, config.clock)
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
        metrics = Metrics(logs, config.clock, verifier.results)
        metrics.registry.register(MonitorState(monitor, dispatcher))
        return cls(config=config, logs=logs, keys=keys, monitor=monitor,
                   dispatcher=dispatcher, alert_store=alert_store, child=child,
                   verifier=verifier, retention=retention, metrics=metrics,
                   limiter=RateLimiter(config.rate, config.burst))

    @property
    def monitor_in_process(self) -> bool:
        """Whether the rules run on a thread of this process (not in a child, not at all)."""
        return self.config.monitor is not None and self.config.monitor_command is None

    def start(self) -> None:
        """Start the background work: verification, retention, the monitor."""
        self.verifier.start()
        self.retention.start()
        if self.monitor_in_process:
            self.monitor.start()
        if self.child is not None:
            self.child.start()

    def stop(self) -> None:
        """Stop in the reverse order: the monitor first (it reads the logs), the logs last."""
        if self.child is not None:
            self.child.stop()
        if self.monitor_in_process:
            self.monitor.stop()
        if self.dispatcher is not None:
            self.dispatcher.close(5.0)
        self.alert_store.close()
        self.retention.stop()
        self.verifier.stop()
        self.logs.close()
        self.keys.close()
