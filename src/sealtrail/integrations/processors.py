"""A structlog processor that records events whose event dict carries ``audit=...``.

::

    structlog.configure(processors=[structlog_processor(client), ...])
    log.info("invoice read", audit={"actor": {"id": "alice"}, "action": "invoice.read",
                                    "outcome": "success"})

Nothing is imported from structlog (it need not be installed): a processor is any callable
``(logger, method_name, event_dict) -> event_dict``. The ``audit`` value is taken out of the
event dict (so the event's personal data does not also reach the plain log) and replaced by
``audit_id``, the recorded event's id, to correlate the two.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

from sealtrail.client import Client

EventDict = MutableMapping[str, Any]
Processor = Callable[[Any, str, EventDict], EventDict]


def structlog_processor(client: Client, *, key: str = "audit") -> Processor:
    """A processor recording ``event_dict[key]`` (a mapping of event fields) via ``client``."""

    def process(logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
        audit = event_dict.get(key)
        if isinstance(audit, Mapping):
            event_dict["audit_id"] = client.record(audit)
            del event_dict[key]
        return event_dict

    return process
