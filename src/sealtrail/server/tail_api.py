"""Following and exporting a search: a live tail as Server-Sent Events, and a file download.

Both take the filters of the search (``GET /v1/logs/{log}/events``, :mod:`.search_api`) and,
like it, are for readers and auditors only (an admin reads no event content). Both are
audited reads, recorded in the log they read before the content leaves:

- ``GET /v1/logs/{log}/events/stream``: each batch of new matching entries is recorded as
  the search records itself (``audit.search``, the filter as
  :meth:`~sealtrail.log.search.Filter.describe` gives it, ``stream: live``, the number of
  entries) before it is sent. One exception keeps two open tails from feeding each other
  forever: a batch holding nothing but read records (``audit_access`` events sealtrail wrote)
  is sent at once and counted in the next record, or in the one made when the stream ends.
  A stream is polled (the log's size, one cheap read) every half second; it lasts at most
  ``max_seconds`` (then the browser's EventSource reconnects with ``Last-Event-ID`` and the
  caller is authenticated again, so a revoked key or an ended session stops following), and
  a caller has at most :data:`MAX_STREAMS` open at once per process (429 past that).
- ``GET /v1/logs/{log}/export``: the current result as CSV (the columns of
  ``sealtrail query --format csv``) or JSON Lines, newest first, at most :data:`MAX_EXPORT`
  rows. The rows are found and written to a spool file first, then the read is recorded
  (``audit.export``: the filter, the format, the tree size it covers, whether it was cut
  short, the number of rows), then the file is sent; the answer's headers say how many rows
  it holds and whether the limit cut it short.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from typing import IO, Annotated, Any, Final

import anyio
from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from sealtrail.core.errors import ValidationError
from sealtrail.core.reserved import OWN_SERVICE
from sealtrail.core.timefmt import parse_time
from sealtrail.log.apikeys import Principal
from sealtrail.log.auditlog import READ_ACTIONS, AuditLog, Entry
from sealtrail.log.reads import Reader
from sealtrail.log.search import Filter, check_answerable, search, search_page
from sealtrail.server.deps import (
    READERS,
    Service,
    actor_of,
    in_thread,
    open_log,
    requires,
    still_allowed,
)
from sealtrail.server.openapi import ERRORS, answers

MAX_STREAMS: Final = 4
"""Open live tails per caller (API key or console user) in one process."""
MAX_EXPORT: Final = 100_000
"""Rows in one export (the answer says when the result had more)."""
STREAM_BATCH: Final = 500
POLL_SECONDS: Final = 0.5
RECHECK_SECONDS: Final = 2.0  # how soon a revoked key or ended session stops a stream
KEEPALIVE_SECONDS: Final = 15.0
MAX_STREAM_SECONDS: Final = 3600
MAX_FILTER: Final = 512
CSV_COLUMNS: Final = ("index", "time", "actor", "action", "outcome", "category", "target",
                      "source", "id")
"""The columns of ``sealtrail query --format csv`` (cli/search.py), in its order."""
_SPOOL_BYTES: Final = 16 * 1024 * 1024
_CHUNK: Final = 64 * 1024

ROUTES: Final = {
    ("GET", "/v1/logs/{log}/events/stream"): READERS,
    ("GET", "/v1/logs/{log}/export"): READERS,
}

router = APIRouter()
as_stream = requires(ROUTES, "GET", "/v1/logs/{log}/events/stream")
as_export = requires(ROUTES, "GET", "/v1/logs/{log}/export")

_Text = Annotated[str | None, Query(max_length=MAX_FILTER)]


# -- filters ---------------------------------------------------------------------------------


def _time(value: str | None, name: str) -> datetime | None:
    """A query's time bound (RFC 3339), or 422 naming the parameter."""
    if value is None or value == "":
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise ValidationError(name, str(exc)) from exc


def _blank(value: str | None) -> str | None:
    """An empty query value is no filter (a form sends its empty fields)."""
    return value if value else None


def filter_of(q: dict[str, str | None]) -> Filter:
    """The search filter of the query parameters (the names of ``GET .../events``)."""
    return Filter(actor=_blank(q["actor"]), actor_ip=_blank(q["ip"]),
                  subject=_blank(q["subject"]), action=_blank(q["action"]),
                  category=_blank(q["category"]), outcome=_blank(q["outcome"]),
                  target=_blank(q["target"]), source=_blank(q["source"]),
                  request_id=_blank(q["request_id"]), trace_id=_blank(q["trace_id"]),
                  since=_time(q["since"], "since"), until=_time(q["until"], "until"),
                  text=_blank(q["text"]))


def _is_read_record(ev: dict[str, Any]) -> bool:
    """Whether ``ev`` is a read record sealtrail wrote (``audit.search`` and its kind)."""
    return (ev.get("category") == "audit_access" and ev.get("action") in READ_ACTIONS
            and (ev.get("source") or {}).get("service") == OWN_SERVICE)


# -- live tail -------------------------------------------------------------------------------


class StreamSlots:
    """How many live tails each caller has open (thread-safe)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()

    def take(self, caller: str) -> bool:
        """Take a slot for ``caller``; False when it has ``limit`` open already."""
        with self._lock:
            n = self._open.get(caller, 0)
            if n >= self.limit:
                return False
            self._open[caller] = n + 1
            return True

    def give_back(self, caller: str) -> None:
        """Return a slot taken by :meth:`take`."""
        with self._lock:
            n = self._open.get(caller, 0) - 1
            if n > 0:
                self._open[caller] = n
            else:
                self._open.pop(caller, None)


def _slots(request: Request) -> StreamSlots:
    """The app's stream slots (made on first use, one table per app)."""
    slots = getattr(request.app.state, "tail_slots", None)
    if not isinstance(slots, StreamSlots):
        slots = StreamSlots(MAX_STREAMS)
        request.app.state.tail_slots = slots
    return slots


class _SlotResponse(StreamingResponse):
    """A streaming answer that gives its caller's slot back however it ends (sent in full,
    the client gone, an error), even when its body was never started."""

    def __init__(self, content: AsyncIterator[str], slots: StreamSlots, caller: str,
                 headers: dict[str, str]) -> None:
        super().__init__(content, media_type="text/event-stream", headers=headers)
        self._release = (slots, caller)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            slots, caller = self._release
            slots.give_back(caller)


class _Tail:
    """One live tail's reading: where it is, and the read records it still owes."""

    def __init__(self, alog: AuditLog, flt: Filter, reader: Reader, cursor: int) -> None:
        self.alog, self.flt, self.reader = alog, flt, reader
        self.cursor = cursor  # the newest index looked at: entries after it are new
        self.owed = 0  # entries sent but not yet counted in a record

    def _details(self) -> dict[str, str]:
        return {**self.flt.describe(self.alog.pseudonym), "stream": "live"}

    def batch(self) -> list[tuple[Entry, dict[str, Any]]]:
        """The next matching entries after the cursor (at most :data:`STREAM_BATCH`),
        recorded before they are returned (see the module's docstring); moves the cursor."""
        size = self.alog.size
        if size - 1 <= self.cursor:
            return []
        page = search_page(self.alog, self.flt, limit=STREAM_BATCH, newest_first=False,
                           cursor=self.cursor)
        rows = page.rows
        if page.next_cursor is not None:
            self.cursor = page.next_cursor
        else:
            # Every entry up to the end was looked at (at least those before ``size``).
            self.cursor = max(size - 1, rows[-1][0].index if rows else -1)
        if not rows:
            return []
        if all(_is_read_record(ev) for _, ev in rows):
            self.owed += len(rows)
        else:
            self.reader.record(self.alog, "audit.search", self._details(),
                               len(rows) + self.owed)
            self.owed = 0
        return rows

    def settle(self) -> None:
        """Record what was sent and not counted yet (the stream is ending)."""
        if self.owed:
            self.reader.record(self.alog, "audit.search", self._details(), self.owed)
            self.owed = 0


def _sse_entry(entry: Entry, ev: dict[str, Any]) -> str:
    """One entry as an SSE event (the JSON is one line: JSON escapes CR and LF)."""
    data = json.dumps({"index": entry.index, "event": ev}, ensure_ascii=True,
                      separators=(",", ":"))
    return f"id: {entry.index}\nevent: entry\ndata: {data}\n\n"


async def _follow(tail: _Tail, max_seconds: float,
                  allowed: Callable[[], bool]) -> AsyncIterator[str]:
    """The stream's text: a retry hint and the starting id, then entries as they come,
    the cursor and a keep-alive comment when quiet, until ``max_seconds`` have passed or
    the caller may no longer read (checked every :data:`RECHECK_SECONDS`: a revoked key, a
    disabled user, an ended or timed-out session stop the stream within seconds)."""
    started = last_sent = checked = time.monotonic()
    yield f"retry: 2000\nid: {tail.cursor}\n: following\n\n"
    try:
        while time.monotonic() - started < max_seconds:
            if time.monotonic() - checked >= RECHECK_SECONDS:
                if not await in_thread(allowed):
                    yield ": the caller may no longer read this log\n\n"
                    return
                checked = time.monotonic()
            rows = await in_thread(tail.batch)
            if rows:
                yield "".join(_sse_entry(e, ev) for e, ev in rows)
                last_sent = time.monotonic()
                if len(rows) >= STREAM_BATCH:
                    continue  # more may be waiting: no pause
            elif time.monotonic() - last_sent >= KEEPALIVE_SECONDS:
                # The cursor may have moved past entries that did not match: resume there.
                yield f"id: {tail.cursor}\n: keep-alive\n\n"
                last_sent = time.monotonic()
            await asyncio.sleep(POLL_SECONDS)
    finally:
        # Also when the client went away (the stream is cancelled): never lose a count.
        with anyio.CancelScope(shield=True):
            await in_thread(tail.settle)


# Each server-sent event as a parsed object (what SSE clients and the API fuzzer read).
_SSE_EVENT: Final = {"type": "object", "properties": {
    "event": {"type": "string", "enum": ["entry"]},
    "id": {"type": "string", "description": "The entry's index (or the position, on a "
           "keep-alive)"},
    "data": {"type": "string", "description": 'JSON: {"index": N, "event": {...}}'}}}


@router.get("/v1/logs/{log}/events/stream", responses={
    200: {"description": "Server-Sent Events: one `entry` event per new matching entry",
          "content": {"text/event-stream": {"schema": _SSE_EVENT}}}, **ERRORS})
async def stream_events(  # noqa: PLR0917 - one parameter per search filter
        log: str, request: Request, service: Service, principal: Principal = as_stream,
        since: _Text = None, until: _Text = None, actor: _Text = None, ip: _Text = None,
        action: _Text = None, category: _Text = None, outcome: _Text = None,
        target: _Text = None, source: _Text = None, request_id: _Text = None,
        trace_id: _Text = None, subject: _Text = None, text: _Text = None,
        after: Annotated[int | None, Query(ge=-1, description=(
            "Send entries after this index (-1: from the first); default: only new ones"))
                         ] = None,
        max_seconds: Annotated[int, Query(ge=1, le=MAX_STREAM_SECONDS, description=(
            "End the stream after this long (EventSource reconnects by itself)"))] = 300,
        ) -> Response:
    """Follow the search: each new matching entry as an SSE ``entry`` event, ``id`` its
    index. Resumes after the ``Last-Event-ID`` header when there is one, else after
    ``after``, else at the end of the log."""
    alog = open_log(service, log)
    flt = filter_of({"since": since, "until": until, "actor": actor, "ip": ip,
                     "action": action, "category": category, "outcome": outcome,
                     "target": target, "source": source, "request_id": request_id,
                     "trace_id": trace_id, "subject": subject, "text": text})
    resume = request.headers.get("last-event-id")
    if resume is not None and resume.strip():
        value = resume.strip()
        if not value.lstrip("-").isdigit() or len(value) > 20 or int(value) < -1:
            raise ValidationError("Last-Event-ID", "an entry index")
        after = int(value)
    await in_thread(alog.refresh_keys)
    check_answerable(alog, flt)  # a filter a locked log cannot answer fails now, not later
    cursor = after if after is not None else await in_thread(lambda: alog.size - 1)
    slots = _slots(request)
    if not slots.take(principal.key_id):
        raise HTTPException(429, f"at most {MAX_STREAMS} live tails at once; close one",
                            headers={"Retry-After": "5"})
    tail = _Tail(alog, flt, Reader(actor_of(principal), principal.role), cursor)
    follow = _follow(tail, max_seconds, still_allowed(request, principal))
    return _SlotResponse(follow, slots, principal.key_id,
                         {"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


# -- export ----------------------------------------------------------------------------------


def _csv_safe(value: Any) -> str:
    """A CSV cell: a value a spreadsheet would run as a formula gets a leading quote (also
    behind leading spaces or line breaks, which some spreadsheets skip)."""
    text = "" if value is None else str(value)
    first = text.lstrip(" \t\r\n")[:1]
    return "'" + text if first in ("=", "+", "-", "@") or text[:1] in ("\t", "\r") else text


def csv_row(index: int, ev: dict[str, Any]) -> list[str]:
    """An event's CSV cells, :data:`CSV_COLUMNS` (the target: its id, else its name)."""
    target = ev.get("target") or {}
    values = [index, ev.get("time", ""), (ev.get("actor") or {}).get("id", ""),
              ev.get("action", ""), ev.get("outcome", ""), ev.get("category", ""),
              target.get("id") or target.get("name") or "",
              (ev.get("source") or {}).get("service", ""), ev.get("id", "")]
    return [_csv_safe(v) for v in values]


def _write_rows(out: IO[bytes], rows: Iterator[tuple[Entry, dict[str, Any]]], fmt: str,
                limit: int) -> tuple[int, bool]:
    """Write at most ``limit`` rows in ``fmt``; (rows written, whether more matched)."""
    count = 0
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
    writer = csv.writer(text, lineterminator="\r\n") if fmt == "csv" else None
    if writer is not None:
        writer.writerow(CSV_COLUMNS)
    for entry, ev in rows:
        if count >= limit:
            text.detach()
            return count, True
        if writer is not None:
            writer.writerow(csv_row(entry.index, ev))
        else:
            # ASCII only: every line break inside a value (U+2028 too) is escaped.
            text.write(json.dumps({"index": entry.index, "event": ev}, ensure_ascii=True,
                                  separators=(",", ":")) + "\n")
        count += 1
    text.detach()
    return count, False


def _file_chunks(spool: IO[bytes]) -> Iterator[bytes]:
    """The spool file's bytes from the start, then it is closed."""
    try:
        spool.seek(0)
        while chunk := spool.read(_CHUNK):
            yield chunk
    finally:
        spool.close()


@router.get("/v1/logs/{log}/export", responses=answers(
    "text/csv", "The result as CSV or JSON Lines (application/x-ndjson), as a download"))
async def export_events(  # noqa: PLR0917 - one parameter per search filter
        log: str, service: Service, principal: Principal = as_export,
        since: _Text = None, until: _Text = None, actor: _Text = None, ip: _Text = None,
        action: _Text = None, category: _Text = None, outcome: _Text = None,
        target: _Text = None, source: _Text = None, request_id: _Text = None,
        trace_id: _Text = None, subject: _Text = None, text: _Text = None,
        format: Annotated[str, Query(max_length=8, description="csv or jsonl")] = "csv",
        limit: Annotated[int, Query(ge=1, le=MAX_EXPORT)] = MAX_EXPORT) -> Response:
    """The search's result (newest first) as a file; recorded as ``audit.export`` first."""
    alog = open_log(service, log)
    if format not in ("csv", "jsonl"):
        raise ValidationError("format", "use csv or jsonl")
    flt = filter_of({"since": since, "until": until, "actor": actor, "ip": ip,
                     "action": action, "category": category, "outcome": outcome,
                     "target": target, "source": source, "request_id": request_id,
                     "trace_id": trace_id, "subject": subject, "text": text})
    reader = Reader(actor_of(principal), principal.role)

    def run() -> tuple[IO[bytes], int, bool]:
        # 1. The rows of the log as it is now (the export's own record comes after it).
        end = alog.size
        spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115
        try:
            found = search(alog, flt, limit=limit + 1, newest_first=True, before=end)
            count, cut = _write_rows(spool, found, format, limit)
            # 2. The read is on record before a byte leaves.
            reader.record(alog, "audit.export",
                          {**flt.describe(alog.pseudonym), "format": format,
                           "tree_size": end, "truncated": cut}, count)
        except BaseException:
            spool.close()
            raise
        return spool, count, cut

    spool, count, cut = await in_thread(run)
    media = "text/csv; charset=utf-8" if format == "csv" else "application/x-ndjson"
    name = f"{log}-events.{format}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"',
               "Cache-Control": "no-store",
               "X-Sealtrail-Rows": str(count),
               "X-Sealtrail-Truncated": "true" if cut else "false",
               "X-Sealtrail-Limit": str(limit)}
    return StreamingResponse(_file_chunks(spool), media_type=media, headers=headers)


__all__ = ["CSV_COLUMNS", "MAX_EXPORT", "MAX_STREAMS", "ROUTES", "StreamSlots", "csv_row",
           "filter_of", "router"]
