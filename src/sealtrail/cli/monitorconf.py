"""The monitor's configuration from command-line options, shared by ``serve`` (which runs the
monitor) and ``monitor`` (the process ``serve`` starts for it): the same options, read the same
way, with errors that name the option. Also the monitor's alert store, for the commands that
read it beside a log (``review``, ``report``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sealtrail.cli.common import fail, read_text, store_url, where

if TYPE_CHECKING:  # loaded by the commands that run the monitor only
    from sealtrail.monitor.alerts import AlertStore
    from sealtrail.monitor.config import MonitorConfig


@contextmanager
def alert_store(data: str | None) -> Iterator[AlertStore | None]:
    """The monitor's alerts of this data directory (or ``--store``), None when there are none
    yet (no monitor ever ran): what the periodic review counts as a period's alerts."""
    from sealtrail.log.datadir import open_alert_rows, service_rows_exist  # noqa: PLC0415
    from sealtrail.monitor.alerts import AlertStore, monitor_db_path  # noqa: PLC0415

    d, _ = where(data, None)
    path = monitor_db_path(d)
    store = store_url()
    alerts = (AlertStore(path, rows=None if store is None else open_alert_rows(path, store))
              if service_rows_exist("alerts", path, store) else None)
    try:
        yield alerts
    finally:
        if alerts is not None:
            alerts.close()


def monitor_config(rules: list[Path], webhook: str | None, secret_file: Path | None,
                   config_file: Path | None) -> MonitorConfig:
    """The monitor's configuration from the serve options (errors name the option)."""
    from sealtrail.monitor.config import load_config  # noqa: PLC0415 - serve only

    sinks: list[dict[str, Any]] = []
    if webhook is not None:
        if secret_file is not None:
            secret = read_text(secret_file, "--alert-webhook-secret-file").strip()
        else:
            secret = os.environ.get("SEALTRAIL_WEBHOOK_SECRET", "")
        if not secret:
            fail("--alert-webhook needs a signing secret: --alert-webhook-secret-file FILE "
                 "or env SEALTRAIL_WEBHOOK_SECRET")
        sinks.append({"type": "webhook", "url": webhook, "secret": secret})
    for path in rules:
        if not path.exists():
            fail(f"--rules {path}: no such file or directory")
    return load_config(config_file, rules_paths=rules, sinks=sinks)
