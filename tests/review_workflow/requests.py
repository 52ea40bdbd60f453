"""A minimally valid request for each review route, for tests/server/test_roles.py's matrix.

Each builder prepares what its route needs with the library, as the review's own tools would:
failed logins by a fresh actor make an exception of today's period; an assignment is made
with the engine. Yesterday's period (no event, no exception) is the one signed off.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sealtrail.compliance.review import ReviewBook, access_exception_id
from sealtrail.log.auditlog import AuditLog

if TYPE_CHECKING:
    from tests.server.conftest import Service

LOG = "default"
_names = itertools.count()
_REVIEWER = {"id": "user:role-test", "type": "user", "name": "role-test"}


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


def _failing_actor(service: Service) -> str:
    """Three failed logins by a new actor today: an exception of today's period."""
    actor = f"guesser-{next(_names)}"
    with AuditLog.open(service.data_dir, LOG, create=False) as alog:
        alog.append_many([{"action": "user.login", "actor": {"id": actor},
                           "outcome": "failure", "category": "authentication"}] * 3)
    return actor


def _exception_request(service: Service) -> dict[str, Any]:
    actor = _failing_actor(service)
    return {"method": "POST",
            "url": f"/v1/logs/{LOG}/reviews/{_today()}/exceptions/"
                   f"{access_exception_id(actor)}",
            "json": {"disposition": "benign", "note": "a user who forgot a password"}}


def _close_request(service: Service) -> dict[str, Any]:
    actor = _failing_actor(service)
    now = datetime.now(UTC)
    with AuditLog.open(service.data_dir, LOG, create=False) as alog:
        item = ReviewBook(alog, None).dispose(
            now.date(), access_exception_id(actor), "assigned", actor=_REVIEWER,
            role="auditor", note="ask the user", assignee="helpdesk", now=now)
    asg = item.assignments[-1].id
    return {"method": "POST",
            "url": f"/v1/logs/{LOG}/reviews/{_today()}/assignments/{asg}/close",
            "json": {"note": "the user confirmed"}}


_signed = itertools.count(1)


def _sign_request(_s: Service) -> dict[str, Any]:
    # A day before the log began (no event, no exception), a different one per call.
    day = (datetime.now(UTC) - timedelta(days=next(_signed))).date().isoformat()
    return {"method": "POST", "url": f"/v1/logs/{LOG}/reviews/{day}/sign-off",
            "json": {"note": "nothing happened that day"}}


REVIEW_REQUESTS: dict[tuple[str, str], Callable[[Service], dict[str, Any]]] = {
    ("GET", "/v1/logs/{log}/reviews"): lambda _s: {
        "method": "GET", "url": f"/v1/logs/{LOG}/reviews"},
    ("GET", "/v1/logs/{log}/reviews/{period}"): lambda _s: {
        "method": "GET", "url": f"/v1/logs/{LOG}/reviews/{_today()}"},
    ("POST", "/v1/logs/{log}/reviews/{period}/sign-off"): _sign_request,
    ("POST", "/v1/logs/{log}/reviews/{period}/exceptions/{exception_id}"): _exception_request,
    ("POST", "/v1/logs/{log}/reviews/{period}/assignments/{assignment_id}/close"):
        _close_request,
}
