"""What a service node is told: where its data is, how to open keyrings, its limits.

``sealtrail serve`` builds a :class:`ServiceConfig` from its options; tests build one directly.
Nothing here opens a file: :mod:`sealtrail.server.state` turns the config into a running node.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from sealtrail.log.auditlog import Clock, system_clock
from sealtrail.monitor.config import MonitorConfig

MAX_BODY: Final = 8 * 1024 * 1024
MAX_EVENTS: Final = 10_000


@dataclass
class ServiceConfig:
    """What a service node needs: where the data is, how to open keyrings, its limits."""

    data_dir: Path
    passphrase: str | None = None
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
    extra: dict[str, Any] = field(default_factory=dict)
