"""The benchmark workload: deterministic audit events of about 500 bytes of JSON each."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

SEED = 20240601

_ACTIONS = [
    ("document.read", "data_access"),
    ("document.update", "data_change"),
    ("document.delete", "data_change"),
    ("user.login", "authentication"),
    ("user.logout", "authentication"),
    ("role.grant", "authorization"),
    ("settings.change", "configuration"),
    ("export.run", "audit_access"),
]
_OUTCOMES = ["success", "success", "success", "failure", "denied", "error"]
_SERVICES = ["billing-api", "docs-web", "hr-portal", "search-worker", "admin-console"]
_FIRST = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"]
_LAST = ["smith", "jones", "garcia", "miller", "davis", "martinez", "lopez", "wilson"]
_AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) Gecko/20100101 Firefox/125.0",
    "python-requests/2.31.0",
]


def make_events(n: int, seed: int = SEED) -> list[dict[str, Any]]:
    """``n`` valid sealtrail events (no ids: the log assigns them), the same for a given seed."""
    return list(iter_events(n, seed))


def iter_batches(n: int, size: int, seed: int = SEED) -> Iterator[list[dict[str, Any]]]:
    """The events of :func:`make_events` in lists of ``size``, generated as they are consumed."""
    batch: list[dict[str, Any]] = []
    for ev in iter_events(n, seed):
        batch.append(ev)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def iter_events(n: int, seed: int = SEED) -> Iterator[dict[str, Any]]:
    """Generate the events one by one (constant memory, for the million-event runs)."""
    rnd = random.Random(seed)
    for i in range(n):
        action, category = _ACTIONS[rnd.randrange(len(_ACTIONS))]
        first, last = rnd.choice(_FIRST), rnd.choice(_LAST)
        uid = rnd.randrange(100_000)
        doc = rnd.randrange(10_000_000)
        yield {
            "actor": {
                "id": f"u{uid}",
                "type": "user",
                "name": f"{first.title()} {last.title()}",
                "ip": f"10.{rnd.randrange(256)}.{rnd.randrange(256)}.{rnd.randrange(1, 255)}",
                "user_agent": rnd.choice(_AGENTS),
            },
            "action": action,
            "outcome": rnd.choice(_OUTCOMES),
            "category": category,
            "target": {"type": "document", "id": f"doc-{doc}",
                       "name": f"Quarterly report {doc % 1000} ({first}).pdf"},
            "source": {"service": rnd.choice(_SERVICES), "host": f"node-{rnd.randrange(32):02d}",
                       "ip": f"192.168.{rnd.randrange(256)}.{rnd.randrange(1, 255)}"},
            "request_id": f"req-{rnd.getrandbits(64):016x}",
            "metadata": {"seq": i, "tenant": f"t{rnd.randrange(50)}",
                         "bytes": rnd.randrange(1 << 20), "cached": rnd.random() < 0.5},
        }


def json_bytes(event: dict[str, Any]) -> bytes:
    """The raw JSON of one event (compact, as an app would send it): the size baseline."""
    return json.dumps(event, separators=(",", ":")).encode()


def json_lines(events: list[dict[str, Any]]) -> list[bytes]:
    """:func:`json_bytes` of each event."""
    return [json_bytes(ev) for ev in events]
