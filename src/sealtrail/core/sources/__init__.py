"""The sources ``sealtrail import`` reads: one module each, found here by name.

Each module defines ``SOURCE``, a :class:`~sealtrail.core.sources.base.Source`. They are
imported when asked for, so a fault in one source's module never stops the others.
"""

from __future__ import annotations

import importlib
from typing import Final

from sealtrail.core.errors import ConfigError
from sealtrail.core.sources.base import LogSource, Source, log_source_of

__all__ = ["NAMES", "LogSource", "Source", "get_source", "log_source_of"]

_MODULES: Final = {
    "cloudtrail": "cloudtrail",
    "okta": "okta",
    "github": "github",
    "gcp": "gcp",
    "azure": "azure",
    "k8s-audit": "k8s_audit",
    "auditd": "auditd",
}
#: The names ``--source`` takes, in the order help lists them.
NAMES: Final = tuple(_MODULES)


def get_source(name: str) -> Source:
    """The source called ``name``; ConfigError naming the choices for any other name."""
    module = _MODULES.get(name)
    if module is None:
        raise ConfigError(f"--source: unknown source {name!r}; choose from {', '.join(NAMES)}")
    source: Source = importlib.import_module(f"sealtrail.core.sources.{module}").SOURCE
    return source
