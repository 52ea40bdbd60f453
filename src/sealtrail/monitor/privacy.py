"""Pseudonyms: no sealed value leaves the log in clear through the monitor.

A log seals its personal fields (its policy, ``AuditLog.sealed_paths``, plus ``subjects``).
The monitor opens events to judge them, but what it *keeps* and *sends* — an alert's key,
its message, the rule engine's saved state (group keys, distinct and first-seen values), the
alert documents sinks receive, the ``alert.open`` events — is readable by people and files
that must not see event content: admin API keys, ``monitor.db``, the outbox, a Slack channel.
So every grouping or reported value read from a sealed path (the path itself, anything below
it such as ``metadata.role``, or anything above it such as ``actor``) is replaced by a
pseudonym:

- a data subject: ``ref:`` + its subject pseudonym (``AuditLog.pseudonym``), the same name
  the ``subject.erase`` event carries, so erasure can find it;
- any other value: ``ps:`` + base64url of the first 16 bytes of
  ``HMAC-SHA256(blind key, "sealtrail/monitor-pseudonym/v1" 0 path 0 value)`` under the
  log's blind-index key (kept apart from every encryption key). Equal values give equal
  pseudonyms, which is all grouping needs; without the key a pseudonym says nothing about the
  value (an IP address cannot be found by trying them all).

Conditions still see the opened values: ``actor.ip: "10.*"`` matches as before. An unencrypted
log has no sealed paths (its values are in clear in the log itself) and gets no pseudonyms. A
locked keyring opens nothing, and a value it could not pseudonymise reads ``(withheld)``.

To find the alerts about a known value, compute its pseudonym with :func:`pseudonym`; to see
the values behind an alert, read its evidence entries with a key allowed to read events.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

from sealtrail.monitor.rules import Getter, field_getter, value_text

if TYPE_CHECKING:
    from sealtrail.log.auditlog import AuditLog

__all__ = ["ERASED", "PSEUDONYM", "WITHHELD", "Pseudonyms", "pseudonym", "scrub"]

SUBJECTS: Final = "subjects"
WITHHELD: Final = "(withheld)"
ERASED: Final = "(erased)"
_DOMAIN: Final = b"sealtrail/monitor-pseudonym/v1\x00"
# What a pseudonym looks like inside a key or a message (``ps:`` and ``ref:``, 22 characters).
PSEUDONYM: Final = re.compile(r"(?:ps|ref):[A-Za-z0-9_-]{22}")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class Pseudonyms:
    """The sealed paths of one log and the keyed pseudonyms of their values."""

    __slots__ = ("_cache", "_key", "_sealed", "_subject")

    def __init__(self, sealed: Iterable[str], key: bytes | None,
                 subject: Callable[[str], str] | None = None) -> None:
        self._sealed = tuple(sorted(set(sealed)))
        self._key = key
        self._subject = subject
        self._cache: dict[str, bool] = {}

    @classmethod
    def of_log(cls, alog: AuditLog) -> Pseudonyms | None:
        """The pseudonyms of an encrypted log (None for an unencrypted one: nothing sealed)."""
        paths = alog.sealed_paths
        if not paths:
            return None
        keyring = alog.keyring
        return cls((*paths, SUBJECTS), keyring.blind_key if keyring is not None else None,
                   alog.pseudonym)

    @property
    def paths(self) -> tuple[str, ...]:
        """The sealed paths (``subjects`` included)."""
        return self._sealed

    def sealed(self, path: str) -> bool:
        """Whether a value read at ``path`` may hold a sealed value: the path is sealed, lies
        below a sealed one (``metadata.role``) or above one (``actor`` holds ``actor.ip``)."""
        hit = self._cache.get(path)
        if hit is None:
            hit = any(path == s or path.startswith(s + ".") or s.startswith(path + ".")
                      for s in self._sealed)
            if len(self._cache) < 4096:
                self._cache[path] = hit
        return hit

    def value(self, path: str, value: Any) -> str:
        """The pseudonym of a value read at ``path`` (any JSON value; texts as they are)."""
        if path == SUBJECTS and self._subject is not None:
            items = value if isinstance(value, list) else [value]
            if all(type(v) is str for v in items):
                return ",".join(self._subject(v) for v in items)
        if self._key is None:
            return WITHHELD
        mac = hmac.new(self._key, b"".join((_DOMAIN, path.encode(), b"\x00",
                                            value_text(value).encode("utf-8", "surrogatepass"))),
                       hashlib.sha256).digest()
        return "ps:" + _b64(mac[:16])

    def getter(self, path: str) -> Getter:
        """A field reader for grouping: the value itself, or its pseudonym when sealed."""
        read = field_getter(path)
        if not self.sealed(path):
            return read

        def pseudonymous(ev: Mapping[str, Any]) -> Any:
            v = read(ev)
            return None if v is None else self.value(path, v)
        return pseudonymous

    def subject_refs(self, ev: Mapping[str, Any]) -> list[str]:
        """The pseudonyms (``ref:``) of the subjects an opened event names."""
        subjects = ev.get(SUBJECTS)
        if self._subject is None or not isinstance(subjects, list):
            return []
        return sorted({self._subject(s) for s in subjects if type(s) is str})


def pseudonym(alog: AuditLog, path: str, value: Any) -> str:
    """What the monitor shows instead of ``value`` read at ``path`` of ``alog``'s events
    (the value itself when the path is not sealed): to find the alerts about a known value."""
    p = Pseudonyms.of_log(alog)
    if p is None or not p.sealed(path):
        return value_text(value)
    return p.value(path, value)


def scrub(text: str) -> str:
    """``text`` with every pseudonym replaced by ``(erased)`` (subject erasure)."""
    return PSEUDONYM.sub(ERASED, text)
