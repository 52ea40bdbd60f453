"""What a service node is told: where its data is, how to open keyrings, its limits.

``sealtrail serve`` builds a :class:`ServiceConfig` from its options; tests build one directly.
Nothing here opens a file: :mod:`sealtrail.server.state` turns the config into a running node.

A config crosses to ``serve --workers N``'s worker processes pickled (the passphrase with it,
through the pipe multiprocessing starts them with, never their command line). Compiled rules
do not pickle: a config made with ``monitor_source`` leaves its ``monitor`` out of the pickle
and remakes it from that source when unpickled (the worker reads the same rule files).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from sealtrail.log.auditlog import Clock, system_clock
from sealtrail.monitor.config import MonitorConfig

if TYPE_CHECKING:  # the console's module imports this one; the config only names the type
    from sealtrail.server.web.oidc import OidcConfig

MAX_BODY: Final = 8 * 1024 * 1024
MAX_EVENTS: Final = 10_000


@dataclass
class ServiceConfig:
    """What a service node needs: where the data is, how to open keyrings, its limits."""

    data_dir: Path
    passphrase: str | None = None
    # Where the logs and the service's rows are: None, SQLite files under data_dir; else a
    # PostgreSQL URL shared by every node (key files, head memory, archive stay in data_dir).
    store: str | None = None
    clock: Clock = system_clock
    rate: float = 200.0
    burst: float = 400.0
    max_body: int = MAX_BODY
    max_events: int = MAX_EVENTS
    verify_delay: float = 5.0        # seconds after start before the first full verification
    verify_interval: float = 3600.0  # then every this many seconds; 0 turns it off
    verify_min_interval: float = 10.0  # continuous watch: at least this long between runs
    verify_increment_interval: float = 2.0  # new entries against the signed head, this often
    monitor: MonitorConfig | None = field(default_factory=MonitorConfig)  # None: no rules
    # Run the monitor as this child process (``sealtrail monitor ...``) instead of a thread:
    # its rules then use the second core, not this process's interpreter lock.
    monitor_command: list[str] | None = None
    retention_delay: float = 60.0    # seconds after start before the first retention run
    retention_interval: float = 86400.0  # then daily; 0 turns scheduled retention off
    # How many worker processes serve this data directory together (``serve --workers``).
    # Above 1, a monitor run in-process is wired by the leader only (server/state.py).
    workers: int = 1
    # A picklable callable (a module-level function or a partial of one) that makes
    # ``monitor`` again: what lets this config reach a worker process (module docstring).
    monitor_source: Callable[[], MonitorConfig | None] | None = None
    # The log the service's own records go to (console sign-ins, administration changes).
    audit_log: str = "default"
    # The console: its sessions' cookies carry Secure unless this is off (plain-HTTP
    # development on a host other than localhost); TOTP required for these roles.
    ui_secure_cookies: bool = True
    ui_require_mfa: frozenset[str] = frozenset()
    # Single sign-on to the console with an OpenID Connect provider (None: passwords only).
    oidc: OidcConfig | None = None
    # Witnessing (server/witnessing_job.py): a round at most this often (0: off), and an
    # alert once a checkpoint has waited this long for its witnesses' quorum.
    witness_interval: float = 1.0
    witness_alert_after: float = 300.0
    # RFC 3161 timestamps (server/timestamp_job.py): how often the job looks (0: off); each
    # log's ``timestamps set --every`` says how often it is stamped.
    timestamp_interval: float = 60.0
    # The checkpoint and hash tiles (/tlog/{log}/checkpoint, /tlog/{log}/tile/<level>/...)
    # readable without a key, for tile clients, monitors and witnesses (entry bundles stay
    # behind their role).
    public_tlog: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def shared(self) -> bool:
        """Whether other processes serve the same logs (``--workers`` above 1, or a store
        shared by several nodes): the rules then run only in the leader."""
        return self.workers > 1 or self.store is not None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self.monitor_source is not None:
            state["monitor"] = None  # remade by __setstate__
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self.monitor_source is not None:
            self.monitor = self.monitor_source()
