"""The monitor's configuration from command-line options, shared by ``serve`` (which runs the
monitor) and ``monitor`` (the process ``serve`` starts for it): the same options, read the same
way, with errors that name the option.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sealtrail.cli.common import fail, read_text

if TYPE_CHECKING:  # loaded by the commands that run the monitor only
    from sealtrail.monitor.config import MonitorConfig


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
