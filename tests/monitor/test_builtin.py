"""The built-in pack: each rule fires on what it is for and stays quiet otherwise; overrides;
loading rule files of both formats; ``rules test``."""

from __future__ import annotations

import copy
import re
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import pytest

from sealtrail import AuditLog
from sealtrail.log.auditlog import READ_ROLES
from sealtrail.monitor.builtin import BUILTIN_IDS, builtin_rules, configure_builtin
from sealtrail.monitor.engine import Engine, evaluate_events, load_rules
from sealtrail.monitor.rules import Rule, RuleError

BASE = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
DOCS = Path(__file__).resolve().parents[2] / "docs" / "rules.md"


def ts(seconds: float) -> str:
    return (BASE + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ev(at: float = 0, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "action": "doc.read", "outcome": "success", "category": "data_access",
        "actor": {"id": "alice", "type": "user"},
        "source": {"host": "web-1", "service": "shop"},
        "time": ts(at), "received_at": ts(at)}
    event.update(fields)
    return event


def login(at: float, outcome: str, actor: str = "alice") -> dict[str, Any]:
    return ev(at, action="user.login", category="authentication", outcome=outcome,
              actor={"id": actor})


def _produced_reads() -> dict[str, dict[str, Any]]:
    """One audited read per reader role, as the real producer records it
    (``AuditLog.record_access``) and the monitor reads it back (opened): rules are tested
    against what the log actually holds, not against a hand-made event of the same name."""
    out: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp, AuditLog.open(tmp) as log:
        for role in READ_ROLES:
            receipt = log.record_access({"id": f"key:{role}", "type": "api_key",
                                         "name": "dashboard"}, "audit.search", role=role,
                                        details={"actor": "alice"}, results=1)
            out[role] = log.read(log.entry(receipt.index))
    return out


_READS: Final = _produced_reads()


def audit_read(role: str) -> dict[str, Any]:
    """A read of the audit trail by ``role`` (see :func:`_produced_reads`)."""
    return copy.deepcopy(_READS[role])


def fired(events: list[dict[str, Any]], rules: list[Rule] | None = None, *,
          now: datetime | None = None) -> list[tuple[int, str]]:
    return [(i, d.rule) for i, d in evaluate_events(rules or builtin_rules(), events, now=now)]


# (rule, events that fire it, the (index, rule) pairs expected)
FIRING: list[tuple[str, list[dict[str, Any]], list[tuple[int, str]]]] = [
    ("builtin.brute_force", [login(i, "failure") for i in range(5)],
     [(4, "builtin.brute_force")]),
    ("builtin.success_after_failures",
     [login(0, "failure"), login(1, "denied"), login(2, "failure"), login(60, "success")],
     [(3, "builtin.success_after_failures")]),
    ("builtin.audit_access", [audit_read("reader")], [(0, "builtin.audit_access")]),
    ("builtin.privilege_change", [ev(action="user.role.assign", category="admin")],
     [(0, "builtin.privilege_change")]),
    ("builtin.privilege_change",
     [ev(action="acl.update", category="authorization", changes={"before": "r", "after": "rw"})],
     [(0, "builtin.privilege_change")]),
    ("builtin.sealtrail_config", [ev(action="keys.rotate", category="admin")],
     [(0, "builtin.sealtrail_config")]),
    ("builtin.sealtrail_config", [ev(action="retention.set", category="configuration")],
     [(0, "builtin.sealtrail_config")]),
    ("builtin.mass_access", [ev(i) for i in range(100)], [(99, "builtin.mass_access")]),
    ("builtin.mass_export", [ev(action="report.export", metadata={"count": 5000})],
     [(0, "builtin.mass_export")]),
    ("builtin.subject_erasure", [ev(action="subject.erase", category="admin")],
     [(0, "builtin.subject_erasure")]),
    ("builtin.integrity_failure", [ev(action="integrity.failure", category="system",
                                      outcome="failure")],
     [(0, "builtin.integrity_failure")]),
    ("builtin.clock_skew", [ev(time=ts(-900), received_at=ts(0))], [(0, "builtin.clock_skew")]),
]

QUIET: list[tuple[str, list[dict[str, Any]]]] = [
    ("builtin.brute_force", [login(i * 100, "failure") for i in range(5)]),
    ("builtin.brute_force", [login(i, "failure", actor=f"u{i}") for i in range(5)]),
    ("builtin.success_after_failures",
     [login(0, "failure"), login(1, "failure"), login(60, "success")]),
    ("builtin.success_after_failures",
     [login(0, "failure"), login(1, "failure"), login(2, "failure"), login(700, "success")]),
    ("builtin.audit_access", [audit_read("auditor")]),
    ("builtin.privilege_change", [ev(action="doc.update", category="data_change")]),
    ("builtin.privilege_change", [ev(action="acl.check", category="authorization")]),
    ("builtin.sealtrail_config", [audit_read("auditor")]),
    ("builtin.mass_access", [ev(i) for i in range(99)]),
    ("builtin.mass_access", [ev(i * 4) for i in range(100)]),
    ("builtin.mass_export", [ev(action="report.export", metadata={"count": 999})]),
    ("builtin.subject_erasure", [ev(action="subject.hold.add", category="admin")]),
    ("builtin.integrity_failure", [ev(action="integrity.check", category="system")]),
    ("builtin.clock_skew", [ev(time=ts(-120), received_at=ts(0))]),
]


@pytest.mark.parametrize(("rule_id", "events", "expected"), FIRING,
                         ids=[f"{r}-{n}" for n, (r, _, _) in enumerate(FIRING)])
def test_builtin_rule_fires(rule_id: str, events: list[dict[str, Any]],
                            expected: list[tuple[int, str]]) -> None:
    """The rule fires where expected (and no other built-in rule fires on these events)."""
    assert fired(events) == expected


@pytest.mark.parametrize(("rule_id", "events"), QUIET,
                         ids=[f"{r}-{n}" for n, (r, _) in enumerate(QUIET)])
def test_builtin_rule_is_quiet(rule_id: str, events: list[dict[str, Any]]) -> None:
    """Near misses do not fire the rule."""
    assert rule_id not in {r for _, r in fired(events)}


def test_source_silent_fires_on_tick() -> None:
    """A service that logged and then fell silent for over an hour is reported once."""
    assert fired([ev(0)], now=BASE + timedelta(minutes=61)) == [(0, "builtin.source_silent")]


def test_source_silent_is_quiet_within_the_hour() -> None:
    """Within the interval nothing is reported."""
    assert fired([ev(0)], now=BASE + timedelta(minutes=59)) == []


def test_every_builtin_rule_has_a_firing_and_a_quiet_test() -> None:
    """The two tables above (and the absence tests) cover the whole pack."""
    covered = {r for r, _, _ in FIRING} | {"builtin.source_silent"}
    quiet = {r for r, _ in QUIET} | {"builtin.source_silent"}
    assert covered == quiet == set(BUILTIN_IDS)


def test_every_builtin_rule_cites_clauses_and_is_documented() -> None:
    """Each rule names PCI DSS or HIPAA clauses, and docs/rules.md describes it."""
    docs = DOCS.read_text()
    for r in builtin_rules():
        assert r.clauses
        assert all(re.match(r"(PCI DSS|HIPAA) \d", c) for c in r.clauses)
        assert f"`{r.id}`" in docs
        for clause in r.clauses:
            assert clause in docs, (r.id, clause)


# -- overrides ------------------------------------------------------------------------------

def test_override_threshold() -> None:
    """``threshold`` (or ``count``) and ``window`` of a built-in rule can be overridden."""
    rules = configure_builtin({"builtin.brute_force": {"threshold": 10}})
    events = [login(i, "failure") for i in range(10)]
    assert [i for i, r in fired(events, rules) if r == "builtin.brute_force"] == [9]


def test_disable_builtin_rule() -> None:
    """``False`` disables a rule; it stays listed but never fires."""
    rules = configure_builtin({"builtin.integrity_failure": False})
    assert not next(r for r in rules if r.id == "builtin.integrity_failure").enabled
    assert fired([ev(action="integrity.failure", category="system")], rules) == []


@pytest.mark.parametrize("role", READ_ROLES)
def test_audit_access_judges_every_role_the_producer_records(role: str) -> None:
    """Each role ``record_access`` can record: only an auditor's read is quiet by default
    (an admin, an ingest key or the CLI operator reading the trail is worth a look)."""
    expected = [] if role == "auditor" else [(0, "builtin.audit_access")]
    assert fired([audit_read(role)]) == expected


def test_allowed_roles_override() -> None:
    """The audit-access allow-list is configurable."""
    rules = configure_builtin({"builtin.audit_access": {"allowed_roles": ["auditor", "admin"]}})
    assert fired([audit_read("admin")], rules) == []
    assert fired([audit_read("operator")], rules) == [(0, "builtin.audit_access")]


@pytest.mark.parametrize(("overrides", "field"), [
    ({"builtin.nope": False}, "id"),
    ({"builtin.brute_force": {"kind": "match"}}, "kind"),
    ({"builtin.brute_force": {"window": "forever"}}, "window"),
    ({"builtin.brute_force": {"allowed_roles": ["x"]}}, "allowed_roles"),
    ({"builtin.audit_access": {"allowed_roles": "auditor"}}, "allowed_roles"),
    ({"builtin.brute_force": 5}, "overrides"),
])
def test_bad_overrides_are_refused(overrides: dict[str, Any], field: str) -> None:
    """Overrides are validated like rules: the error names the rule and the field."""
    with pytest.raises(RuleError) as info:
        configure_builtin(overrides)
    assert info.value.field == field


# -- files and `rules test` -----------------------------------------------------------------

NATIVE = """
id: local.failed_admin
kind: threshold
title: Failed admin logins
severity: high
match: {category: authentication, outcome: failure, actor.id: "admin*"}
group_by: actor.id
count: 2
window: 5m
"""

SIGMA = """
title: Erasure by a non-admin
name: erasure_non_admin
logsource: {product: sealtrail}
level: medium
detection:
  sel: {action: subject.erase}
  admin: {actor.id|startswith: admin}
  condition: sel and not admin
"""


def test_load_rules_mixes_native_and_sigma(tmp_path: Path) -> None:
    """A directory of both formats loads into one rule list (sorted by file name)."""
    (tmp_path / "a_native.yml").write_text(NATIVE)
    (tmp_path / "b_sigma.yaml").write_text(SIGMA)
    (tmp_path / "notes.txt").write_text("ignored")
    rules = load_rules(tmp_path)
    assert [(r.id, r.origin) for r in rules] == [("local.failed_admin", "native"),
                                                ("erasure_non_admin", "sigma")]
    events = [login(0, "failure", actor="admin1"), login(1, "failure", actor="admin1"),
              ev(2, action="subject.erase"), ev(3, action="subject.erase", actor={"id": "admin"})]
    assert fired(events, rules) == [(1, "local.failed_admin"), (2, "erasure_non_admin")]


def test_load_rules_single_file_with_several_documents(tmp_path: Path) -> None:
    """One file may hold several documents of either format."""
    f = tmp_path / "all.yml"
    f.write_text(NATIVE + "---\n" + SIGMA)
    assert len(load_rules(f)) == 2


@pytest.mark.parametrize(("text", "message"), [
    ("id: x\nkind: threshold\n", r"count.*broken\.yml"),
    ("just: a mapping\n", r"broken\.yml.*neither"),
    ("key: [unclosed\n", r"broken\.yml.*YAML"),
])
def test_load_rules_errors_name_the_file(tmp_path: Path, text: str, message: str) -> None:
    """Errors while loading name the file."""
    (tmp_path / "broken.yml").write_text(text)
    with pytest.raises(RuleError, match=message):
        load_rules(tmp_path)


def test_load_rules_refuses_duplicate_ids(tmp_path: Path) -> None:
    """The same id in two files is an error."""
    (tmp_path / "a.yml").write_text(NATIVE)
    (tmp_path / "b.yml").write_text(NATIVE)
    with pytest.raises(RuleError, match="defined twice"):
        load_rules(tmp_path)


def test_evaluate_events_with_ticks() -> None:
    """``rules test`` may tick after events; tick detections pair with that event's index."""
    def tick_after(i: int, event: Mapping[str, Any]) -> datetime | None:
        return BASE + timedelta(hours=2) if i == 1 else None

    found = evaluate_events(builtin_rules(), [ev(0), ev(1)], tick=tick_after)
    assert [(i, d.rule, d.key) for i, d in found] == [(1, "builtin.source_silent", "shop")]


def test_engine_with_everything_enabled_runs_a_mixed_stream() -> None:
    """A smoke run: the built-in pack over a mixed stream produces JSON-ready detections."""
    engine = Engine(builtin_rules())
    events = [login(i, "failure") for i in range(6)] + [audit_read("reader")]
    out = [d.to_dict() for i, e in enumerate(events) for d in engine.process(i, e)]
    assert {d["rule"] for d in out} == {"builtin.brute_force", "builtin.audit_access"}


def test_mass_export_fires_on_sealtrail_own_large_export() -> None:
    """``builtin.mass_export`` sees the size of sealtrail's own exports, which the producer
    records as ``metadata.results`` (an application's export says ``metadata.count``)."""
    with tempfile.TemporaryDirectory() as tmp, AuditLog.open(tmp) as log:
        big = log.record_access({"id": "ops", "type": "os_user"}, "audit.export",
                                role="operator", details={"format": "ocsf"}, results=5000)
        small = log.record_access({"id": "ops", "type": "os_user"}, "audit.export",
                                  role="operator", details={"format": "ocsf"}, results=10)
        events = [log.read(log.entry(big.index)), log.read(log.entry(small.index))]
    hits = [rule for _, rule in fired(events)]
    assert hits.count("builtin.mass_export") == 1
