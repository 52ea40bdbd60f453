"""Retention: how long entries are kept, and purging what is past its maximum.

A policy gives, per event category (or ``default``), a minimum keep, a maximum keep and how long
entries stay online (immediately available; older ones may be archived, ``log/archive.py``).
Ages count from ``received_at``, the time the log committed the entry (the event's own ``time``
is the source's claim and may be skewed).

Purging removes entry bodies but keeps every leaf hash (see ``log/receipts.py``): old
checkpoints and every proof for the remaining entries still verify, and ``verify`` still checks
the purged leaves' hashes against the signed roots. Each purge appends a receipt in the same
transaction. What is never purged: retention receipts themselves (``verify`` needs them), and
entries about a data subject under an open legal hold. An entry younger than its category's
minimum is never purged; a policy whose minimum exceeds its maximum is refused.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

import msgspec

from sealtrail.core import canonical
from sealtrail.core.errors import ConfigError, PolicyError, TamperError, ValidationError
from sealtrail.core.timefmt import format_time, parse_time
from sealtrail.log.auditlog import AuditLog, Entry, Receipt
from sealtrail.log.changes import Retire, SetSettings
from sealtrail.log.receipts import ReceiptBody, ids_digest, range_root, ranges_digest
from sealtrail.log.settings import (
    POLICY_AT_META,
    POLICY_META,
    SETTING_ACTIONS,
    SettingRecord,
    digest,
    opened_record,
    policy_target,
)

CATEGORY_KEYS: Final = ("default", "authentication", "authorization", "data_access",
                        "data_change", "configuration", "admin", "system", "audit_access")
# Never purged or archived: the receipts and setting changes verify replays, erasures (the
# record that explains a destroyed subject key), and the trust records of docs/witnessing.md
# (RFC 3161 tokens; the recorded forward-secure seals, whose chain a gap would break).
PROTECTED_ACTIONS: Final = frozenset({"retention.purge", "retention.archive",
                                      "retention.restore", "subject.erase",
                                      "sealtrail.timestamp", "sealtrail.seal"}
                                     ) | SETTING_ACTIONS
_DURATION = re.compile(r"([1-9]\d{0,5})([hdwy])\Z")
_UNIT: Final = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1),
                "y": timedelta(days=365)}
# Presets: the standards' floors (see docs/retention.md; a year is 365 days, so presets that
# must cover "12 months" use 366 days to hold across a leap day).
PRESETS: Final[dict[str, dict[str, Any]]] = {
    "pci-dss": {"name": "pci-dss",
                "default": {"min": "366d", "online": "92d"}},
    "hipaa": {"name": "hipaa",
              "default": {"min": "2192d", "online": "92d"}},
    "gdpr": {"name": "gdpr",
             "default": {"min": "366d", "max": "1096d", "online": "92d"}},
    "soc2": {"name": "soc2", "default": {"min": "366d", "online": "92d"}},
}


def parse_duration(text: str, field_name: str) -> timedelta:
    """``<n>h``, ``<n>d``, ``<n>w`` or ``<n>y`` (365 days); errors name the field."""
    m = _DURATION.match(text) if isinstance(text, str) else None
    if m is None:
        raise ValidationError(field_name, f"{text!r} is not a duration like 90d, 12w, 1y or 36h")
    return int(m.group(1)) * _UNIT[m.group(2)]


def _format_duration(value: timedelta) -> str:
    if value % timedelta(days=1):
        return f"{int(value / timedelta(hours=1))}h"
    return f"{value.days}d"


@dataclass(frozen=True, slots=True)
class Rule:
    """Keep at least ``min``, at most ``max`` (None: forever), online for ``online``."""

    min: timedelta | None = None
    max: timedelta | None = None
    online: timedelta | None = None

    def to_json(self) -> dict[str, str]:
        """The rule as written in a policy file."""
        out = {}
        for name in ("min", "max", "online"):
            value = getattr(self, name)
            if value is not None:
                out[name] = _format_duration(value)
        return out


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Per-category retention rules; categories without a rule follow ``default``."""

    name: str = "custom"
    rules: dict[str, Rule] = field(default_factory=dict)

    def rule_for(self, category: str | None) -> Rule:
        """The rule that applies to one category (``default`` when it has none)."""
        return self.rules.get(category or "default") or self.rules.get("default") or Rule()

    @classmethod
    def parse(cls, doc: Mapping[str, Any]) -> RetentionPolicy:
        """A policy from its JSON form; errors name the field (``authentication.max``)."""
        if not isinstance(doc, Mapping):
            raise ValidationError("policy", "a retention policy is a JSON object")
        name = doc.get("name", "custom")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
            raise ValidationError("name", "a policy name is 1-64 letters, digits, _ . -")
        rules: dict[str, Rule] = {}
        for key, value in doc.items():
            if key == "name":
                continue
            if key not in CATEGORY_KEYS:
                raise ValidationError(key, "unknown category; use one of "
                                      f"{', '.join(CATEGORY_KEYS)}")
            if not isinstance(value, Mapping):
                raise ValidationError(key, "a rule is an object with min, max and online")
            for item in value:
                if item not in ("min", "max", "online"):
                    raise ValidationError(f"{key}.{item}", "unknown setting; use min, max, online")
            got = {k: parse_duration(v, f"{key}.{k}") for k, v in value.items()}
            rule = Rule(got.get("min"), got.get("max"), got.get("online"))
            if rule.min is not None and rule.max is not None and rule.min > rule.max:
                raise ValidationError(f"{key}.min", f"the minimum ({value['min']}) exceeds the "
                                      f"maximum ({value['max']}): no entry could satisfy both")
            if rule.online is not None and rule.max is not None and rule.online > rule.max:
                raise ValidationError(f"{key}.online", "entries cannot stay online longer than "
                                      "they are kept")
            rules[key] = rule
        return cls(name, rules)

    @classmethod
    def preset(cls, name: str) -> RetentionPolicy:
        """One of :data:`PRESETS`."""
        if name not in PRESETS:
            raise ValidationError("preset", f"unknown preset {name!r}; use one of "
                                  f"{', '.join(PRESETS)}")
        return cls.parse(PRESETS[name])

    def to_json(self) -> dict[str, Any]:
        """The policy as written in a policy file."""
        return {"name": self.name, **{k: r.to_json() for k, r in self.rules.items()}}


def load_policy(alog: AuditLog) -> RetentionPolicy | None:
    """The log's stored policy (None when it has none: keep everything forever).

    The stored copy is used only if the log's own ``retention.policy.set`` entry (whose index
    is kept beside it) names its digest: a policy written into the settings table by hand
    would purge evidence under a genuine-looking receipt, so it raises TamperError instead.
    """
    meta = alog.store.meta()
    text = meta.get(POLICY_META)
    if text is None:
        alog.check_settings()  # no row may have been deleted either
        return None
    try:
        at = int(meta.get(POLICY_AT_META, ""))
        entry = alog.entry(at)
    except (ValueError, ConfigError, TamperError):
        entry = None
    event = entry.event() if entry is not None else {}
    target = event.get("target") or {}
    action = str(event.get("action", ""))
    target_id = str(target.get("id", ""))
    if entry is not None and not target_id:
        # An older version may have sealed it: opened as verify opens it.
        target_id = opened_record(SettingRecord(at, action, "", leaf=entry.leaf),
                                  alog.setting_target).target_id
    if action != "retention.policy.set" or target_id.rpartition("@")[2] != digest(text):
        raise TamperError("settings", 0, "the stored retention policy was not set by an entry "
                          "of the log (the settings table was edited, or it was set by a version "
                          "that did not record its digest: set it again with sealtrail "
                          "retention set): refusing to use it; run sealtrail verify")
    # The latest policy entry, holds and keys must all agree with the log (a policy pointed
    # back at an older genuine entry would purge under it).
    alog.check_settings()
    return RetentionPolicy.parse(json.loads(text))


def set_policy(alog: AuditLog, policy: RetentionPolicy, *, actor: Mapping[str, Any]) -> Receipt:
    """Store a policy; the change is an event (``retention.policy.set``) in the same commit,
    naming the stored text's digest (``verify`` and :func:`load_policy` check it)."""
    text = canonical.compact_json(policy.to_json(), ascii=True)

    event = {"actor": dict(actor), "action": "retention.policy.set", "outcome": "success",
             "category": "configuration",
             "target": {"type": "retention_policy", "id": policy_target(policy.name, text)},
             "reason": f"retention policy {policy.name}: {text}"[:4096]}
    return alog.commit_change(event, SetSettings({POLICY_META: text}, index_key=POLICY_AT_META))


class _Head(msgspec.Struct):
    action: str = ""
    category: str | None = None
    received_at: str = ""
    sealed: _Sealed | None = None


class _Sealed(msgspec.Struct):
    fields: list[str] = msgspec.field(default_factory=list)


_head = msgspec.json.Decoder(_Head)


@dataclass(slots=True)
class Plan:
    """What a purge would do: the ranges to empty and why others stay."""

    now: str
    policy: str
    ranges: list[tuple[int, int]] = field(default_factory=list)
    by_category: dict[str, int] = field(default_factory=dict)
    held: int = 0
    protected: int = 0
    already: int = 0
    holds: tuple[int, ...] = ()

    @property
    def count(self) -> int:
        """Entries the purge empties."""
        return sum(e - s for s, e in self.ranges)

    def to_json(self) -> dict[str, Any]:
        """The plan for people and scripts (``retention apply --dry-run``)."""
        return {"now": self.now, "policy": self.policy, "purge": self.count,
                "ranges": [[s, e] for s, e in self.ranges[:1000]],
                "ranges_total": len(self.ranges), "by_category": self.by_category,
                "kept_by_legal_hold": self.held, "receipts_kept": self.protected,
                "already_retired": self.already}


def _due(rule: Rule, received: datetime, now: datetime) -> bool:
    if rule.max is None:
        return False
    age = now - received
    return age > rule.max and (rule.min is None or age > rule.min)


def plan_purge(alog: AuditLog, policy: RetentionPolicy, *, end: int | None = None) -> Plan:
    """The entries past their category's maximum, minus receipts and held subjects' entries."""
    now = alog.now()
    out = Plan(format_time(now), policy.name)
    alog.check_settings()  # the holds below are what the log's hold entries say
    hold_rows = alog.store.holds(open_only=True)
    held_refs = {bytes(r) for _, r, _, _, _ in hold_rows}
    out.holds = tuple(int(n) for n, _, _, _, _ in hold_rows)
    if not any(r.max is not None for r in policy.rules.values()):
        return out
    run: list[int] = []
    for entry in alog.entries(0, alog.size if end is None else end):
        if entry.retired:
            out.already += 1
            continue
        head = _head.decode(entry.leaf)
        rule = policy.rule_for(head.category)
        if not _due(rule, parse_time(head.received_at), now):
            continue
        if head.action in PROTECTED_ACTIONS:
            out.protected += 1
            continue
        if held_refs and _is_held(alog, entry, head, held_refs):
            out.held += 1
            continue
        cat = head.category or "default"
        out.by_category[cat] = out.by_category.get(cat, 0) + 1
        if run and run[1] == entry.index:
            run[1] += 1
        else:
            if run:
                out.ranges.append((run[0], run[1]))
            run = [entry.index, entry.index + 1]
    if run:
        out.ranges.append((run[0], run[1]))
    return out


def _is_held(alog: AuditLog, entry: Entry, head: _Head, refs: set[bytes]) -> bool:
    """Whether the entry names a subject under an open hold (opens only subject events)."""
    if head.sealed is None or "subjects" not in head.sealed.fields:
        return False
    ev = alog.read(entry)
    if "subjects" in ev.get("erased", ()):
        return False  # the subject was erased: nothing left to hold
    if "subjects" not in ev:
        raise PolicyError("legal holds are open and this entry's subjects cannot be read "
                          "(the keyring is locked): refusing to purge")
    return any(alog.subject_ref(s) in refs for s in ev["subjects"])


def retire(alog: AuditLog, ranges: list[tuple[int, int]], *, kind: str,
           actor: Mapping[str, Any], reason: str, holds: tuple[int, ...] = (),
           replaces_archive: bool = False) -> Receipt:
    """Empty ``ranges`` and append their receipt, in one transaction (the engine checks the
    change against the store as it is then: :class:`sealtrail.log.changes.Retire`).

    ``replaces_archive``: the ranges are archived segments being purged (their files are
    deleted by the caller after the commit); their archive rows give way to purge rows.
    """
    if not ranges:
        raise ConfigError("nothing to retire")
    root = range_root(alog.store, ranges)
    body = ReceiptBody(kind, sum(e - s for s, e in ranges), ranges_digest(ranges), root,
                       ids_digest(alog.store, ranges))

    event = {"actor": dict(actor), "action": f"retention.{kind}", "outcome": "success",
             "category": "system", "target": {"type": "entries", "id": body.target_id()},
             "reason": reason[:4096]}
    return alog.commit_change(event, Retire(tuple(ranges), kind, holds, replaces_archive))


def apply_purge(alog: AuditLog, policy: RetentionPolicy, *, actor: Mapping[str, Any],
                plan: Plan | None = None) -> tuple[Plan, Receipt | None]:
    """Purge what the plan (made now when not given) says; None receipt when nothing is due."""
    plan = plan if plan is not None else plan_purge(alog, policy)
    if not plan.ranges:
        return plan, None
    cats = ", ".join(f"{n} {c}" for c, n in sorted(plan.by_category.items()))
    reason = (f"retention policy {policy.name} at {plan.now}: purged {plan.count} entries past "
              f"their maximum keep ({cats}) in {len(plan.ranges)} ranges from index "
              f"{plan.ranges[0][0]} to {plan.ranges[-1][1] - 1}; leaf hashes kept; "
              f"{plan.held} kept by legal holds; leaf-range root "
              f"{base64.b64encode(range_root(alog.store, plan.ranges)).decode()}")
    receipt = retire(alog, plan.ranges, kind="purge", actor=actor, reason=reason,
                     holds=plan.holds)
    return plan, receipt
