"""The logs (tenants) a service node serves: opened once, shared by every request.

Each log is an :class:`AuditLog` in the data directory; group commit inside it makes
concurrent requests share fsyncs. Logs are created only by an admin (``POST /v1/logs``) or
``sealtrail init``; a request naming an unknown log gets 404, never a new log.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from sealtrail.core.errors import ConfigError
from sealtrail.log.auditlog import LOG_NAME, AuditLog, Clock, log_dir, system_clock
from sealtrail.log.datadir import log_exists, log_names


@dataclass
class Logs:
    """Opened logs by name."""

    data_dir: Path
    passphrase: str | None = None
    clock: Clock = system_clock
    store: str | None = None  # None: SQLite under data_dir; else a PostgreSQL URL
    _open: dict[str, AuditLog] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def names(self) -> list[str]:
        """Every log in the data directory (or the PostgreSQL store)."""
        return log_names(self.data_dir, self.store)

    def exists(self, name: str) -> bool:
        """Whether ``name`` is a log here. With a PostgreSQL store a log this node has open
        is taken to exist (every request asks: a catalog query each would cost a round trip
        and a connection)."""
        if self.store is not None and name in self._open:
            return True
        return bool(LOG_NAME.match(name)) and log_exists(self.data_dir, name, self.store)

    def get(self, name: str) -> AuditLog:
        """The opened log; ConfigError when there is none of that name."""
        with self._lock:
            log = self._open.get(name)
            if log is None:
                if not self.exists(name):
                    raise ConfigError(f"no log {name!r}")
                log = AuditLog.open(self.data_dir, name, create=False,
                                    passphrase=self.passphrase, clock=self.clock,
                                    store=self.store)
                self._open[name] = log
            return log

    def create(self, name: str, *, encryption: bool = True) -> AuditLog:
        """Create a log (admin): ConfigError if it exists or the name is not allowed."""
        log_dir(self.data_dir, name)  # validates the name
        with self._lock:
            if self.exists(name):
                raise ConfigError(f"log {name!r} exists")
            log = AuditLog.open(self.data_dir, name, create=True, passphrase=self.passphrase,
                                encryption=encryption, clock=self.clock, store=self.store)
            self._open[name] = log
            return log

    def close(self) -> None:
        """Close every opened log."""
        with self._lock:
            for log in self._open.values():
                log.close()
            self._open.clear()
