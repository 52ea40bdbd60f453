"""SIEM exports checked against the published schemas, not against our reading of them.

- **OCSF 1.1.0**: every exported record is validated with ``jsonschema`` (Draft 2020-12) against
  the JSON Schema that the PyPI package ``ocsf-json-schema`` generates from the OCSF 1.1.0
  schema export it ships (``ocsf_json_schema/ocsf/1.1.0.json``): required attributes, types,
  enums, the ``hostname_t``/``ip_t`` patterns, no unknown attributes, and the class and object
  constraints (``at_least_one`` as ``anyOf``, ``just_one`` as ``oneOf``). A test checks that
  every constraint in the package's data made it into the generated schema, so none is lost.
- **ECS 8.11**: no PyPI package ships ECS's field definitions (``ecs_flat.yml``); Elastic
  publishes them on npm as ``@elastic/ecs`` (``generated/ecs_flat.js``, generated from
  ``ecs_flat.yml``). The ECS tests fetch that package once per run with ``npm pack`` into a
  temporary directory, read it with ``node``, and check every field of every exported document:
  the name is an ECS field (or under our own ``sealtrail.*`` namespace, which ECS does not
  define), the value has the field's type, arrays where ECS normalizes to arrays, and
  ``allowed_values`` (with each category's ``expected_event_types``). Without ``npm``/``node`` or
  the registry they skip, saying why.

The corpus: events appended to a real encrypted log (every category and outcome, with and
without addresses, authentication with and without target and source, control characters,
U+2028/U+2029 and other Unicode in every text field), exported sealed (the default), opened, and
after a subject's erasure; plus Hypothesis-generated stored events.
"""

from __future__ import annotations

import importlib
import ipaddress
import itertools
import json
import shutil
import subprocess
import tarfile
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from sealtrail import AuditLog
from sealtrail.compliance import siem
from sealtrail.compliance.siem import ExportEntry, export_entries, to_ecs, to_ocsf
from sealtrail.core.event import CATEGORIES, OUTCOMES
from sealtrail.log.search import Filter, search
from tests.compliance.test_siem import HASH, stored_events

# Neither package ships type information: imported as modules of unknown type (Any).
jsonschema: Any = importlib.import_module("jsonschema")
ocsf_json_schema: Any = importlib.import_module("ocsf_json_schema")

OCSF_RAW: dict[str, Any] = ocsf_json_schema.get_ocsf_schema(version=siem.OCSF_VERSION)
OCSF: Any = ocsf_json_schema.OcsfJsonSchemaEmbedded(
    ocsf_json_schema.get_ocsf_schema(version=siem.OCSF_VERSION))
ECS_NPM = "@elastic/ecs@8.11.1"  # the ECS 8.11 field definitions (our ECS_VERSION is 8.11.0)

# Text that has broken exports before: control characters, Unicode line separators,
# bidi controls, non-ASCII, characters that need escaping in CEF and CSV.
NASTY = ["web\x00-1", "line\nbreak\r", "sep\u2028para\u2029", "tab\there", "esc\x1b[31m",
         "rtl\u202eevil", "naïve ☃ 日本", "=cmd|' /C calc'!A0", "a|b\\c=d", "web_01.example"]


# -- the corpus --------------------------------------------------------------------------------


def _events() -> Iterator[dict[str, Any]]:
    """Events covering categories, outcomes, addresses, parts present or absent, nasty text."""
    actions = {"authentication": ["user.login", "user.logout", "user.mfa_verify"],
               None: ["record.read", "record.create", "record.frob"]}
    ips = [None, "203.0.113.7", "2001:db8::7"]
    for n, (category, outcome) in enumerate(itertools.product((*CATEGORIES, None), OUTCOMES)):
        for k, action in enumerate(actions.get(category, actions[None])):
            ev: dict[str, Any] = {"actor": {"id": f"user-{n}"}, "action": action,
                                  "outcome": outcome}
            if category is not None:
                ev["category"] = category
            ip = ips[(n + k) % 3]
            if ip is not None:
                ev["actor"]["ip"] = ip
            if (n + k) % 2:
                ev["target"] = {"type": "record", "id": f"rec-{n}", "name": NASTY[n % 10]}
            if (n + k) % 3 == 1:
                ev["source"] = {"service": "shop", "host": NASTY[(n + k) % 10]}
            elif (n + k) % 3 == 2:
                ev["source"] = {"ip": "192.0.2.10", "host": "web-1.example"}
            if (n + k) % 4 == 0:
                ev["subjects"] = [f"patient-{n % 3}"]
                ev["metadata"] = {"note": NASTY[(n + 3) % 10]}
            yield ev
    # Authentication with every combination of target and source parts, none at all included.
    for target, source in itertools.product(
            [None, {"type": "account", "id": "acct-1"}, {"type": "account"}],
            [None, {"service": "sso"}, {"host": "idp-1"}, {"ip": "192.0.2.1"},
             {"host": "idp\x07\u2028host"}, {"service": "sso", "host": "idp.example"}]):
        ev = {"actor": {"id": "alice"}, "action": "user.login", "outcome": "failure",
              "category": "authentication"}
        if target is not None:
            ev["target"] = target
        if source is not None:
            ev["source"] = source
        yield ev
    # Every text field carrying every nasty string, opened and sealed.
    for text in NASTY:
        yield {"actor": {"id": text, "name": text, "type": text, "user_agent": text,
                         "ip": "10.0.0.5", "on_behalf_of": text},
               "action": "doc.update", "outcome": "success", "category": "data_change",
               "target": {"type": text, "id": text, "name": text},
               "source": {"service": text, "host": text, "ip": "fe80::1"},
               "reason": text, "purpose": text, "request_id": text, "trace_id": text,
               "metadata": {text: text}, "changes": {"before": text, "after": [text]}}
        yield {"actor": {"id": text, "type": "admin"}, "action": "user.login",
               "outcome": "success", "category": "authentication",
               "source": {"service": text, "host": text}, "request_id": text}
    # A resource with only a type, and a source with only a service.
    yield {"actor": {"id": "svc", "type": "system"}, "action": "cache.purge",
           "outcome": "error", "target": {"type": "cache"}, "source": {"service": "cron"}}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, ExportEntry]]:
    """``(how, entry)`` for every event: sealed (default), opened, and after an erasure."""
    directory = tmp_path_factory.mktemp("siem-schema")
    out: list[tuple[str, ExportEntry]] = []
    with AuditLog.open(directory / "log") as alog:
        alog.append_many(list(_events()))
        end = alog.size

        def selection() -> Iterator[Any]:
            return search(alog, Filter(), limit=end + 1, newest_first=False, before=end)

        out += [("sealed", e) for e in export_entries(selection())]
        out += [("opened", e) for e in export_entries(selection(), open_sealed=True)]
        alog.erase_subject("patient-0", reason="test", actor={"id": "dpo"})
        end = alog.size
        out += [("erased", e) for e in export_entries(selection(), open_sealed=True)]
        out += [("erased-sealed", e) for e in export_entries(selection())]
    return out


def test_corpus_covers_what_it_claims(corpus: list[tuple[str, ExportEntry]]) -> None:
    """The corpus holds sealed, opened and erased forms, every category and outcome, events
    with and without an address, and the nasty strings, so the schema tests below mean it."""
    events = [ev for _, (_, ev, _) in corpus]
    assert any("sealed" in ev for ev in events)
    assert any("erased" in ev for ev in events)
    assert any(how == "opened" and "ip" in ev.get("actor", {}) for how, (_, ev, _) in corpus)
    assert any("ip" not in ev.get("actor", {}) for ev in events)
    assert {ev.get("category") for ev in events} >= {*CATEGORIES, None}
    assert {ev["outcome"] for ev in events} == set(OUTCOMES)
    text = json.dumps(events, ensure_ascii=False)
    assert all(json.dumps(s, ensure_ascii=False)[1:-1] in text for s in NASTY)
    auth = [ev for ev in events if ev.get("category") == "authentication"]
    assert any("source" not in ev and "target" not in ev for ev in auth)


def test_default_export_never_holds_an_opened_value(
        corpus: list[tuple[str, ExportEntry]]) -> None:
    """Sealed exports carry no personal value the log sealed: the opened form of the same entry
    has it in place, the sealed form has the ``sealed`` marker instead, in every format."""
    opened = {i: ev for how, (i, ev, _) in corpus if how == "opened"}
    for how, (i, ev, digest) in corpus:
        if how != "sealed" or "sealed" not in ev:
            continue
        plain = opened[i]
        assert "sealed" not in plain
        for path in ev["sealed"]["fields"]:
            head, _, tail = path.partition(".")
            value = plain[head][tail] if tail else plain[head]
            assert (tail and tail not in ev.get(head, {})) or (not tail and head not in ev)
            stored = json.dumps(ev, ensure_ascii=False)  # the same text may be unsealed too
            if isinstance(value, str) and len(value) > 3 and json.dumps(
                    value, ensure_ascii=False)[1:-1] not in stored:
                for fmt in siem.FORMATS:
                    record = siem.FORMATS[fmt].record(i, ev, digest, "l").decode("utf-8")
                    assert value not in record, (fmt, path)
                    assert json.dumps(value)[1:-1] not in record, (fmt, path)


# -- OCSF 1.1.0 --------------------------------------------------------------------------------


_validators: dict[int, Any] = {}


def _ocsf_validator(class_uid: int) -> Any:
    if class_uid not in _validators:
        schema = OCSF.get_class_schema(OCSF.lookup_class_name_from_uid(class_uid))
        jsonschema.Draft202012Validator.check_schema(schema)
        _validators[class_uid] = jsonschema.Draft202012Validator(schema)
    return _validators[class_uid]


def _ocsf_errors(record: Mapping[str, Any]) -> list[str]:
    validator = _ocsf_validator(int(record["class_uid"]))
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
            for e in validator.iter_errors(record)]


def test_ocsf_schema_carries_every_constraint_of_the_package_data() -> None:
    """Each ``at_least_one``/``just_one`` constraint of the classes we emit, and of every object
    their schemas embed, is in the generated JSON Schema (``anyOf``/``oneOf``): the validation
    below enforces the constraints, none is silently dropped."""
    assert OCSF_RAW["version"] == "1.1.0"
    assert OCSF_RAW["classes"]["authentication"]["constraints"] == {
        "at_least_one": ["service", "dst_endpoint"]}  # the one the issue names
    checked = 0
    for class_uid in (3002, 6003):
        name = OCSF.lookup_class_name_from_uid(class_uid)
        schema = OCSF.get_class_schema(name)
        parts = [(OCSF_RAW["classes"][name], schema)]
        parts += [(OCSF_RAW["objects"][slug], sub) for slug, sub in schema["$defs"].items()]
        for raw, generated in parts:
            constraints = raw.get("constraints") or {}
            assert set(constraints) <= {"at_least_one", "just_one"}, constraints
            for kind, keyword in (("at_least_one", "anyOf"), ("just_one", "oneOf")):
                if kind in constraints:
                    assert generated[keyword] == [{"required": [f]} for f in constraints[kind]]
                    checked += 1
    assert checked >= 5  # authentication, network_endpoint, user, service, product, ...


def test_ocsf_validation_catches_the_faults_of_issue_12() -> None:
    """The validator is not a rubber stamp: the records sealtrail used to write fail it."""
    good = to_ocsf(0, {"id": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "action": "user.login",
                       "outcome": "success", "category": "authentication",
                       "actor": {"id": "alice"}, "source": {"host": "idp-1"},
                       "time": "2026-11-28T10:00:00Z", "received_at": "2026-11-28T10:00:00Z"},
                   HASH, log="l")
    assert _ocsf_errors(good) == []
    assert _ocsf_errors({**good, "src_endpoint": {}})  # at_least_one of network_endpoint
    no_service = {k: v for k, v in good.items() if k not in ("service", "dst_endpoint")}
    assert _ocsf_errors(no_service)  # the class's at_least_one: service, dst_endpoint
    assert _ocsf_errors({**good, "dst_endpoint": {"hostname": "idp\x07-1"}})  # hostname_t
    assert _ocsf_errors({**good, "dst_endpoint": {"ip": "not an ip"}})  # ip_t
    assert _ocsf_errors({**good, "invented": 1})  # no unknown attributes
    assert _ocsf_errors({**good, "severity_id": 7})  # enums


def test_every_ocsf_record_is_valid(corpus: list[tuple[str, ExportEntry]]) -> None:
    """Every record of the corpus, sealed, opened and erased, validates against OCSF 1.1.0."""
    failures = []
    for how, (index, event, digest) in corpus:
        record = to_ocsf(index, event, digest, log="default")
        # What is written is what is validated: the JSON line, read back.
        line = siem.FORMATS["ocsf"].record(index, event, digest, "default")
        assert line.endswith(b"\n")
        assert line.count(b"\n") == 1
        assert json.loads(line) == record
        errors = _ocsf_errors(json.loads(line))
        if errors:
            failures.append((how, index, errors))
    assert failures == []


def test_ocsf_syslog_payload_is_valid(corpus: list[tuple[str, ExportEntry]]) -> None:
    """The OCSF record inside a syslog message (``payload="ocsf"``) is the same valid record."""
    for _, (index, event, digest) in corpus[:40]:
        message = siem.to_syslog(index, event, digest, log="l", payload="ocsf")
        assert _ocsf_errors(json.loads(message.split(b"\xef\xbb\xbf", 1)[1])) == []


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stored_events())
def test_ocsf_valid_for_any_stored_event(event: dict[str, Any]) -> None:
    """Any valid stored event (Hypothesis: any Unicode text, any address, sealed or not)."""
    assert _ocsf_errors(to_ocsf(7, event, HASH, log="l")) == []


def test_ocsf_host_names_and_placeholders() -> None:
    """A DNS host name goes to ``dst_endpoint.hostname``, any other host text to its ``name``;
    ``unknown`` fills only what the class requires when the event says nothing."""
    base = {"id": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "actor": {"id": "a"},
            "time": "2026-11-28T10:00:00Z", "received_at": "2026-11-28T10:00:00Z",
            "outcome": "success"}
    api = to_ocsf(1, {**base, "action": "doc.read", "source": {"host": "web_01"}}, HASH, log="l")
    assert api["dst_endpoint"] == {"name": "web_01"}
    assert api["src_endpoint"] == {"name": siem.OCSF_UNKNOWN}
    with_ip = {**base, "actor": {"id": "a", "ip": "2001:db8::1"}, "action": "doc.read",
               "source": {"host": "web-01.example"}}
    api = to_ocsf(1, with_ip, HASH, log="l")
    assert api["src_endpoint"] == {"ip": "2001:db8::1"}
    assert api["dst_endpoint"] == {"hostname": "web-01.example"}
    auth = to_ocsf(1, {**base, "action": "user.login", "category": "authentication",
                       "source": {"host": "idp\n1"}}, HASH, log="l")
    assert auth["dst_endpoint"] == {"name": "idp\n1"}
    assert "service" not in auth
    assert "src_endpoint" not in auth


# -- ECS 8.11 ----------------------------------------------------------------------------------


def _fetch_ecs(cache: Path) -> dict[str, Any]:
    """ECS's flat field definitions from the ``@elastic/ecs`` npm package, cached as JSON."""
    target = cache / "ecs_flat.json"
    if target.exists():
        loaded: dict[str, Any] = json.loads(target.read_text("utf-8"))
        return loaded
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        pytest.skip("ECS field definitions: npm and node are needed to read @elastic/ecs "
                    "(no PyPI package ships ECS's ecs_flat.yml)")
    try:
        done = subprocess.run([npm, "pack", ECS_NPM, "--silent"], cwd=cache, check=True,
                              capture_output=True, text=True, timeout=120)
    except (subprocess.SubprocessError, OSError) as exc:
        pytest.skip(f"ECS field definitions: npm pack {ECS_NPM} failed: {exc}")
    tgz = cache / done.stdout.strip().splitlines()[-1]
    with tarfile.open(tgz) as tar:
        member = tar.extractfile("package/generated/ecs_flat.js")
        assert member is not None
        (cache / "ecs_flat.js").write_bytes(member.read())
    script = ("process.stdout.write(JSON.stringify("
              "require(process.argv[1]).EcsFlat))")
    flat = subprocess.run([node, "-e", script, str(cache / "ecs_flat.js")], check=True,
                          capture_output=True, text=True, timeout=60).stdout
    target.write_text(flat, "utf-8")
    parsed: dict[str, Any] = json.loads(flat)
    return parsed


@pytest.fixture(scope="module")
def ecs_fields(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    # A fresh directory per run: the suite runs with pytest's cache provider off.
    cache = tmp_path_factory.mktemp("ecs-" + ECS_NPM.rpartition("@")[2])
    fields = _fetch_ecs(cache)
    assert fields["ecs.version"]["type"] == "keyword"
    return fields


_STRING_TYPES = {"keyword", "constant_keyword", "wildcard", "text", "match_only_text"}
_INT_TYPES = {"long", "integer", "short", "byte", "unsigned_long"}


def _type_ok(ecs_type: str, value: Any) -> bool:
    if ecs_type in _STRING_TYPES:
        return isinstance(value, str)
    if ecs_type in _INT_TYPES:
        return isinstance(value, int) and not isinstance(value, bool)
    if ecs_type in {"float", "double", "scaled_float", "half_float"}:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if ecs_type == "boolean":
        return isinstance(value, bool)
    if ecs_type == "ip":
        try:
            ipaddress.ip_address(value)
        except ValueError:
            return False
        return True
    if ecs_type == "date":
        try:
            datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC)
        except ValueError:
            return False
        return True
    if ecs_type in {"object", "flattened", "nested"}:
        return isinstance(value, dict)
    return False


def _leaves(doc: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted name, value)`` of every ECS field in a document (objects are walked)."""
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and name != "sealtrail":
            yield from _leaves(value, name + ".")
        else:
            yield name, value


def _ecs_errors(doc: Mapping[str, Any], fields: Mapping[str, Any]) -> list[str]:
    errors = []
    for name, value in _leaves(doc):
        if name == "sealtrail":  # our own namespace: a custom field set ECS leaves to users
            continue
        spec = fields.get(name)
        if spec is None:
            errors.append(f"{name}: not an ECS field")
            continue
        values = value if isinstance(value, list) else [value]
        if "array" in (spec.get("normalize") or []) and not isinstance(value, list):
            errors.append(f"{name}: ECS expects an array")
        for v in values:
            if not _type_ok(spec["type"], v):
                errors.append(f"{name}: {v!r} is not of ECS type {spec['type']}")
            allowed = {a["name"] for a in spec.get("allowed_values") or ()}
            if allowed and v not in allowed:
                errors.append(f"{name}: {v!r} is not one of ECS's allowed values")
    category = doc.get("event", {}).get("category", [])
    by_category = {a["name"]: set(a.get("expected_event_types") or ())
                   for a in fields["event.category"]["allowed_values"]}
    for cat in category:
        for kind in doc.get("event", {}).get("type", []):
            if by_category.get(cat) and kind not in by_category[cat]:
                errors.append(f"event.type {kind!r} is not one ECS expects for {cat!r}")
    if doc.get("ecs", {}).get("version", "").rpartition(".")[0] != "8.11":
        errors.append("ecs.version is not 8.11.x")
    return errors


def test_ecs_namespace_is_ours(ecs_fields: Mapping[str, Any]) -> None:
    """``sealtrail`` is no ECS field set, so our custom fields can never clash with ECS."""
    assert not any(name.split(".")[0] == "sealtrail" for name in ecs_fields)


def test_ecs_validation_is_not_a_rubber_stamp(ecs_fields: Mapping[str, Any]) -> None:
    """Wrong names, types, arrays and allowed values are all caught."""
    event: dict[str, Any] = {"category": ["database"], "type": ["access"]}
    doc: dict[str, Any] = {"ecs": {"version": "8.11.0"}, "event": event}
    assert _ecs_errors(doc, ecs_fields) == []
    assert _ecs_errors({**doc, "user": {"ipaddress": "1"}}, ecs_fields)
    assert _ecs_errors({**doc, "source": {"ip": "not-an-ip"}}, ecs_fields)
    assert _ecs_errors({**doc, "event": {"category": "database", "type": ["access"]}},
                       ecs_fields)
    assert _ecs_errors({**doc, "event": {"category": ["database"], "type": ["start"]}},
                       ecs_fields)
    assert _ecs_errors({**doc, "event": {**event, "outcome": "denied"}}, ecs_fields)
    assert _ecs_errors({**doc, "event": {**event, "sequence": "41"}}, ecs_fields)


def test_every_ecs_document_is_valid(corpus: list[tuple[str, ExportEntry]],
                                     ecs_fields: Mapping[str, Any]) -> None:
    """Every document of the corpus uses ECS field names with ECS types and allowed values."""
    failures = []
    for how, (index, event, digest) in corpus:
        line = siem.FORMATS["ecs"].record(index, event, digest, "default")
        doc = json.loads(line)
        assert doc == to_ecs(index, event, digest, log="default")
        errors = _ecs_errors(doc, ecs_fields)
        if errors:
            failures.append((how, index, errors))
    assert failures == []


def test_ecs_categorization_table_against_ecs(ecs_fields: Mapping[str, Any]) -> None:
    """Every (category, type) pair the table can produce is one ECS's own data expects."""
    by_category = {a["name"]: set(a.get("expected_event_types") or ())
                   for a in ecs_fields["event.category"]["allowed_values"]}
    types = {a["name"] for a in ecs_fields["event.type"]["allowed_values"]}
    for category in (*CATEGORIES, None):
        for action in ("x.login", "x.logout", "x.create", "x.read", "x.update", "x.delete",
                       "x.frob"):
            (cat,), kinds = siem.ecs_categorization(category, action)
            assert set(kinds) <= by_category[cat] <= types, (category, action)
