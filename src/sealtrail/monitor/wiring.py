"""Putting a monitor together: its alert store, its sinks' outbox and the monitor over them.

``sealtrail serve`` (in its own process, or the API-only monitor when the rules run in a child)
and ``sealtrail monitor`` (that child) build the same thing; this is the one place that does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from sealtrail.core.errors import SealtrailError
from sealtrail.log.auditlog import AuditLog
from sealtrail.log.datadir import open_alert_rows, open_outbox_rows
from sealtrail.monitor.alerts import AlertStore, monitor_db_path, outbox_db_path
from sealtrail.monitor.config import MonitorConfig
from sealtrail.monitor.dispatch import Dispatcher
from sealtrail.monitor.runner import Monitor
from sealtrail.monitor.sinks import build_sinks


class OpenLogs(Protocol):
    """The logs a monitor watches: their names, and each opened (the service's log cache)."""

    def names(self) -> Iterable[str]: ...

    def get(self, name: str) -> AuditLog: ...


def every_log(logs: OpenLogs) -> Callable[[], list[tuple[str, AuditLog]]]:
    """The monitor's view of ``logs``: every log that opens, by name (a log that does not
    open is skipped here; /readyz and the CLI report it)."""
    def opened() -> list[tuple[str, AuditLog]]:
        out = []
        for name in logs.names():
            try:
                out.append((name, logs.get(name)))
            except SealtrailError:
                continue
        return out
    return opened


@dataclass(frozen=True, slots=True)
class Wired:
    """A monitor with its alert store and (when it has sinks) its dispatcher."""

    monitor: Monitor
    store: AlertStore
    dispatcher: Dispatcher | None

    def close(self, timeout: float = 10.0) -> None:
        """Stop delivering (waiting up to ``timeout`` for the outbox) and close the store."""
        if self.dispatcher is not None:
            self.dispatcher.close(timeout)
        self.store.close()


def wire(data_dir: Path, logs: OpenLogs, config: MonitorConfig | None,
         clock: Callable[[], datetime], store: str | None = None) -> Wired:
    """The monitor of a data directory. With ``config``, it runs its rules and delivers to its
    sinks; without, it is the API's monitor only (alerts raised by the service itself, such
    as trail failures, and changes to alerts), the rules running elsewhere or not at all.
    ``store``: a PostgreSQL URL keeps the alerts and the outbox there (shared by every node),
    None in the data directory's SQLite files."""
    alerts = AlertStore(monitor_db_path(data_dir),
                        rows=None if store is None else open_alert_rows(Path(), store))
    holder: list[Monitor] = []

    def sink_failed(name: str, error: str, consecutive: int) -> None:
        if holder:
            holder[0].sink_failed(name, error, consecutive)

    dispatcher = (Dispatcher(build_sinks(config.sinks),
                             outbox_db_path(data_dir) if store is None else None,
                             on_failure=sink_failed,
                             rows=None if store is None else open_outbox_rows(Path(),
                                                                             store_url=store))
                  if config is not None and config.sinks else None)
    monitor = Monitor(data_dir, every_log(logs), config.rules if config is not None else [],
                      alerts, dispatcher=dispatcher,
                      settings=config.settings if config is not None else None, clock=clock)
    holder.append(monitor)
    return Wired(monitor, alerts, dispatcher)
