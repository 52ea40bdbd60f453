"""Importing into a log: converting a source's input against the log's clock, and, after
the append, the records whose id was already taken by a *different* event.

An imported record's id is derived from the source's own id for it (core/sources/base.py), so
a retried or overlapping import finds its records already stored and stores nothing twice.
The same derivation lets anyone who can post events and who knows a record's id (its author,
reading their own CloudTrail event) take that id first with an event of their choosing: the
import would then answer "already stored" and the real record would never be kept. So every
duplicate an import meets is compared with what is stored: the same record (same action,
time, log source and record, as this log's redaction stores it) is a true duplicate; anything
else is a conflict that the import reports by record, never passes as stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sealtrail.core.event import Event
from sealtrail.core.sources.base import Converted, Source, convert
from sealtrail.log.auditlog import AuditLog, Receipt
from sealtrail.log.ingest import MAX_FUTURE_MS


def convert_for(alog: AuditLog, source: Source, text: str, *, skip_invalid: bool = False,
                max_records: int | None = None) -> Converted:
    """:func:`~sealtrail.core.sources.base.convert` for this log: a record dated later than
    the log takes ids (its clock plus :data:`MAX_FUTURE_MS`) is named up front, like any
    other record the append would refuse, instead of failing the import half way."""
    latest = alog.now() + timedelta(milliseconds=MAX_FUTURE_MS)
    return convert(source, text, skip_invalid=skip_invalid, max_records=max_records,
                   not_after=latest)


def _essence(event: dict[str, Any]) -> tuple[Any, ...]:
    meta = event.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    return (event.get("action"), event.get("time"), meta.get("log_source"),
            meta.get("original"))


def conflicts(alog: AuditLog, events: Sequence[Event], receipts: Sequence[Receipt]
              ) -> list[tuple[int, int]]:
    """(position in ``events``, index of the stored entry) for each duplicate whose stored
    event is not this record. A purged entry (its body gone) cannot be compared and is taken
    as the record it was."""
    out: list[tuple[int, int]] = []
    for pos, (event, receipt) in enumerate(zip(events, receipts, strict=True)):
        if not receipt.duplicate:
            continue
        entry = alog.entry(receipt.index)
        if entry.retired:
            continue
        mine, _ = alog.redact_preview(event)
        if _essence(alog.read(entry)) != _essence(mine):
            out.append((pos, receipt.index))
    return out
