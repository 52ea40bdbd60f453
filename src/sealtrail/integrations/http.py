"""What one HTTP request becomes as an audit event: pure functions shared by the middlewares.

- ``action``: ``http.<method>`` (lower case);
- ``target``: ``{"type": "http_path", "id": <path>}`` (cut to the 256 characters an id holds);
- ``outcome`` from the status: success below 400, denied for 401 and 403, failure for other
  4xx, error for 5xx (and for an app that raised);
- the client address goes to ``actor.ip`` (not ``source.ip``): the event model's ``source`` is
  where the event was produced — this application — while the address is where the actor
  acted from, and the service's ``?ip=`` search and blind index look at ``actor.ip``;
- ``request_id`` from a request header (``X-Request-ID`` unless configured), ``trace_id`` from
  a W3C ``traceparent`` header;
- ``metadata``: ``{"status": <code>, "duration_ms": <float>}``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any, Final

ID_CHARS: Final = 256
TEXT_CHARS: Final = 1024
ANONYMOUS: Final = {"id": "anonymous", "type": "anonymous"}
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}\Z")
_METHOD_BAD = re.compile(r"[^A-Za-z0-9_:\-]")


def outcome_for_status(status: int) -> str:
    """success < 400; denied for 401/403; failure for other 4xx; error for 5xx."""
    if status < 400:
        return "success"
    if status in (401, 403):
        return "denied"
    if status < 500:
        return "failure"
    return "error"


def action_for_method(method: str) -> str:
    """``http.get``, ``http.post``... (characters an action may not hold become ``_``)."""
    return "http." + (_METHOD_BAD.sub("_", method.lower())[:100] or "unknown")


def valid_ip(value: str | None) -> str | None:
    """``value`` when it is an IP address (never a socket path or a test client's name)."""
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def trace_id(traceparent: str | None) -> str | None:
    """The trace id of a W3C ``traceparent`` header."""
    if not traceparent:
        return None
    match = _TRACEPARENT.match(traceparent.strip().lower())
    return match.group(1) if match else None


def request_event(*, method: str, path: str, status: int, actor: Mapping[str, Any] | None,
                  client_ip: str | None, request_id: str | None, traceparent: str | None,
                  user_agent: str | None, time: str, duration_ms: float,
                  extra: Mapping[str, Any]) -> dict[str, Any]:
    """The event for one request (``extra`` adds fields such as ``category`` or ``source``)."""
    who = dict(actor) if actor else dict(ANONYMOUS)
    ip = valid_ip(client_ip)
    if ip is not None and "ip" not in who:
        who["ip"] = ip
    if user_agent and "user_agent" not in who:
        who["user_agent"] = user_agent[:TEXT_CHARS]
    doc: dict[str, Any] = {
        "actor": who, "action": action_for_method(method),
        "outcome": outcome_for_status(status),
        "target": {"type": "http_path", "id": (path or "/")[:ID_CHARS]},
        "time": time,
        "metadata": {"status": status, "duration_ms": round(duration_ms, 3)},
        **extra}
    if request_id:
        doc["request_id"] = request_id[:ID_CHARS]
    trace = trace_id(traceparent)
    if trace is not None:
        doc["trace_id"] = trace
    return doc
