"""The sources ``sealtrail import`` reads: one module each, found here by name.

Each module defines ``SOURCE``, a :class:`~sealtrail.core.sources.base.Source`. They are
imported when asked for, so a fault in one source's module never stops the others.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, Final

from sealtrail.core.errors import ConfigError, ValidationError
from sealtrail.core.sources.base import LogSource, Source, log_source_of

__all__ = ["IMPORTED_ACTIONS", "NAMES", "LogSource", "Source", "claims_import", "get_source",
           "is_imported", "log_source_of"]

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
#: The actions imported events have (``<product>.``...), as globs: readable on every event,
#: where ``metadata.log_source`` is sealed on an encrypting log.
IMPORTED_ACTIONS: Final = ("aws.*", "okta.*", "github.*", "gcp.*", "azure.*", "kubernetes.*",
                           "linux.auditd.*")
_PREFIXES: Final = tuple(glob[:-1] for glob in IMPORTED_ACTIONS)


def claims_import(metadata: Mapping[str, Any] | None) -> ValidationError | None:
    """The error for an event posted as an event (not imported) that carries
    ``metadata.log_source``: only ``sealtrail import`` writes it, so that rules and reports
    can tell an imported record from an application's own event."""
    if isinstance(metadata, Mapping) and "log_source" in metadata:
        return ValidationError("metadata.log_source", "reserved for records imported with "
                               "'sealtrail import' (POST /v1/logs/{log}/import): post the "
                               "system's own log there, or name this field otherwise")
    return None


def is_imported(event: Mapping[str, Any]) -> bool:
    """Whether an event was imported from another system's log: its ``metadata.log_source``
    when readable, else its action's prefix. Such an event's ``time`` is when that system
    wrote the record, so the gap to ``received_at`` says nothing about a clock, and its
    ``source.service`` is not a producer that can fall silent."""
    if log_source_of(event) is not None:
        return True
    action = event.get("action")
    return isinstance(action, str) and action.startswith(_PREFIXES)


def get_source(name: str) -> Source:
    """The source called ``name``; ConfigError naming the choices for any other name."""
    module = _MODULES.get(name)
    if module is None:
        raise ConfigError(f"--source: unknown source {name!r}; choose from {', '.join(NAMES)}")
    source: Source = importlib.import_module(f"sealtrail.core.sources.{module}").SOURCE
    return source
