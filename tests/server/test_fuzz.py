"""Schemathesis against the real service: every operation of its live ``/openapi.json``, fuzzed.

Each operation is called with a valid key of a role allowed to call it (``ROUTE_ROLES``: log
reads by an auditor, appends by an ingest key, administration and metrics by an admin), so
requests get past authentication into the route's own code. Cases are positive and negative;
besides random log names (which stop at 404), cases name the real log ``default``, try small
integers for the proof and paging parameters, and try a short list of tile paths. At most
``MAX_EXAMPLES`` cases per operation, derandomized: every run sends the same requests.

What must hold for every answer:

- no 5xx (schemathesis ``not_a_server_error``);
- where the schema declares a JSON body for the status, the answer conforms to it
  (``response_schema_conformance``);
- the answer has a content type, a JSON one parses, and every error status is the documented
  ``{"error": "..."}`` (docs/service.md, Errors).

Relaxed on purpose, because the schema FastAPI publishes is incomplete, not the answers wrong:
``status_code_conformance`` (only 2xx and 422 are declared, while routes answer 400, 401, 403,
404, 413 and 429 as docs/service.md says), ``content_type_conformance`` (routes answering
text/plain, JSON Lines or octet-stream are declared as application/json), and
``positive_data_acceptance`` (the two POST routes read the raw request, so the schema declares
no body, and a bodiless request counts as "valid" although the route rightly refuses it). Those
two routes get their bodies from the Hypothesis strategies below instead.

Schemathesis' own pytest integration (``schemathesis.pytest.from_fixture``) is not used: with
pytest 9.2 it fails on ``request.node._nodeid``. Its strategies and checks are driven from
Hypothesis here, one pytest test per route.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import load_all_checks
from schemathesis.config import SchemathesisConfig
from schemathesis.schemas import BaseSchema

from sealtrail.server.app import OPEN_ROUTES, ROUTE_ROLES
from tests.server.conftest import KEYS, Service, seed_event, service_at

Operation = APIOperation[Any, Any, Any, Any]

# The API's operations: the console's pages (/ui/, HTML for a browser) are in the role table
# but not in the OpenAPI document (tests/ui drives them in a real browser).
ROUTES = sorted(r for r in ROUTE_ROLES if not r[1].startswith("/ui/")) + sorted(OPEN_ROUTES)
MAX_EXAMPLES = 30
JSON = "application/json"
# The caller (a key of tests.server.conftest.KEYS) used for each role.
CALLERS = {"auditor": "auditor", "ingest": "ingest_all", "admin": "admin"}
# Integer query parameters worth trying near the log's real size (a handful of entries).
SMALL_INTS = ("index", "size", "first", "second", "start", "end", "cursor", "limit")
# Tile paths (C2SP tlog-tiles) on the log ``default``: full, partial, malformed, too far.
TILE_PATHS = ("0/000", "0/000.p/1", "0/000.p/2", "1/000.p/1", "0/x001/000", "0/000.p/0",
              "0/000.p/256", "0/-01", "63/000.p/1", "64/000", "0/000.p/1/x", "0/000.p/1\n")
BUNDLE_PATHS = ("000", "000.p/1", "000.p/2", "x001/000", "000.p/0", "000.p/255", "-01",
                "000.p/1\n", "0/000.p/1")


def openapi_path(path: str) -> str:
    """The route's path as OpenAPI spells it (``{path:path}`` is a plain ``{path}`` there)."""
    return path.replace("{path:path}", "{path}")


def caller_for(method: str, path: str) -> str | None:
    """Who fuzzes a route: an auditor where readers or only auditors may call it, an ingest
    key where only ingest may, else the admin; nobody (no key) for the open routes."""
    if (method, path) in OPEN_ROUTES:
        return None
    allowed = ROUTE_ROLES[(method, path)]
    role = ("auditor" if "reader" in allowed or allowed == {"auditor"}
            else "ingest" if allowed == {"ingest"}
            else "admin")
    assert role in allowed, f"no fuzzing role for {method} {path}: {sorted(allowed)}"
    assert CALLERS[role] in KEYS
    return CALLERS[role]


# -- request bodies of the two POST routes (not in the schema: they read the raw request) -----

_scalars = (st.none() | st.booleans() | st.integers()
            | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20))
_json: st.SearchStrategy[Any] = st.recursive(
    _scalars, lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)


def _event_like() -> st.SearchStrategy[dict[str, Any]]:
    """Events with the model's fields, each a plausible value or any JSON at all."""
    actor = st.fixed_dictionaries(
        {"id": st.text(max_size=12) | _json},
        optional={"ip": st.sampled_from(["192.0.2.1", "::1", "256.0.0.1", "x"]) | _json,
                  "name": st.text(max_size=12)})
    return st.fixed_dictionaries(
        {"actor": actor | _json,
         "action": st.from_regex(r"[a-z]{1,8}(\.[a-z]{1,8}){0,2}", fullmatch=True) | _json,
         "outcome": st.sampled_from(["success", "failure", "unknown", "maybe"]) | _json},
        optional={"id": st.uuids().map(str) | _json,
                  "category": st.sampled_from(["data_access", "data_change", "nope"]),
                  "target": st.fixed_dictionaries({"type": st.text(max_size=8),
                                                   "id": st.text(max_size=8)}) | _json,
                  "subjects": st.lists(st.text(max_size=8), max_size=3) | _json,
                  "metadata": _json,
                  "time": st.sampled_from(["2020-01-01T00:00:00Z", "now",
                                           "9999-12-31T23:59:59Z"]) | _json})


BODIES: dict[tuple[str, str], st.SearchStrategy[Any]] = {
    ("POST", "/v1/logs/{log}/events"): (st.lists(_event_like(), max_size=4)
                                        | st.just([seed_event(7)]) | _json),
    # Names by the LOG_NAME rule, near misses of it, and any JSON.
    ("POST", "/v1/logs"): (st.fixed_dictionaries({"name": (
        st.from_regex(r"[a-z0-9][a-z0-9._-]{0,6}", fullmatch=True) | st.text(max_size=8)
        | st.sampled_from(["", ".a", "Default", "default", "a/b", "a" * 64, "a\n", "a\x00",
                           " a", "_service"]))}) | _json),
}


def _has_query(operation: Operation, name: str) -> bool:
    return any(p.name == name and p.location == "query" for p in operation.iter_parameters())


def cases(operation: Operation, route: tuple[str, str]) -> st.SearchStrategy[Case[Any]]:
    """The cases for one route: generated by schemathesis, steered as the docstring says."""
    on_default = {"log": "default"} if "{log}" in route[1] else None
    parts = []
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        parts.append(operation.as_strategy(mode))
        if on_default is not None:
            parts.append(operation.as_strategy(mode, path_parameters=on_default))
    small = {name: st.integers(0, 4) for name in SMALL_INTS if _has_query(operation, name)}
    if small and on_default is not None:
        parts.append(st.fixed_dictionaries({}, optional=small).flatmap(
            lambda query: operation.as_strategy(GenerationMode.POSITIVE,
                                                path_parameters=on_default, query=query)))
    if "{path:path}" in route[1]:
        paths = BUNDLE_PATHS if "/entries/" in route[1] else TILE_PATHS
        parts.append(st.sampled_from(paths).flatmap(lambda p: operation.as_strategy(
            GenerationMode.POSITIVE, path_parameters={"log": "default", "path": p})))
    strategy: st.SearchStrategy[Case[Any]] = st.one_of(parts)
    if _has_query(operation, "max_seconds"):
        strategy = strategy.map(_brief)
    body = BODIES.get(route)
    if body is None:
        return strategy
    return st.tuples(strategy, body).map(lambda pair: _with_body(*pair))


def _brief(case: Case[Any]) -> Case[Any]:
    """A live tail (``max_seconds``) that would be valid lasts 1 s, not up to an hour: the
    stream answers 200 and stays open by design (an invalid value is left to be refused)."""
    query = dict(case.query or {})
    value = query.get("max_seconds")
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
    if value is None or (text.isdigit() and 1 <= int(text) <= 3600):
        query["max_seconds"] = 1
    case.query = query
    return case


def _with_body(case: Case[Any], body: Any) -> Case[Any]:
    case.body = body
    case.media_type = JSON
    return case


def check_answer(status: int, headers: Mapping[str, list[str]], content: bytes) -> None:
    """A content type; JSON that parses; ``{"error": str}`` on every error status."""
    types = {k.lower(): v for k, v in headers.items()}.get("content-type")
    assert types, f"HTTP {status} without a content type"
    is_json = types[0].split(";")[0].strip() == JSON
    doc = json.loads(content) if is_json else None
    if status >= 400:
        assert is_json, f"HTTP {status} error answered as {types[0]}"
        assert isinstance(doc, dict), f"HTTP {status} error body is not an object: {doc!r}"
        assert isinstance(doc.get("error"), str), f"HTTP {status} error without 'error': {doc!r}"


# -- the service and its schema --------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A service whose rate limit does not turn the fuzzer's requests into 429s."""
    with service_at(Path(tmp_path_factory.mktemp("fuzz")), rate=1e6, burst=1e6) as svc:
        yield svc


@pytest.fixture(scope="module")
def api_schema(fuzzed: Service) -> BaseSchema:
    """The OpenAPI schema as the running service publishes it."""
    load_all_checks()
    # An explicit config (so no schemathesis.toml is read). No generated Authorization headers:
    # every case carries the caller's valid key; tests/server/test_roles.py covers bad keys.
    config = SchemathesisConfig.from_dict({"generation": {"with-security-parameters": False}})
    return schemathesis.openapi.from_url(f"{fuzzed.base_url}/openapi.json", config=config,
                                         timeout=30)


# -- the tests -------------------------------------------------------------------------------


def test_the_schema_lists_exactly_the_routes_of_the_role_table(api_schema: BaseSchema) -> None:
    """Every operation of /openapi.json is a route of ROUTE_ROLES or OPEN_ROUTES, and back."""
    published = {(method.upper(), path)
                 for path, methods in api_schema.raw_schema["paths"].items()
                 for method in methods}
    assert published == {(m, openapi_path(p)) for m, p in ROUTES}


@pytest.mark.parametrize("route", ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_fuzzed_operation_never_fails_on_the_server(route: tuple[str, str],
                                                    api_schema: BaseSchema,
                                                    fuzzed: Service) -> None:
    """Fuzzed requests by an allowed caller get no 5xx and well-formed, conforming answers."""
    method, path = route
    operation: Operation = api_schema[openapi_path(path)][method]
    caller = caller_for(method, path)
    auth = fuzzed.auth(caller) if caller is not None else {}
    checks = [schemathesis.checks.not_a_server_error,
              schemathesis.checks.response_schema_conformance]

    @settings(max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(case=cases(operation, route))
    def fuzz(case: Case[Any]) -> None:
        response = case.call(headers=auth, timeout=30)
        case.validate_response(response, checks=checks, headers=auth)
        check_answer(response.status_code, response.headers, response.content)

    fuzz()
