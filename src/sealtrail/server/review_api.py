"""Review routes: the periodic log review (PCI DSS 10.4.1, 10.4.3; HIPAA 164.308(a)(1)(ii)(D)).

Listing periods and opening one are for auditors and admins (an admin may see how the review
stands; opening a period shows actor ids and event indexes, so it is an audited read). The
steps of the review (a disposition per exception, closing an assignment, the sign-off) are
for auditors only: the people who run the system do not review themselves (separation of
duties, PCI DSS 10.4.1 and 7.2). Each step is an event in the log naming the caller
(``deps.actor_of``), its note and how it came in (``metadata.via``: ``console`` for a session,
``api`` for a key); the state answered is read back from the log (compliance/review.py).

An admin reads no event content: the period it opens is answered with counts only (no
client-written action names, actor ids, alert messages or example entries).
"""

from __future__ import annotations

import functools
from datetime import date
from typing import Any, Final

import msgspec
from fastapi import APIRouter, HTTPException, Query, Request, Response

from sealtrail.compliance.review import MAX_NOTE, ConflictError, ReviewBook, parse_period
from sealtrail.log.apikeys import Principal
from sealtrail.log.reads import Reader
from sealtrail.server.deps import (
    Service,
    actor_of,
    in_thread,
    json_object,
    open_log,
    requires,
    text_field,
)
from sealtrail.server.openapi import ERRORS, json_body
from sealtrail.server.state import ServiceState

READ_ROLES: Final = frozenset({"auditor", "admin"})
REVIEW_ROLES: Final = frozenset({"auditor"})
_LIST = "/v1/logs/{log}/reviews"
_ITEM = "/v1/logs/{log}/reviews/{period}"
_SIGN = "/v1/logs/{log}/reviews/{period}/sign-off"
_EXC = "/v1/logs/{log}/reviews/{period}/exceptions/{exception_id}"
_CLOSE = "/v1/logs/{log}/reviews/{period}/assignments/{assignment_id}/close"
ROUTES: Final = {
    ("GET", _LIST): READ_ROLES,
    ("GET", _ITEM): READ_ROLES,
    ("POST", _SIGN): REVIEW_ROLES,
    ("POST", _EXC): REVIEW_ROLES,
    ("POST", _CLOSE): REVIEW_ROLES,
}
# A note of MAX_NOTE characters may take 6 bytes each as JSON (\uXXXX escapes), plus the
# other fields: the body is never read past this.
MAX_BODY: Final = MAX_NOTE * 6 + 2048

router = APIRouter()
as_list = requires(ROUTES, "GET", _LIST)
as_item = requires(ROUTES, "GET", _ITEM)
as_sign = requires(ROUTES, "POST", _SIGN)
as_exc = requires(ROUTES, "POST", _EXC)
as_close = requires(ROUTES, "POST", _CLOSE)

_NOTE = {"type": "string", "minLength": 1, "maxLength": MAX_NOTE}
_SIGN_BODY: Final = json_body({"type": "object", "required": ["note"],
                               "properties": {"note": _NOTE}},
                              "What was reviewed and concluded")
_EXC_BODY: Final = json_body({"type": "object", "required": ["disposition", "note"],
                              "properties": {
                                  "disposition": {"type": "string",
                                                  "enum": ["benign", "assigned"]},
                                  "note": _NOTE,
                                  "assignee": {"type": "string", "maxLength": 256}}},
                             "benign (with why), or assigned to someone (with what to do)")
_CLOSE_BODY: Final = json_body({"type": "object", "required": ["note"],
                                "properties": {"note": _NOTE}}, "How it was resolved")


def _json(doc: Any, status: int = 200) -> Response:
    return Response(msgspec.json.encode(doc), status_code=status, media_type="application/json")


def _book(service: ServiceState, log: str) -> ReviewBook:
    return ReviewBook(open_log(service, log), service.alert_store)


@router.get(_LIST, responses=ERRORS)
async def list_reviews(log: str, service: Service, *,
                       since: str | None = Query(None, max_length=10,
                                                 description="first period, YYYY-MM-DD"),
                       until: str | None = Query(None, max_length=10,
                                                 description="last period, YYYY-MM-DD"),
                       principal: Principal = as_list) -> Response:
    """The log's review periods, newest first, with their status (pending, overdue,
    signed_off, reopened: signed off, then an exception appeared) and how many exceptions
    are open; by default the last 30 days."""
    book = _book(service, log)
    now = service.config.clock()
    first = parse_period(since, now, name="since") if since is not None else None
    last = parse_period(until, now, name="until") if until is not None else None
    items = await in_thread(functools.partial(book.listing, now, first, last))
    return _json({"log": log, "grace_hours": book.grace.total_seconds() / 3600,
                  "periods": [i.brief() for i in items]})


@router.get(_ITEM, responses=ERRORS)
async def show_review(log: str, period: str, service: Service,
                      principal: Principal = as_item) -> Response:
    """One period: its summary, alerts, exceptions with their disposition, assignments and
    sign-off (recorded as an audited read)."""
    book = _book(service, log)
    now = service.config.clock()
    day = parse_period(period, now)
    item = await in_thread(functools.partial(
        book.item, day, now, reader=Reader(actor_of(principal), principal.role)))
    return _json(item.to_json(counts_only=principal.role != "auditor"))


def _via(principal: Principal) -> str:
    """How a step came in: a person's console session, or an API key."""
    return "console" if principal.kind == "user" else "api"


async def _step(service: ServiceState, log: str, period: str, fn: Any) -> Response:
    """Run one review step: 201 with the period's item (the step is a new entry of the log);
    a refused step is 409, an unknown exception or assignment 404."""
    book = _book(service, log)
    now = service.config.clock()
    day: date = parse_period(period, now)
    try:
        item = await in_thread(functools.partial(fn, book, day, now))
    except ConflictError as exc:
        raise HTTPException(409, str(exc)) from exc
    except LookupError as exc:
        raise HTTPException(404, str(exc.args[0]) if exc.args else "not found") from exc
    return _json(item.to_json(), 201)


@router.post(_SIGN, responses=ERRORS, openapi_extra=_SIGN_BODY)
async def sign_off(log: str, period: str, request: Request, service: Service,
                   principal: Principal = as_sign) -> Response:
    """Sign the period off (409 while an exception has no disposition or the day is not
    over, or when it is signed off already)."""
    doc = await json_object(request, MAX_BODY, too_large="note")
    note = text_field(doc, "note")

    def run(book: ReviewBook, day: date, now: Any) -> Any:
        return book.sign_off(day, actor=actor_of(principal), role=principal.role,
                             note=note or "", now=now, via=_via(principal))

    return await _step(service, log, period, run)


@router.post(_EXC, responses=ERRORS, openapi_extra=_EXC_BODY)
async def dispose(log: str, period: str, exception_id: str, request: Request,  # noqa: PLR0917 - FastAPI's parameters
                  service: Service, principal: Principal = as_exc) -> Response:
    """Mark an exception benign, or assign it to someone (409 when it has a disposition)."""
    doc = await json_object(request, MAX_BODY, too_large="note")
    disposition = text_field(doc, "disposition")
    note = text_field(doc, "note")
    assignee = text_field(doc, "assignee", required=False)

    def run(book: ReviewBook, day: date, now: Any) -> Any:
        return book.dispose(day, exception_id, disposition or "", actor=actor_of(principal),
                            role=principal.role, note=note or "", now=now, assignee=assignee,
                            via=_via(principal))

    return await _step(service, log, period, run)


@router.post(_CLOSE, responses=ERRORS, openapi_extra=_CLOSE_BODY)
async def close_assignment(log: str, period: str, assignment_id: str,  # noqa: PLR0917 - FastAPI's parameters
                           request: Request, service: Service,
                           principal: Principal = as_close) -> Response:
    """Close an assignment with how it was resolved (409 when it is closed already)."""
    doc = await json_object(request, MAX_BODY, too_large="note")
    note = text_field(doc, "note")

    def run(book: ReviewBook, day: date, now: Any) -> Any:
        return book.close(day, assignment_id, actor=actor_of(principal),
                          role=principal.role, note=note or "", now=now, via=_via(principal))

    return await _step(service, log, period, run)
