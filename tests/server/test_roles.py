"""Every route against every caller: the status is exactly what ``ROUTE_ROLES`` implies.

Callers are: no header, malformed headers, tokens that look right but are not keys, a valid key
of each role and scope, an expired key and a revoked key. Log routes are called on ``default``,
so a key scoped to ``other`` must be refused there. The expected status is computed here from
the table and a small independent reading of the scope rule, never from the app's own checks.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from sealtrail.log.auditlog import AuditLog
from sealtrail.monitor.alerts import Alert, AlertStore, monitor_db_path, new_alert_id
from sealtrail.server.app import (
    CONSOLE_OPEN_ROUTES,
    CONSOLE_STATIC,
    DOCS_ASSETS,
    OPEN_ROUTES,
    ROUTE_ROLES,
    ServiceConfig,
    create_app,
)
from tests.review_workflow.requests import REVIEW_REQUESTS
from tests.server.conftest import DEAD_KEYS, KEYS, Service, seed_event
from tests.server.test_admin_api import ADMIN_OK, ADMIN_REQUESTS

Route = tuple[str, str]

# Callers that present no valid key: header value, or None for no header at all.
NO_KEY: dict[str, str | None] = {
    "no_header": None,
    "basic_scheme": "Basic dXNlcjpwYXNzd29yZA==",
    "bearer_empty": "Bearer",
    "bearer_garbage": "Bearer not-a-token",
    "unknown_key": "Bearer st_0000000000000000_" + "A" * 43,
}
CALLERS = [*NO_KEY, "wrong_secret", *KEYS, *DEAD_KEYS]
DOCS = frozenset({"/docs", "/openapi.json", "/redoc", "/docs/oauth2-redirect", DOCS_ASSETS,
                  CONSOLE_STATIC})
LOG = "default"
_names = itertools.count()


def _request(method: str, path: str) -> Callable[[Service], dict[str, Any]]:
    def build(_s: Service) -> dict[str, Any]:
        return {"method": method, "url": path.replace("{log}", LOG)}
    return build


def _new_alert(service: Service) -> str:
    """An open alert in the running service's alert store (the monitor shares the file)."""
    store = AlertStore(monitor_db_path(service.data_dir))
    alert_id = new_alert_id()
    store.put(Alert(alert_id, LOG, "test.rule", "k", "Test", "low", "open",
                    "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", 1, updated_at="",
                    updated_by="test"))
    store.close()
    return alert_id


def _release_request(service: Service) -> dict[str, Any]:
    """The release of a hold placed just now with the library (as ``sealtrail hold add``)."""
    subject = f"held-{next(_names)}"
    with AuditLog.open(service.data_dir, LOG, create=False) as alog:
        alog.hold_subject(subject, reason="matter 2", actor={"id": "test"})
        ref = alog.holds()[-1]["subject_ref"]
        number = max(h["hold"] for h in alog.holds() if h["subject_ref"] == ref)
    return {"method": "DELETE", "url": f"/v1/logs/{LOG}/holds/{number}",
            "json": {"subject": subject, "reason": "matter closed"}}


# A minimally valid request for each route (a route missing here fails its tests by name).
REQUESTS: dict[Route, Callable[[Service], dict[str, Any]]] = {
    ("POST", "/v1/logs/{log}/events"): lambda _s: {
        "method": "POST", "url": f"/v1/logs/{LOG}/events", "json": [seed_event(1)]},
    ("GET", "/v1/logs/{log}/events"): _request("GET", "/v1/logs/{log}/events"),
    ("GET", "/v1/logs/{log}/entries"): lambda _s: {
        "method": "GET", "url": f"/v1/logs/{LOG}/entries", "params": {"start": 0, "end": 1}},
    ("GET", "/v1/logs/{log}/checkpoint"): _request("GET", "/v1/logs/{log}/checkpoint"),
    ("GET", "/v1/logs/{log}/proof/inclusion"): lambda _s: {
        "method": "GET", "url": f"/v1/logs/{LOG}/proof/inclusion", "params": {"index": 0}},
    ("GET", "/v1/logs/{log}/proof/consistency"): lambda _s: {
        "method": "GET", "url": f"/v1/logs/{LOG}/proof/consistency", "params": {"first": 0}},
    ("GET", "/tlog/{log}/checkpoint"): _request("GET", "/tlog/{log}/checkpoint"),
    ("GET", "/tlog/{log}/tile/{path:path}"): lambda _s: {
        "method": "GET", "url": f"/tlog/{LOG}/tile/0/000.p/1"},
    ("GET", "/tlog/{log}/tile/entries/{path:path}"): lambda _s: {
        "method": "GET", "url": f"/tlog/{LOG}/tile/entries/000.p/1"},
    ("GET", "/v1/logs"): _request("GET", "/v1/logs"),
    ("POST", "/v1/logs"): lambda _s: {
        "method": "POST", "url": "/v1/logs", "json": {"name": f"newlog-{next(_names)}"}},
    ("GET", "/metrics"): _request("GET", "/metrics"),
    ("GET", "/v1/logs/{log}/alerts"): _request("GET", "/v1/logs/{log}/alerts"),
    ("POST", "/v1/logs/{log}/alerts/{alert_id}/ack"): lambda s: {
        "method": "POST", "url": f"/v1/logs/{LOG}/alerts/{_new_alert(s)}/ack",
        "json": {"reason": "looking into it"}},
    ("POST", "/v1/logs/{log}/alerts/{alert_id}/resolve"): lambda s: {
        "method": "POST", "url": f"/v1/logs/{LOG}/alerts/{_new_alert(s)}/resolve",
        "json": {"reason": "false positive: a load test"}},
    ("POST", "/v1/logs/{log}/import"): lambda _s: {
        "method": "POST", "url": f"/v1/logs/{LOG}/import", "params": {"source": "github"},
        "content": json.dumps([{"action": "repo.create", "actor": "octocat",
                                "@timestamp": 1767225600000,
                                "_document_id": f"doc-{next(_names)}"}]).encode()},
    ("GET", "/v1/logs/{log}/vkey"): _request("GET", "/v1/logs/{log}/vkey"),
    ("GET", "/v1/logs/{log}/overview"): _request("GET", "/v1/logs/{log}/overview"),
    ("GET", "/v1/logs/{log}/witnessing"): _request("GET", "/v1/logs/{log}/witnessing"),
    ("GET", "/ui/"): _request("GET", "/ui/"),
    ("GET", "/ui/logs/{log}/events"): _request("GET", "/ui/logs/{log}/events"),
    ("GET", "/ui/logs/{log}/events/{index}"): lambda _s: {
        "method": "GET", "url": f"/ui/logs/{LOG}/events/0"},
    ("GET", "/ui/logs/{log}/alerts"): _request("GET", "/ui/logs/{log}/alerts"),
    ("GET", "/ui/logs/{log}/review"): _request("GET", "/ui/logs/{log}/review"),
    ("GET", "/ui/logs/{log}/compliance"): _request("GET", "/ui/logs/{log}/compliance"),
    ("GET", "/ui/admin"): _request("GET", "/ui/admin"),
    ("GET", "/v1/logs/{log}/events/stream"): lambda _s: {
        "method": "GET", "url": f"/v1/logs/{LOG}/events/stream", "params": {"max_seconds": 1}},
    ("GET", "/v1/logs/{log}/export"): lambda _s: {
        "method": "GET", "url": f"/v1/logs/{LOG}/export", "params": {"limit": 1}},
    ("GET", "/v1/logs/{log}/alerts/{alert_id}"): lambda s: {
        "method": "GET", "url": f"/v1/logs/{LOG}/alerts/{_new_alert(s)}"},
    ("GET", "/healthz"): _request("GET", "/healthz"),
    ("GET", "/readyz"): _request("GET", "/readyz"),
    ("GET", "/v1/logs/{log}/reports"): lambda _s: {
        "method": "GET", "url": f"/v1/logs/{LOG}/reports", "params": {"standard": "soc2"}},
    ("GET", "/v1/logs/{log}/evidence"): lambda _s: {
        "method": "GET", "url": f"/v1/logs/{LOG}/evidence", "params": {"action": "seed.*"}},
    ("GET", "/v1/logs/{log}/retention"): _request("GET", "/v1/logs/{log}/retention"),
    ("PUT", "/v1/logs/{log}/retention"): lambda _s: {
        "method": "PUT", "url": f"/v1/logs/{LOG}/retention", "json": {"preset": "pci-dss"}},
    ("POST", "/v1/logs/{log}/holds"): lambda _s: {
        "method": "POST", "url": f"/v1/logs/{LOG}/holds",
        "json": {"subject": f"held-{next(_names)}", "reason": "matter 1"}},
    ("DELETE", "/v1/logs/{log}/holds/{hold}"): _release_request,
    **REVIEW_REQUESTS,
    **ADMIN_REQUESTS,
}


def expected_status(route: Route, caller: str) -> int:
    """What the table implies for one caller on one route (log routes called on ``default``)."""
    method, path = route
    success = ADMIN_OK.get(route, 201 if method == "POST" and "/alerts/" not in path else 200)
    if route in OPEN_ROUTES:
        return success
    if path.startswith("/ui/") and caller == "no_header":
        return 200  # a console page with no key and no session: the sign-in form
    if caller not in KEYS:
        return 401
    role, scope = KEYS[caller]
    if role not in ROUTE_ROLES[route]:
        return 403
    if "{log}" in path and role != "auditor" and scope not in (None, LOG):
        return 403
    return success


def headers_of(service: Service, caller: str) -> dict[str, str]:
    """The headers a caller sends."""
    if caller in NO_KEY:
        value = NO_KEY[caller]
        return {} if value is None else {"Authorization": value}
    if caller == "wrong_secret":
        # The id of a live admin key, with a secret that is not its own.
        return {"Authorization": f"Bearer st_{service.key_id('admin')}_{'B' * 43}"}
    return service.auth(caller)


CASES = [pytest.param(route, caller, id=f"{route[0]} {route[1]} as {caller}")
         for route in [*ROUTE_ROLES, *sorted(OPEN_ROUTES)] for caller in CALLERS]


@pytest.mark.parametrize(("route", "caller"), CASES)
def test_route_status_matches_role_table(service: Service, client: httpx.Client,
                                         route: Route, caller: str) -> None:
    """The status of this caller on this route is exactly the one the role table implies."""
    assert route in REQUESTS, f"no test request for {route}: add one to REQUESTS"
    response = client.request(**REQUESTS[route](service), headers=headers_of(service, caller))
    want = expected_status(route, caller)
    assert response.status_code == want, (want, response.status_code, response.text)
    if want == 401:
        assert response.headers.get("www-authenticate") == "Bearer"
    if route[1].startswith("/ui/") and caller == "no_header":
        assert 'name="password"' in response.text  # the sign-in form, and nothing else
        assert "data-role" in response.text
        assert 'data-role=""' in response.text


def test_app_routes_are_exactly_the_role_table(tmp_path: Path) -> None:
    """Every route the app exposes has a role entry or is a deliberately open health check."""
    app = create_app(ServiceConfig(tmp_path))
    exposed: set[Route] = set()
    for route in app.routes:
        path = getattr(route, "path", "")
        if path in DOCS:
            continue
        assert isinstance(route, APIRoute), f"unexpected route kind at {path}: {route!r}"
        exposed |= {(method, path) for method in route.methods or ()}
    assert not set(ROUTE_ROLES) & set(OPEN_ROUTES)
    # The /v1 and /metrics routes in particular: a new one without a role fails here.
    assert {r for r in exposed if r[1].startswith("/v1") or r[1] == "/metrics"} == {
        r for r in ROUTE_ROLES if r[1].startswith("/v1") or r[1] == "/metrics"}
    assert exposed == set(ROUTE_ROLES) | set(OPEN_ROUTES) | set(CONSOLE_OPEN_ROUTES)
    app.state.logs.close()
    app.state.keys.close()


def test_every_route_has_a_test_request() -> None:
    """The matrix above covers every route of the table (a new route needs a request here)."""
    assert set(REQUESTS) == set(ROUTE_ROLES) | set(OPEN_ROUTES)


def test_scoped_key_works_on_its_own_log(service: Service, client: httpx.Client) -> None:
    """A key scoped to ``other`` may append to and read proofs of ``other`` itself."""
    posted = client.post("/v1/logs/other/events", json=[seed_event(2)],
                         headers=service.auth("ingest_other"))
    assert posted.status_code == 201, posted.text
    checkpoint = client.get("/v1/logs/other/checkpoint", headers=service.auth("ingest_other"))
    assert checkpoint.status_code == 200


def test_scoped_reader_is_refused_on_another_log(service: Service,
                                                 client: httpx.Client) -> None:
    """A reader scoped to ``default`` gets 403 on ``other``, for search and for proofs alike."""
    for url in ("/v1/logs/other/events", "/v1/logs/other/entries",
                "/v1/logs/other/checkpoint"):
        response = client.get(url, headers=service.auth("reader_default"))
        assert response.status_code == 403, (url, response.text)


def test_scoped_key_on_unknown_log_is_forbidden_not_not_found(
        service: Service, client: httpx.Client) -> None:
    """A scoped key learns nothing about other log names: 403 whether or not the log exists."""
    for name in ("other", "no-such-log"):
        response = client.get(f"/v1/logs/{name}/checkpoint",
                              headers=service.auth("ingest_default"))
        assert response.status_code == 403, (name, response.text)


def test_admin_reads_no_event_content(service: Service, client: httpx.Client) -> None:
    """An admin "reads no event content" (docs/service.md): not through entry bundles either."""
    entries = client.get(f"/v1/logs/{LOG}/entries", headers=service.auth("admin"))
    assert entries.status_code == 403
    bundle = client.get(f"/tlog/{LOG}/tile/entries/000.p/1", headers=service.auth("admin"))
    assert bundle.status_code == 403 or b'"actor"' not in bundle.content, bundle.content[:200]
