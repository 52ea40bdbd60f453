"""The personal-data field policy: which event fields are sealed (encrypted) in the leaf.

A log's policy is a set of field paths, fixed when the log is created. The default is the
fields that usually carry personal data (names, addresses, browsers, free-form payloads)::

    actor.name actor.ip actor.user_agent target.name source.ip changes metadata

``subjects`` (who the event is about) is always sealed when a log encrypts. The fields an event
needs to be understood and searched without a key stay clear and cannot be sealed: ``id``,
``time``, ``received_at``, ``action``, ``outcome``, ``category`` and ``actor.id`` (use
pseudonymous actor ids; equality search on the sealed fields goes through blind indexes).

This module only moves values between an event and a list of ``(path, value)`` pairs; sealing
the values is :mod:`sealtrail.core.envelope`'s job and deciding keys is the engine's.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from sealtrail.core.errors import ValidationError
from sealtrail.core.event import Event

SUBJECTS: Final = "subjects"
DEFAULT_PERSONAL: Final = ("actor.name", "actor.ip", "actor.user_agent", "target.name",
                           "source.ip", "changes", "metadata")
_PARTS: Final = {"actor": ("ip", "name", "on_behalf_of", "type", "user_agent"),
                 "target": ("id", "name", "type"),
                 "source": ("host", "ip", "service")}
_TOP: Final = ("changes", "metadata", "purpose", "reason", "request_id", "trace_id")
SEALABLE: Final = tuple(sorted([f"{p}.{n}" for p, names in _PARTS.items() for n in names]
                               + list(_TOP)))


@dataclass(frozen=True, slots=True)
class FieldPolicy:
    """The sealed fields of one log (plus ``subjects``, always)."""

    paths: tuple[str, ...]

    @classmethod
    def parse(cls, paths: Iterable[str]) -> FieldPolicy:
        """A policy from field paths; ValidationError names a path that cannot be sealed."""
        out: set[str] = set()
        for raw in paths:
            path = raw.strip()
            if not path:
                continue
            if path not in SEALABLE:
                raise ValidationError("policy", f"{path!r} cannot be sealed; choose from "
                                      f"{', '.join(SEALABLE)}")
            out.add(path)
        return cls(tuple(sorted(out)))

    @classmethod
    def default(cls) -> FieldPolicy:
        """The default policy (see the module docstring)."""
        return cls(tuple(sorted(DEFAULT_PERSONAL)))

    def extract(self, ev: Event) -> tuple[Event, list[tuple[str, Any]]]:
        """The event without its personal values, and those values as (path, value) pairs."""
        found: list[tuple[str, Any]] = []
        changes: dict[str, Any] = {}
        replace = msgspec.structs.replace
        for path in self.paths:
            part, dot, name = path.partition(".")
            if not dot:
                value = getattr(ev, path)
                if value is not None:
                    found.append((path, value))
                    changes[path] = None
                continue
            sub = changes.get(part) or getattr(ev, part)
            if sub is None:
                continue
            value = getattr(sub, name)
            if value is not None:
                found.append((path, value))
                changes[part] = replace(sub, **{name: None})
        for part in ("target", "source"):
            sub = changes.get(part)
            if sub is not None and not msgspec.structs.asdict(sub).keys() - _nones(sub):
                changes[part] = None  # nothing clear is left of it: leave the object out
        if ev.subjects is not None:
            found.append((SUBJECTS, ev.subjects))
            changes[SUBJECTS] = None
        return (replace(ev, **changes) if changes else ev), found

    def without(self, paths: Iterable[str]) -> FieldPolicy:
        """This policy with ``paths`` left clear (for sealtrail's own reference records)."""
        drop = set(paths)
        return FieldPolicy(tuple(p for p in self.paths if p not in drop))

    def take(self, obj: dict[str, Any]) -> list[tuple[str, Any]]:
        """Remove the personal values from an event *object* (in place); return them.

        The same split as :meth:`extract`, on the plain-dict form the leaf is encoded from
        (the hot path: no struct is rebuilt).
        """
        found: list[tuple[str, Any]] = []
        for path, part, name in _plan(self.paths):
            if name is None:
                value = obj.pop(path, None)
            else:
                sub = obj.get(part)
                value = None if sub is None else sub.pop(name, None)
            if value is not None:
                found.append((path, value))
        if obj.get("target") == {}:
            del obj["target"]
        if obj.get("source") == {}:
            del obj["source"]
        subjects = obj.pop(SUBJECTS, None)
        if subjects is not None:
            found.append((SUBJECTS, subjects))
        return found


@functools.lru_cache(maxsize=64)
def _plan(paths: tuple[str, ...]) -> tuple[tuple[str, str, str | None], ...]:
    """Each path split once: (path, part, name), name None for a top-level field."""
    out = []
    for path in paths:
        part, dot, name = path.partition(".")
        out.append((path, part, name if dot else None))
    return tuple(out)


def _nones(sub: msgspec.Struct) -> set[str]:
    return {k for k, v in msgspec.structs.asdict(sub).items() if v is None}


def restore(obj: dict[str, Any], path: str, value: Any) -> None:
    """Put an opened value back at ``path`` of an event object (the inverse of extract)."""
    part, dot, name = path.partition(".")
    if not dot:
        obj[path] = value
        return
    sub = obj.get(part)
    if not isinstance(sub, dict):
        sub = obj[part] = {}
    sub[name] = value
