"""Delivery decisions: what an answer of the ingest endpoint means for the batch that was sent.

Pure functions over status codes, headers and bodies; the clients do the I/O and apply the
decision to their queue. The policy (docs in :mod:`sealtrail.client`):

=============================================  ================================================
answer                                          decision
=============================================  ================================================
2xx with one receipt per event, in order        :class:`Ack` — the events are durably stored
connection error, timeout, 408, 425, 429, 5xx   :class:`Retry` — resend the same events (same ids)
                                                after an exponential, jittered backoff, never
                                                sooner than ``Retry-After``
2xx with malformed receipts                     :class:`Retry` (resending is harmless: ids)
413 (batch too large)                           :class:`Split` — resend in smaller batches
422 naming events (``errors[].index``)          :class:`Reject` — those events can never be
                                                stored: take them out of the queue (the spool
                                                keeps them in its dead-letter table); resend
                                                the rest at once
422 naming no event, for a batch of several     :class:`Split` to single events, to find it
422 naming no event, for a single event         :class:`Reject`
401, 403, 404, other 4xx                        :class:`Stall` — a configuration problem (token,
                                                role, log name), not the events' fault: keep
                                                them and retry with backoff
=============================================  ================================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import msgspec

from sealtrail.client.receipt import Receipt, parse_receipts
from sealtrail.core.errors import FormatError
from sealtrail.core.retry import parse_retry_after

RETRY_STATUSES: Final = frozenset({408, 425, 429})


@dataclass(frozen=True, slots=True)
class Ack:
    """Every event of the batch is stored; one receipt each, in order."""

    receipts: tuple[Receipt, ...]


@dataclass(frozen=True, slots=True)
class Rejected:
    """One event the service refused: its position in the batch, the field, the reason."""

    position: int
    field: str
    message: str


@dataclass(frozen=True, slots=True)
class Reject:
    """Some events can never be stored (nothing of the batch was); resend the others."""

    rejected: tuple[Rejected, ...]
    status: int


@dataclass(frozen=True, slots=True)
class Split:
    """Resend the same events in batches of at most ``limit``."""

    limit: int
    reason: str


@dataclass(frozen=True, slots=True)
class Retry:
    """A transient failure: resend the same events later (not before ``retry_after`` seconds)."""

    reason: str
    status: int | None = None
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class Stall:
    """The service refuses the client itself (token, role, log): keep the events, back off."""

    reason: str
    status: int


Outcome = Ack | Reject | Split | Retry | Stall


class _Problem(msgspec.Struct, frozen=True):
    index: int
    field: str = "event"
    message: str = ""


class _ErrorDoc(msgspec.Struct, frozen=True):
    error: str = ""
    field: str | None = None
    errors: list[_Problem] | None = None


def _error_doc(body: bytes) -> _ErrorDoc:
    try:
        return msgspec.json.decode(body, type=_ErrorDoc)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return _ErrorDoc(error=body[:200].decode("utf-8", "replace"))


def classify(status: int, headers: Mapping[str, str], body: bytes, ids: Sequence[str], *,
             now: datetime) -> Outcome:
    """The decision for the answer ``status``/``headers``/``body`` to the batch ``ids``."""
    if 200 <= status < 300:
        try:
            return Ack(parse_receipts(body, ids))
        except FormatError as exc:
            return Retry(f"malformed answer to a stored batch: {exc}", status)
    if status >= 500 or status in RETRY_STATUSES:
        return Retry(f"HTTP {status}: {_error_doc(body).error}", status,
                     parse_retry_after(headers.get("retry-after"), now))
    doc = _error_doc(body)
    if status == 413:
        if len(ids) > 1:
            return Split(max(1, len(ids) // 2), f"HTTP 413: {doc.error}")
        return Reject((Rejected(0, "event", doc.error or "too large"),), status)
    if status == 422:
        return _rejection(doc, len(ids))
    return Stall(f"HTTP {status}: {doc.error}", status)


def _rejection(doc: _ErrorDoc, count: int) -> Outcome:
    """Which events a 422 names; a Split to single events when it names none of several.

    Each of ``errors`` names its event by ``index``; its ``field`` (``events[3].actor.id``,
    for people) gives the field within it. A body naming no event by index rejects a single
    event, or splits a batch to find which one it is.
    """
    found: dict[int, Rejected] = {}
    for problem in doc.errors or ():
        if 0 <= problem.index < count:
            found.setdefault(problem.index, Rejected(
                problem.index, _within(problem.field, problem.index), problem.message))
    if found:
        return Reject(tuple(found[k] for k in sorted(found)), 422)
    if count > 1:
        return Split(1, f"HTTP 422 naming no event: {doc.error}")
    return Reject((Rejected(0, doc.field or "event", doc.error),), 422)


def _within(field: str, index: int) -> str:
    """The field within event ``index``: ``events[3].actor.id`` -> ``actor.id`` (``event``
    when the whole event is at fault); a field not under ``events[index]`` as it is."""
    head = f"events[{index}]"
    if field == head:
        return "event"
    return field.removeprefix(f"{head}.") or "event"


