"""The import contract every source shares (core/sources/base.py): reading inputs, fitting a
record into an event, exactly-once ids, and refusing before anything is appended."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from sealtrail.core.errors import ValidationError
from sealtrail.core.event import MAX_EVENT_BYTES, validate_event
from sealtrail.core.sources import get_source
from sealtrail.core.sources.base import (
    LogSource,
    Source,
    action_of,
    convert,
    import_id,
    imported,
    input_text,
    json_records,
    record_time,
)


def _source() -> Source:
    def event(rec: dict[str, Any]) -> dict[str, Any]:
        return imported(SOURCE, rec, uid=str(rec.get("uid")), at=record_time(rec.get("t"), "t"),
                        action=action_of("test", str(rec.get("what", "x"))), outcome="success",
                        actor={"id": rec.get("who", "someone")})
    return Source("test", "Test", LogSource("test", "audit"), json_records, event)


SOURCE = _source()


def test_a_record_is_fitted_into_what_an_event_may_hold() -> None:
    deep: Any = "bottom"
    for _ in range(12):
        deep = {"down": deep}
    rec = {"uid": 1, "t": 1767225600, "big": 2**60, "nan": float("nan"),
           "long": {"k" * 200: 1}, "deep": deep, "fine": {"a": [1, 2.5, None, True]}}
    ev = SOURCE.event(rec)
    validate_event(ev)
    original = ev["metadata"]["original"]
    assert original["big"] == str(2**60)
    assert original["nan"] == "nan"
    assert json.loads(original["long"]) == {"k" * 200: 1}
    assert original["fine"] == rec["fine"]
    node = original["deep"]
    levels = 0
    while isinstance(node, dict):
        node, levels = node["down"], levels + 1
    assert isinstance(node, str)  # the deepest objects kept as their JSON text
    assert "bottom" in node
    assert levels == 6  # metadata is level 1, original 2, deep 3 ... objects down to level 8


def test_ids_are_deterministic_per_source_and_record() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    assert import_id("a", "1", at) == import_id("a", "1", at)
    assert import_id("a", "1", at) != import_id("b", "1", at)
    assert import_id("a", "1", at) != import_id("a", "2", at)
    assert import_id("a", "1", at)[14] == "7"  # UUIDv7


def test_convert_refuses_before_appending_and_names_the_record() -> None:
    lines = [json.dumps({"uid": i, "t": 1767225600 + i}) for i in range(4)]
    lines[2] = json.dumps({"uid": 2, "t": "yesterday"})
    with pytest.raises(ValidationError, match=r"line 3: t"):
        convert(SOURCE, "\n".join(lines))
    done = convert(SOURCE, "\n".join(lines), skip_invalid=True)
    assert (len(done.events), done.records, [w for w, _ in done.skipped]) == (3, 4, ["line 3"])


@pytest.mark.parametrize(("record", "says"), [
    ({"uid": 1, "t": 0, "who": "x\ud800"}, "not valid Unicode"),
    ({"uid": 1, "t": 0, "blob": "x" * (MAX_EVENT_BYTES + 10)}, "larger than"),
    ({"uid": 1, "t": 0, "who": "key:abc"}, "actor.id"),
    ({"uid": 1, "t": "1969-12-31T23:59:59Z"}, "before 1970"),
])
def test_what_the_engine_would_refuse_is_refused_at_conversion(record: dict[str, Any],
                                                                says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        convert(SOURCE, json.dumps(record))


def test_json_records_reads_every_shape_and_splits_lines_on_lf_only() -> None:
    recs = [{"uid": i, "note": "a\u2028b\u2029c\x85d"} for i in range(3)]
    shapes = [json.dumps({"Records": recs}), json.dumps(recs),
              "\n".join(json.dumps(r, ensure_ascii=False) for r in recs),
              "\ufeff" + "\r\n".join(json.dumps(r, ensure_ascii=False) for r in recs)]
    for text in shapes:
        assert [r for _, r in json_records(text, ("Records",))] == recs
    assert [r for _, r in json_records(json.dumps(recs[0]))] == [recs[0]]
    with pytest.raises(ValidationError, match="line 2"):
        list(json_records('{"a": 1}\nnot json\n'))
    with pytest.raises(ValidationError, match="record 2"):
        list(json_records("[{}, 3]"))


def test_input_text_reads_gzip_members_and_refuses_bombs_and_truncation() -> None:
    text = '{"a": 1}\n{"a": 2}\n'
    assert input_text(gzip.compress(text[:9].encode()) + gzip.compress(text[9:].encode()),
                      100, "FILE") == text
    with pytest.raises(ValidationError, match="once unzipped"):
        input_text(gzip.compress(b" " * 10_000), 1000, "FILE")
    with pytest.raises(ValidationError, match="ends early"):
        input_text(gzip.compress(text.encode())[:-12], 1000, "FILE")
    with pytest.raises(ValidationError, match="not UTF-8"):
        input_text(b"\xff\xfe", 100, "FILE")


def test_every_source_is_registered_with_its_sigma_log_source() -> None:
    expected = {"cloudtrail": ("aws", "cloudtrail"), "okta": ("okta", "okta"),
                "github": ("github", "audit"), "gcp": ("gcp", "gcp.audit"),
                "azure": ("azure", "activitylogs"), "k8s-audit": ("kubernetes", "audit"),
                "auditd": ("linux", "auditd")}
    for name, (product, service) in expected.items():
        src = get_source(name)
        assert src.name == name
        assert (src.log_source.product, src.log_source.service) == (product, service)


@pytest.mark.parametrize(("text", "where"), [
    ("[" * 200_000, "input"),
    ('{"a": ' + "9" * 5000 + "}", "input"),
    ('{"a": 1}\n' + "[" * 100_000, "line 2"),
])
def test_json_that_python_cannot_read_is_a_validation_error(text: str, where: str) -> None:
    with pytest.raises(ValidationError) as info:
        list(json_records(text))
    assert info.value.field == where


def test_a_lone_surrogate_in_a_record_id_is_refused_not_a_crash() -> None:
    record = {"uid": "a\ud800b", "t": 1767225600}
    ev = SOURCE.event(record)  # the id is a hash: computed whatever the text
    assert ev["id"]
    with pytest.raises(ValidationError, match="not valid Unicode"):
        convert(SOURCE, json.dumps(record))
