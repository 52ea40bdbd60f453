"""A ``logging.Handler`` that turns log records carrying an ``audit`` extra into audit events.

::

    logger.info("invoice read", extra={"audit": {"actor": {"id": "alice"},
                                                 "action": "invoice.read",
                                                 "outcome": "success"}})

Records without ``audit`` are ignored, so the handler can sit on the root logger next to the
usual ones. The event's ``time`` is the record's creation time unless ``audit`` gives one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime

from sealtrail.client import Client
from sealtrail.core.timefmt import format_time


class AuditHandler(logging.Handler):
    """Record ``extra={"audit": {...event fields...}}`` log records through ``client``.

    Errors (an invalid event, a fail_closed DeliveryError) go to ``handleError`` as logging
    does for every handler, unless ``raise_errors`` is set: then they propagate to the
    ``logger.info(...)`` call, which is what a fail-closed caller wants.
    """

    def __init__(self, client: Client, level: int = logging.NOTSET, *,
                 raise_errors: bool = False) -> None:
        super().__init__(level)
        self.client = client
        self.raise_errors = raise_errors

    def emit(self, record: logging.LogRecord) -> None:
        """Record the event of ``record`` (if it carries one)."""
        audit = getattr(record, "audit", None)
        if not isinstance(audit, Mapping):
            return
        try:
            doc = dict(audit)
            if doc.get("time") is None:
                doc["time"] = format_time(datetime.fromtimestamp(record.created, UTC))
            self.client.record(doc)
        except Exception:
            if self.raise_errors:
                raise
            self.handleError(record)
