"""The benchmark workload: deterministic audit events of about 500 bytes of JSON each.

Every event carries six of the seven personal fields a default (encrypted) log seals:
``actor.name``, ``actor.ip``, ``actor.user_agent``, ``target.name``, ``source.ip`` and
``metadata`` (not ``changes``). With ``subjects=True`` the same events are generated, and a
second random stream adds ``subjects: ["patient-<k>"]`` (one of :data:`SUBJECTS` ids) to about
:data:`SUBJECT_SHARE` of them; the base events, and so the plain rows' workload, are unchanged.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

SEED = 20240601
SUBJECTS = 10_000          # distinct data subjects in the encrypted workload
SUBJECT_SHARE = 0.3        # share of its events that name one

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


def make_events(n: int, seed: int = SEED, *, subjects: bool = False) -> list[dict[str, Any]]:
    """``n`` valid sealtrail events (no ids: the log assigns them), the same for a given seed."""
    return list(iter_events(n, seed, subjects=subjects))


def with_subjects(events: list[dict[str, Any]], seed: int = SEED) -> list[dict[str, Any]]:
    """The same events, about :data:`SUBJECT_SHARE` of them (copies) naming a subject; equal
    to ``make_events(len(events), seed, subjects=True)`` for events made with ``seed``."""
    srnd = _subject_rng(seed)
    return [_add_subject(ev, srnd) for ev in events]


def iter_batches(n: int, size: int, seed: int = SEED, *, subjects: bool = False
                 ) -> Iterator[list[dict[str, Any]]]:
    """The events of :func:`make_events` in lists of ``size``, generated as they are consumed."""
    batch: list[dict[str, Any]] = []
    for ev in iter_events(n, seed, subjects=subjects):
        batch.append(ev)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _subject_rng(seed: int) -> random.Random:
    return random.Random(seed * 7919 + 1)


def _add_subject(ev: dict[str, Any], srnd: random.Random) -> dict[str, Any]:
    # Two draws per event whatever the outcome, so event i's subject depends only on i.
    share, k = srnd.random(), srnd.randrange(SUBJECTS)
    return {**ev, "subjects": [f"patient-{k}"]} if share < SUBJECT_SHARE else ev


def iter_events(n: int, seed: int = SEED, *, subjects: bool = False
                ) -> Iterator[dict[str, Any]]:
    """Generate the events one by one (constant memory, for the million-event runs)."""
    if subjects:
        srnd = _subject_rng(seed)
        for ev in iter_events(n, seed):
            yield _add_subject(ev, srnd)
        return
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
