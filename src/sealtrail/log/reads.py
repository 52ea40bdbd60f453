"""Audited reads: whoever reads event content is on the trail, recorded by the engine.

A read of event content is appended to the log it reads as an ``audit_access`` event
(:meth:`~sealtrail.log.auditlog.AuditLog.record_access`: one action per kind of read,
:data:`~sealtrail.log.auditlog.READ_ACTIONS`, and the reader's role) *before* the first result
is returned: a read that cannot be recorded is not served. The faces say who reads
(:class:`Reader`); the engine function that serves the read records it, so each kind of read
is recorded the same way whichever face serves it. Search does so in log/search.py; the export
of a data subject's events and the read of raw entries here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sealtrail.log.auditlog import AuditLog, Entry, Receipt

__all__ = ["Reader", "export_subject", "read_entries"]


@dataclass(frozen=True, slots=True)
class Reader:
    """Who reads: the actor of the record (an API key, the CLI's operating-system user) and
    the role it reads in (one of :data:`~sealtrail.log.auditlog.READ_ROLES`, which
    ``record_access`` checks; the built-in ``audit_access`` rule matches on it)."""

    actor: Mapping[str, Any]
    role: str

    def record(self, log: AuditLog, action: str, details: Mapping[str, Any],
               results: int) -> Receipt:
        """Append this reader's read of ``results`` events (``action``, what was asked for
        in ``details``) to ``log``."""
        return log.record_access(self.actor, action, role=self.role, details=details,
                                 results=results)


def export_subject(log: AuditLog, subject: str, *, reader: Reader | None
                   ) -> list[tuple[Entry, dict[str, Any]]]:
    """Every event naming ``subject`` (oldest first), opened: the subject's access request
    (GDPR Art. 15). With ``reader``, recorded as ``audit.subject_export`` (the subject by
    pseudonym) before the events are returned."""
    found = list(log.subject_events(subject))
    if reader is not None:
        reader.record(log, "audit.subject_export", {"subject": log.pseudonym(subject)},
                      len(found))
    return found


def read_entries(log: AuditLog, start: int, end: int, *, reader: Reader) -> Iterator[Entry]:
    """Raw entries ``start <= i < end`` (:meth:`~sealtrail.log.auditlog.AuditLog.entries`:
    the range is checked first), recorded as ``audit.entries.read`` (the range) before the
    first is read: a reader who stops reading is still on record."""
    selected = log.entries(start, end)
    reader.record(log, "audit.entries.read", {"start": str(start), "end": str(end)},
                  end - start)
    return selected
