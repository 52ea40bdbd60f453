"""The built-in rule pack, on by default: what PCI DSS 10 and HIPAA expect a reviewer to catch.

Each rule names the clauses it serves (docs/rules.md explains why). Parameters are overridable
by configuration: :func:`configure_builtin` takes ``{rule id: overrides}`` where overrides is
``False`` (disable), ``True`` (enable) or a mapping merged over the rule's definition, e.g.
``{"builtin.brute_force": {"threshold": 10, "window": "10m"}}``; ``threshold`` is accepted
as a synonym of ``count``, and ``builtin.audit_access`` takes ``allowed_roles``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from sealtrail.core.sources import IMPORTED_ACTIONS
from sealtrail.monitor.rules import DEFAULT_MAX_SKEW, Rule, RuleError, parse_rule

__all__ = ["BUILTIN_IDS", "builtin_definitions", "builtin_rules", "configure_builtin"]

_AUTH_FAILED: Final = {"category": "authentication", "outcome": ["failure", "denied"]}
# Imported records (docs/import.md) carry the other system's time and services: they are not
# live producers whose clock or silence says anything.
_LIVE: Final = {"metadata.log_source": {"exists": False},
                "action": {"not": list(IMPORTED_ACTIONS)}}
_LOGIN_MONITORING: Final = "HIPAA 164.308(a)(5)(ii)(C)"
_REVIEW: Final = "HIPAA 164.308(a)(1)(ii)(D)"
_AUDIT_CONTROLS: Final = "HIPAA 164.312(b)"

_DEFINITIONS: Final[list[dict[str, Any]]] = [
    {"id": "builtin.brute_force", "kind": "threshold", "severity": "high",
     "title": "Brute-force logins",
     "match": _AUTH_FAILED, "group_by": "actor.id", "count": 5, "window": "5m",
     "clauses": ["PCI DSS 10.2.1.4", "PCI DSS 10.4.1.1", _LOGIN_MONITORING]},
    {"id": "builtin.success_after_failures", "kind": "sequence", "severity": "high",
     "title": "Successful login after repeated failures",
     "group_by": "actor.id", "window": "10m",
     "steps": [{"name": "failures", "match": _AUTH_FAILED, "count": 3},
               {"name": "success", "match": {"category": "authentication",
                                             "outcome": "success"}}],
     "clauses": ["PCI DSS 10.2.1.4", "PCI DSS 10.4.1.1", _LOGIN_MONITORING]},
    {"id": "builtin.audit_access", "kind": "match", "severity": "medium",
     "title": "Audit trail read by someone who is not an auditor",
     "match": {"category": "audit_access", "metadata.role": {"not": ["auditor"]}},
     "group_by": "actor.id", "dedup": "1h",
     "clauses": ["PCI DSS 10.2.1.3", "PCI DSS 10.3.1", _AUDIT_CONTROLS]},
    {"id": "builtin.privilege_change", "kind": "match", "severity": "high",
     "title": "Privilege or role change",
     "match": {"any": [
         {"action": ["*role*", "*privilege*", "*permission*", "*grant*", "*group.member*"]},
         {"category": "authorization", "changes": {"exists": True}}]},
     "clauses": ["PCI DSS 10.2.1.5", "PCI DSS 10.2.1.2", _REVIEW]},
    {"id": "builtin.sealtrail_config", "kind": "match", "severity": "medium",
     "title": "Configuration change of sealtrail itself",
     "match": {"action": ["keys.*", "apikey.*", "log.create", "retention.*", "rules.*",
                          "alert.*", "sealtrail.*", "subject.hold.*"]},
     "clauses": ["PCI DSS 10.2.1.6", "PCI DSS 10.2.1.2", "PCI DSS 10.3.2", _AUDIT_CONTROLS]},
    {"id": "builtin.mass_access", "kind": "threshold", "severity": "high",
     "title": "Mass data access",
     "match": {"category": "data_access"}, "group_by": "actor.id", "count": 100,
     "window": "5m",
     "clauses": ["PCI DSS 10.2.1.1", _AUDIT_CONTROLS, _REVIEW]},
    {"id": "builtin.mass_export", "kind": "match", "severity": "high",
     "title": "Large data export",
     # An application's export names its size in metadata.count; sealtrail's own reads
     # (audit.export, audit.subject_export, and raw entries: audit.entries.read) record it
     # as metadata.results.
     "match": {"action": ["*export*", "audit.entries.read"],
               "any": [{"metadata.count": {"gte": 1000}},
                       {"metadata.results": {"gte": 1000}}]},
     "clauses": ["PCI DSS 10.2.1.1", _AUDIT_CONTROLS, _REVIEW]},
    {"id": "builtin.subject_erasure", "kind": "match", "severity": "medium",
     "title": "Data subject key erased",
     "match": {"action": "subject.erase"},
     "clauses": ["PCI DSS 10.2.1.7", "HIPAA 164.312(c)(1)"]},
    {"id": "builtin.integrity_failure", "kind": "match", "severity": "critical",
     "title": "Audit log integrity failure",
     "match": {"action": "integrity.failure"},
     "clauses": ["PCI DSS 10.3.4", "PCI DSS 10.7.2", "HIPAA 164.312(c)(1)",
                 "HIPAA 164.312(c)(2)"]},
    {"id": "builtin.source_silent", "kind": "absence", "severity": "medium",
     "title": "Event source went silent",
     "match": {"source.service": {"exists": True}, **_LIVE}, "group_by": "source.service",
     "interval": "1h",
     "clauses": ["PCI DSS 10.2.1", "PCI DSS 10.7.2", _AUDIT_CONTROLS]},
    {"id": "builtin.clock_skew", "kind": "clock_skew", "severity": "low",
     "title": "Clock of an event source is off", "match": _LIVE,
     "group_by": ["source.service", "source.host"], "max_skew": DEFAULT_MAX_SKEW,
     "dedup": "1h",
     "clauses": ["PCI DSS 10.6.1", "PCI DSS 10.2.2"]},
]

BUILTIN_IDS: Final = tuple(d["id"] for d in _DEFINITIONS)


def builtin_definitions() -> list[dict[str, Any]]:
    """The pack as native rule definitions (fresh copies, safe to edit)."""
    return copy.deepcopy(_DEFINITIONS)


def configure_builtin(overrides: Mapping[str, bool | Mapping[str, Any]] | None = None
                      ) -> list[Rule]:
    """The pack with ``overrides`` applied (see the module docstring); disabled rules are kept
    with ``enabled`` false so a listing can show them."""
    overrides = overrides or {}
    unknown = sorted(set(overrides) - set(BUILTIN_IDS))
    if unknown:
        raise RuleError(unknown[0], "id", f"not a built-in rule ({', '.join(BUILTIN_IDS)})")
    rules = []
    for d in builtin_definitions():
        o = overrides.get(d["id"])
        if isinstance(o, bool):
            d["enabled"] = o
        elif isinstance(o, Mapping):
            o = dict(o)
            if "id" in o or "kind" in o:
                raise RuleError(d["id"], "id" if "id" in o else "kind",
                                "cannot be overridden")
            if "threshold" in o:
                o["count"] = o.pop("threshold")
            if "allowed_roles" in o:
                roles = o.pop("allowed_roles")
                if d["id"] != "builtin.audit_access":
                    raise RuleError(d["id"], "allowed_roles", "only for builtin.audit_access")
                if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles) \
                        or not roles:
                    raise RuleError(d["id"], "allowed_roles", "expected a list of roles")
                d["match"] = {**d["match"], "metadata.role": {"not": roles}}
            d.update(o)
        elif o is not None:
            raise RuleError(d["id"], "overrides", "expected true, false or a mapping")
        rules.append(parse_rule(d, origin="builtin"))
    return rules


def builtin_rules() -> list[Rule]:
    """The pack with its default parameters."""
    return configure_builtin({})
