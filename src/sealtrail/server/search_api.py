"""Reading event content: search (``GET /v1/logs/{log}/events``) and raw entries.

For readers and auditors only (an admin manages keys and logs, and reads no event content).
Each read is itself appended to the log it reads, as an ``audit_access`` event naming the key,
what it asked for and how many events it got: who looked at the trail is on the trail.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Any, Final

import msgspec
from fastapi import APIRouter, Query, Response

from sealtrail.core.errors import ValidationError
from sealtrail.core.timefmt import parse_time
from sealtrail.log.apikeys import Principal
from sealtrail.log.reads import Reader, read_entries
from sealtrail.log.search import Filter, search_page
from sealtrail.server.deps import READERS, Service, actor_of, in_thread, open_log, requires
from sealtrail.server.openapi import ERRORS, answers
from sealtrail.server.responses import MsgspecJson

MAX_PAGE: Final = 1000
MAX_ENTRIES: Final = 1000
ROUTES: Final = {
    ("GET", "/v1/logs/{log}/events"): READERS,
    ("GET", "/v1/logs/{log}/entries"): READERS,
}

router = APIRouter()
as_search = requires(ROUTES, "GET", "/v1/logs/{log}/events")
as_entries = requires(ROUTES, "GET", "/v1/logs/{log}/entries")


@router.get("/v1/logs/{log}/events", responses=ERRORS)
async def get_events(  # noqa: PLR0917 - one parameter per documented query filter
        log: str, service: Service, principal: Principal = as_search,
        since: str | None = None, until: str | None = None,
        actor: str | None = None, ip: str | None = None,
        action: str | None = None, category: str | None = None,
        outcome: str | None = None, target: str | None = None,
        source: str | None = None, request_id: str | None = None,
        trace_id: str | None = None, subject: str | None = None,
        text: str | None = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
        cursor: Annotated[int | None, Query(ge=0)] = None,
        order: str = "newest") -> Response:
    """Search events; newest first by default; ``cursor`` continues a previous page."""
    alog = open_log(service, log)
    if order not in ("newest", "oldest"):
        raise ValidationError("order", "use newest or oldest")
    flt = Filter(actor=actor, actor_ip=ip, subject=subject, action=action,
                 category=category, outcome=outcome, target=target, source=source,
                 request_id=request_id, trace_id=trace_id,
                 since=_time(since, "since"), until=_time(until, "until"), text=text)
    newest = order == "newest"

    def run() -> tuple[list[dict[str, Any]], int | None, dict[str, int]]:
        page = search_page(alog, flt, limit=limit, newest_first=newest, cursor=cursor,
                           reader=Reader(actor_of(principal), principal.role))
        return ([{"index": e.index, "event": ev} for e, ev in page.rows], page.next_cursor,
                alog.index_status())

    events, nxt, indexed = await in_thread(run)
    # How far the blind index has caught up (a search by actor, address, target or subject
    # catches it up first, so its answer covers every entry committed before it began).
    return MsgspecJson({"events": events, "next_cursor": nxt, "index": indexed})


@router.get("/v1/logs/{log}/entries",
            responses=answers("application/x-ndjson", "Entries as JSON Lines"))
async def get_entries(log: str, service: Service, principal: Principal = as_entries,
                      start: Annotated[int, Query(ge=0)] = 0,
                      end: Annotated[int | None, Query(ge=0)] = None) -> Response:
    """Raw entries ``start <= i < end`` as JSON Lines (at most 1000 per request)."""
    alog = open_log(service, log)

    def run() -> bytes:
        size = alog.size
        stop = min(size if end is None else min(end, size), start + MAX_ENTRIES)
        if start > stop:
            raise ValidationError("start", f"past the log size {size}")
        alog.refresh_keys()
        selected = read_entries(alog, start, stop,
                                reader=Reader(actor_of(principal), principal.role))
        lines = [msgspec.json.encode({"index": e.index,
                                      "leaf": base64.b64encode(e.leaf).decode(),
                                      "event": alog.read(e)})
                 for e in selected]
        return b"".join(line + b"\n" for line in lines)

    return Response(await in_thread(run), media_type="application/x-ndjson")


def _time(value: str | None, name: str) -> datetime | None:
    """A query's time bound (RFC 3339), or 422 naming the parameter."""
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise ValidationError(name, str(exc)) from exc
