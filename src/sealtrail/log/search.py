"""Searching the log (CLI and API): filters over the events, newest first by default.

In an encrypted log with its keyring open, equality on ``actor.id``, ``actor.ip``,
``target.id`` or a subject goes through the blind index (keyed tokens: no plaintext index);
the candidates are then opened and every filter checked on the opened event. Otherwise a
query reads entries in order and stops after ``limit`` matches.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from sealtrail.core.timefmt import parse_time
from sealtrail.log.auditlog import AuditLog, Entry


@dataclass(frozen=True, slots=True)
class Filter:
    """What to match; ``None`` matches anything. ``action`` accepts globs (``user.*``)."""

    actor: str | None = None
    actor_ip: str | None = None
    subject: str | None = None
    action: str | None = None
    category: str | None = None
    outcome: str | None = None
    target: str | None = None
    source: str | None = None
    request_id: str | None = None
    trace_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    text: str | None = None

    def describe(self, pseudonym: Callable[[str], str]) -> dict[str, str]:
        """The non-empty filter fields, for the audit record of the query.

        A subject is named by pseudonym, and values that may be personal data (an address,
        free text) are withheld: the record must not keep what erasure would remove.
        """
        out: dict[str, str] = {}
        for name in self.__slots__:
            value = getattr(self, name)
            if value is None:
                continue
            if name == "subject":
                out[name] = pseudonym(value)
            elif name in ("actor_ip", "text"):
                out[name] = "(withheld)"
            else:
                out[name] = value.isoformat() if isinstance(value, datetime) else str(value)
        return out

    def matches(self, ev: dict[str, Any]) -> bool:
        """Whether one event matches every given field."""
        if self.actor is not None and ev.get("actor", {}).get("id") != self.actor:
            return False
        if self.actor_ip is not None and ev.get("actor", {}).get("ip") != self.actor_ip:
            return False
        if self.subject is not None and self.subject not in (ev.get("subjects") or ()):
            return False
        if self.action is not None:
            action = ev.get("action", "")
            if any(c in self.action for c in "*?["):
                if not fnmatch.fnmatchcase(action, self.action):
                    return False
            elif action != self.action and not action.startswith(self.action + "."):
                return False
        if self.category is not None and ev.get("category") != self.category:
            return False
        if self.outcome is not None and ev.get("outcome") != self.outcome:
            return False
        if self.target is not None and ev.get("target", {}).get("id") != self.target:
            return False
        if self.source is not None and ev.get("source", {}).get("service") != self.source:
            return False
        if self.request_id is not None and ev.get("request_id") != self.request_id:
            return False
        if self.trace_id is not None and ev.get("trace_id") != self.trace_id:
            return False
        if self.since is not None or self.until is not None:
            t = parse_time(ev["time"])
            if self.since is not None and t < self.since:
                return False
            if self.until is not None and t >= self.until:
                return False
        if self.text is None:
            return True
        # The event's JSON with non-ASCII kept (the text a person would search for).
        return self.text.lower() in msgspec.json.encode(ev).decode().lower()


def _candidates(log: AuditLog, flt: Filter) -> list[int] | None:
    """Indexes (newest first) the blind index allows, or None when it cannot narrow."""
    if not log.encrypted or log.locked_reason:
        return None
    wanted = [(f, v) for f, v in (("actor.id", flt.actor), ("actor.ip", flt.actor_ip),
                                  ("target.id", flt.target), ("subject", flt.subject))
              if v is not None]
    if not wanted:
        return None
    sets = [log.find(f, v) for f, v in wanted]
    best = min(sets, key=len)
    others = [set(s) for s in sets if s is not best]
    return [i for i in best if all(i in o for o in others)]


def search(log: AuditLog, flt: Filter, *, limit: int, newest_first: bool = True,
           before: int | None = None, after: int | None = None
           ) -> Iterator[tuple[Entry, dict[str, Any]]]:
    """Matching entries with their (opened) events, at most ``limit``.

    ``before`` / ``after`` are cursors: only entries with a smaller (larger) index.
    """
    log.refresh_keys()
    found = 0
    candidates = _candidates(log, flt)
    entries: Iterator[Entry]
    if candidates is not None:
        order = candidates if newest_first else list(reversed(candidates))
        order = [i for i in order if (before is None or i < before)
                 and (after is None or i > after)]
        entries = (log.entry(i) for i in order)
    elif newest_first:
        entries = log.entries_reversed(before)
    else:
        start = 0 if after is None else after + 1
        entries = log.entries(min(start, log.size))
    for entry in entries:
        if (after is not None and entry.index <= after) or (
                before is not None and entry.index >= before):
            continue
        if entry.retired:
            continue
        ev = log.read(entry)
        if flt.matches(ev):
            yield entry, ev
            found += 1
            if found >= limit:
                return
