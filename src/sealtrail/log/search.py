"""Searching the log (CLI and API): filters over the events, newest first by default.

In an encrypted log with its keyring open, equality on ``actor.id``, ``actor.ip``,
``target.id`` or a subject goes through the blind index (keyed tokens: no plaintext index);
the candidates are then opened and every filter checked on the opened event. Otherwise a
query reads entries in order and stops after ``limit`` matches.

A search for a :class:`~sealtrail.log.reads.Reader` is an audited read: it is recorded
(``audit.search``: the filter as :meth:`Filter.describe` gives it, the number of results)
before the first result is returned.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from sealtrail.core.errors import KeyringError, ValidationError
from sealtrail.core.event import CATEGORIES, OUTCOMES
from sealtrail.core.timefmt import parse_time
from sealtrail.log.auditlog import AuditLog, Entry
from sealtrail.log.reads import Reader

_ACTION = "audit.search"  # how a search is recorded (one of READ_ACTIONS)

# Filter field -> the event field it reads, for the fields a log may seal (``subjects`` is
# always sealed in an encrypted log; ``text`` reads the whole event).
_SEALABLE_FILTERS: dict[str, str] = {
    "actor_ip": "actor.ip", "target": "target.id", "source": "source.service",
    "request_id": "request_id", "trace_id": "trace_id"}
# How the CLI and the API name each filter (for messages).
OPTION_NAMES: dict[str, str] = {"actor_ip": "ip", "request_id": "request-id",
                                "trace_id": "trace-id"}


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

    def __post_init__(self) -> None:
        """Values no event can hold are refused, naming the allowed ones (a typo would
        otherwise match nothing and look like an answer)."""
        for name, allowed in (("category", CATEGORIES), ("outcome", OUTCOMES)):
            value = getattr(self, name)
            if value is not None and value not in allowed:
                raise ValidationError(name, f"{value!r} is not a known {name}; use one of "
                                      f"{', '.join(allowed)}")

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


def sealed_filters(log: AuditLog, flt: Filter) -> list[str]:
    """The filters of ``flt`` that read fields this log seals: they need the open keyring."""
    if not log.encrypted:
        return []
    sealed = set(log.settings().get("policy", "").split(","))
    out = []
    if flt.subject is not None:
        out.append("subject")
    for name, path in _SEALABLE_FILTERS.items():
        if getattr(flt, name) is not None and path in sealed:
            out.append(OPTION_NAMES.get(name, name))
    if flt.text is not None:
        out.append("text")
    return out


def check_answerable(log: AuditLog, flt: Filter) -> None:
    """Raise KeyringError when the keyring is locked and ``flt`` reads sealed fields: such a
    search cannot be answered (it would find nothing and look like an answer)."""
    if not log.locked_reason:
        return
    needs = sealed_filters(log, flt)
    if needs:
        names = ", ".join(needs)
        raise KeyringError(f"cannot search by {names}: this log seals the field(s) searched "
                           f"and {log.locked_reason}")


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
           before: int | None = None, after: int | None = None, reader: Reader | None = None
           ) -> Iterator[tuple[Entry, dict[str, Any]]]:
    """Matching entries with their (opened) events, at most ``limit``.

    ``before`` / ``after`` are cursors: only entries with a smaller (larger) index. With
    ``reader``, every match is found and the search recorded before the first is returned;
    without, matches are returned as they are found.
    """
    found = _search(log, flt, limit=limit, newest_first=newest_first, before=before,
                    after=after)
    if reader is None:
        yield from found
        return
    rows = list(found)
    reader.record(log, _ACTION, flt.describe(log.pseudonym), len(rows))
    yield from rows


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a search, and where the next one starts (None: this is the last)."""

    rows: list[tuple[Entry, dict[str, Any]]]
    next_cursor: int | None


def search_page(log: AuditLog, flt: Filter, *, limit: int, newest_first: bool = True,
                cursor: int | None = None, reader: Reader | None = None) -> Page:
    """At most ``limit`` matches from ``cursor`` on (entries before it, newest first; after
    it, oldest first), and the cursor of the next page when there is one.

    One match more than ``limit`` is looked for to tell whether there is a next page; it is
    neither returned nor counted in the record of the search (``reader``), which is appended
    before the page is returned.
    """
    rows = list(_search(log, flt, limit=limit + 1, newest_first=newest_first,
                        before=cursor if newest_first else None,
                        after=cursor if not newest_first else None))
    page = rows[:limit]
    nxt = page[-1][0].index if len(rows) > limit else None
    if reader is not None:
        reader.record(log, _ACTION, flt.describe(log.pseudonym), len(page))
    return Page(page, nxt)


def _search(log: AuditLog, flt: Filter, *, limit: int, newest_first: bool,
            before: int | None, after: int | None) -> Iterator[tuple[Entry, dict[str, Any]]]:
    log.refresh_keys()
    check_answerable(log, flt)
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
