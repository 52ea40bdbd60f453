"""The integrations record through a real client into a real service."""

from __future__ import annotations

import asyncio
import io
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any
from wsgiref.types import StartResponse, WSGIEnvironment
from wsgiref.util import setup_testing_defaults

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from sealtrail.client import AsyncClient, Client, DeliveryError
from sealtrail.core.errors import ValidationError
from sealtrail.integrations import (
    AuditHandler,
    AuditMiddleware,
    WSGIAuditMiddleware,
    acting_as,
    audited,
    structlog_processor,
)

from .service import Service


def by_action(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Stored events keyed by ``action`` plus target id (one each in these tests)."""
    return {f"{e['action']} {e.get('target', {}).get('id', '')}".strip(): e for e in events}


def test_logging_handler_records_only_audit_records(service: Service, tmp_path: Path) -> None:
    """Log records with an ``audit`` extra become events (time from the record); others not."""
    logger = logging.getLogger(f"test.audit.{uuid.uuid4().hex}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    with Client(service.url, service.ingest, spool_path=tmp_path / "spool.db") as client:
        handler = AuditHandler(client, raise_errors=True)
        logger.addHandler(handler)
        try:
            logger.info("plain message, not audited")
            logger.info("invoice read", extra={"audit": {
                "actor": {"id": "alice"}, "action": "invoice.read", "outcome": "success"}})
            with pytest.raises(ValidationError):
                logger.info("bad", extra={"audit": {"actor": {"id": "alice"}}})
            assert client.flush(10)
        finally:
            logger.removeHandler(handler)
            handler.close()
    service.stop()
    (stored,) = service.read()
    assert stored["action"] == "invoice.read"
    assert stored["actor"]["id"] == "alice"


def test_structlog_processor_records_and_correlates(service: Service, tmp_path: Path) -> None:
    """The processor records ``audit=...``, removes it from the event dict, adds audit_id."""
    with Client(service.url, service.ingest, spool_path=tmp_path / "spool.db") as client:
        process = structlog_processor(client)
        out = process(None, "info", {"event": "login", "audit": {
            "actor": {"id": "bob"}, "action": "user.login", "outcome": "failure"}})
        untouched = process(None, "info", {"event": "noise"})
        assert client.flush(10)
    assert "audit" not in out
    assert untouched == {"event": "noise"}
    service.stop()
    assert service.stored_ids() == [out["audit_id"]]


def _starlette_app() -> Starlette:
    async def ok(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    async def forbidden(request: Request) -> PlainTextResponse:
        return PlainTextResponse("no", status_code=403)

    async def boom(request: Request) -> PlainTextResponse:
        raise RuntimeError("boom")

    return Starlette(routes=[Route("/ok", ok), Route("/forbidden", forbidden, methods=["POST"]),
                             Route("/boom", boom), Route("/healthz", ok)])


def _user(scope: MutableMapping[str, Any]) -> Mapping[str, Any] | None:
    for key, value in scope.get("headers") or ():
        if key == b"x-user":
            return {"id": value.decode(), "type": "user"}
    return None


def test_asgi_middleware_records_one_event_per_request(service: Service, tmp_path: Path) -> None:
    """Each request becomes ``http.<method>`` on its path with the status's outcome, the
    client's address, the request id and trace id; excluded paths are not recorded."""
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"

    async def main() -> None:
        async with AsyncClient(service.url, service.ingest,
                               spool_path=tmp_path / "spool.db") as audit:
            app = AuditMiddleware(_starlette_app(), audit, actor=_user,
                                  exclude_paths=["/healthz"], category="data_access")
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False,
                                            client=("198.51.100.7", 5000))
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as web:
                headers = {"x-user": "alice", "x-request-id": "req-1",
                           "traceparent": f"00-{trace}-00f067aa0ba902b7-01"}
                assert (await web.get("/ok", headers=headers)).status_code == 200
                assert (await web.post("/forbidden", headers={"x-user": "eve"})).status_code \
                    == 403
                assert (await web.get("/missing")).status_code == 404
                assert (await web.get("/boom")).status_code == 500
                assert (await web.get("/healthz")).status_code == 200
            assert await audit.flush(10)

    asyncio.run(main())
    service.stop()
    events = by_action(service.read())
    assert sorted(events) == ["http.get /boom", "http.get /missing", "http.get /ok",
                              "http.post /forbidden"]
    ok = events["http.get /ok"]
    assert ok["outcome"] == "success"
    assert ok["actor"] == {"id": "alice", "type": "user", "ip": "198.51.100.7",
                           "user_agent": ok["actor"]["user_agent"]}
    assert ok["request_id"] == "req-1"
    assert ok["trace_id"] == trace
    assert ok["category"] == "data_access"
    assert ok["target"] == {"type": "http_path", "id": "/ok"}
    assert ok["metadata"]["status"] == 200
    assert events["http.post /forbidden"]["outcome"] == "denied"
    assert events["http.get /missing"]["outcome"] == "failure"
    assert events["http.get /missing"]["actor"]["id"] == "anonymous"
    assert events["http.get /boom"]["outcome"] == "error"


def test_asgi_middleware_with_a_fail_closed_client_answers_500_when_down(
        service: Service) -> None:
    """With fail_closed and the service down, a request that would succeed gets a 500: the
    answer is not sent unless its audit event was stored."""
    service.stop()

    async def main() -> int:
        with Client(service.url, service.ingest, failure_mode="fail_closed",
                    timeout=0.5) as audit:
            app = AuditMiddleware(_starlette_app(), audit)
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as web:
                return (await web.get("/ok")).status_code

    assert asyncio.run(main()) == 500


def _wsgi_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path == "/boom":
        raise RuntimeError("boom")
    if path == "/lazy":
        return _lazy(start_response)
    status = "401 Unauthorized" if path == "/login" else "200 OK"
    start_response(status, [("Content-Type", "text/plain")])
    return [b"hello"]


def _lazy(start_response: StartResponse) -> Iterator[bytes]:
    start_response("201 Created", [("Content-Type", "text/plain")])
    yield b"made"


def _call(app: Callable[[WSGIEnvironment, StartResponse], Iterable[bytes]], path: str,
          **env: str) -> tuple[str, bytes]:
    environ: dict[str, Any] = {"PATH_INFO": path, "REMOTE_ADDR": "192.0.2.44",
                               "wsgi.input": io.BytesIO(), **env}
    setup_testing_defaults(environ)
    seen: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]],
                       exc_info: Any = None) -> Callable[[bytes], object]:
        seen.append(status)
        return lambda data: None

    body = app(environ, start_response)
    try:
        data = b"".join(body)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return seen[0], data


def test_wsgi_middleware_records_one_event_per_request(service: Service, tmp_path: Path) -> None:
    """WSGI requests are recorded like ASGI ones, lazy apps and exceptions included."""
    with Client(service.url, service.ingest, spool_path=tmp_path / "spool.db") as audit:
        app = WSGIAuditMiddleware(_wsgi_app, audit,
                                  actor=lambda env: {"id": env.get("HTTP_X_USER", "anon")})
        assert _call(app, "/hello", HTTP_X_USER="dave", HTTP_X_REQUEST_ID="r-9") == \
            ("200 OK", b"hello")
        assert _call(app, "/login", REQUEST_METHOD="POST")[0] == "401 Unauthorized"
        assert _call(app, "/lazy", REQUEST_METHOD="PUT") == ("201 Created", b"made")
        with pytest.raises(RuntimeError):
            _call(app, "/boom", REQUEST_METHOD="DELETE")
        assert audit.flush(10)
    service.stop()
    events = by_action(service.read())
    hello = events["http.get /hello"]
    assert hello["outcome"] == "success"
    assert hello["actor"]["id"] == "dave"
    assert hello["actor"]["ip"] == "192.0.2.44"
    assert hello["request_id"] == "r-9"
    assert events["http.post /login"]["outcome"] == "denied"
    assert events["http.put /lazy"]["outcome"] == "success"
    assert events["http.put /lazy"]["metadata"]["status"] == 201
    assert events["http.delete /boom"]["outcome"] == "error"


def test_audited_decorator_sync_and_async(service: Service, tmp_path: Path) -> None:
    """Decorated calls record success, or error (and re-raise); sync and async functions;
    the actor comes from acting_as; without one the call is refused before it runs."""
    ran: list[str] = []
    with Client(service.url, service.ingest, spool_path=tmp_path / "spool.db") as audit:

        @audited(audit, "invoice.pay", target=lambda number, **_: {"type": "invoice",
                                                                    "id": number})
        def pay(number: str, *, fail: bool = False) -> str:
            ran.append(number)
            if fail:
                raise ValueError("card declined")
            return f"paid {number}"

        @audited(audit, "report.build", actor={"id": "svc", "type": "service"})
        async def build(fail: bool) -> int:
            if fail:
                raise KeyError("missing")
            return 7

        with acting_as({"id": "alice"}):
            assert pay("INV-1") == "paid INV-1"
            with pytest.raises(ValueError, match="declined"):
                pay("INV-2", fail=True)
        with pytest.raises(ValidationError) as info:
            pay("INV-3")
        assert info.value.field == "actor"
        assert ran == ["INV-1", "INV-2"]
        assert asyncio.run(build(False)) == 7
        with pytest.raises(KeyError):
            asyncio.run(build(True))
        assert audit.flush(10)
    service.stop()
    stored = service.read()
    assert [(e["action"], e["outcome"], e.get("target", {}).get("id"), e.get("reason"))
            for e in stored] == [
        ("invoice.pay", "success", "INV-1", None),
        ("invoice.pay", "error", "INV-2", "ValueError"),
        ("report.build", "success", None, None),
        ("report.build", "error", None, "KeyError"),
    ]
    assert {e["actor"]["id"] for e in stored} == {"alice", "svc"}


def test_audited_async_function_with_async_client(service: Service, tmp_path: Path) -> None:
    """An async function audited through an AsyncClient records both outcomes; a sync
    function cannot use an AsyncClient."""

    async def main() -> None:
        async with AsyncClient(service.url, service.ingest,
                               spool_path=tmp_path / "spool.db") as audit:

            @audited(audit, "job.run", actor={"id": "cron"})
            async def job(fail: bool) -> str:
                if fail:
                    raise RuntimeError("no")
                return "done"

            assert await job(False) == "done"
            with pytest.raises(RuntimeError):
                await job(True)
            with pytest.raises(TypeError):
                audited(audit, "sync.fn", actor={"id": "x"})(lambda: None)
            assert await audit.flush(10)

    asyncio.run(main())
    service.stop()
    assert [e["outcome"] for e in service.read()] == ["success", "error"]


def test_fail_closed_decorator_surfaces_delivery_errors(service: Service) -> None:
    """With a fail_closed client and the service down, the decorated call raises DeliveryError."""
    service.stop()
    with Client(service.url, service.ingest, failure_mode="fail_closed", timeout=0.5) as audit:

        @audited(audit, "thing.do", actor={"id": "x"})
        def do() -> int:
            return 1

        with pytest.raises(DeliveryError):
            do()
