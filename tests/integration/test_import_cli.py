"""``sealtrail import`` through the real console script: a source's own file in, events out,
all or nothing, exactly once across re-imports, gzip read as such."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from tests.integration.test_cli import run

from sealtrail import AuditLog


def _github(n: int, *, bad_at: int | None = None) -> bytes:
    """GitHub audit log JSON Lines (the streaming export's form), one with U+2028 in a text."""
    lines = []
    for i in range(n):
        rec: dict[str, object] = {
            "@timestamp": 1767225600000 + i * 1000, "_document_id": f"doc-{i}",
            "action": "repo.create" if i % 2 else "org.update_member", "actor": f"dev{i % 3}",
            "org": "acme", "repo": f"acme/r{i}", "note": "line\u2028sep"}
        if i == bad_at:
            del rec["@timestamp"]
        lines.append(json.dumps(rec, ensure_ascii=False))
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def data(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    assert run(d, "init", "--no-encryption").returncode == 0
    return d


def _summary(res: object) -> dict[str, object]:
    out = json.loads(res.stdout.decode())  # type: ignore[attr-defined]
    assert isinstance(out, dict)
    return out


def test_import_appends_each_record_once_across_re_imports(data: Path, tmp_path: Path) -> None:
    src = tmp_path / "audit.jsonl"
    src.write_bytes(_github(25))
    first = run(data, "import", "--source", "github", str(src))
    assert first.returncode == 0, first.stderr
    s = _summary(first)
    assert (s["records"], s["imported"], s["duplicates"], s["skipped"]) == (25, 25, 0, 0)
    zipped = tmp_path / "audit.jsonl.gz"
    zipped.write_bytes(gzip.compress(_github(30)))  # overlaps the first 25
    again = run(data, "import", "--source", "github", str(zipped))
    assert again.returncode == 0, again.stderr
    s = _summary(again)
    assert (s["imported"], s["duplicates"]) == (5, 25)
    with AuditLog.open(data, create=False) as log:
        assert log.size == 30
        events = [e.event() for e in log.entries(0)]
        log.verify()
    assert events[0]["metadata"]["log_source"] == {"product": "github", "service": "audit"}
    assert events[0]["metadata"]["original"]["note"] == "line\u2028sep"
    assert len({e["id"] for e in events}) == 30


def test_a_bad_record_stores_nothing_and_is_named(data: Path, tmp_path: Path) -> None:
    src = tmp_path / "audit.jsonl"
    src.write_bytes(_github(10, bad_at=6))
    res = run(data, "import", "--source", "github", str(src))
    assert res.returncode == 2
    assert "line 7" in res.stderr.decode()
    with AuditLog.open(data, create=False) as log:
        assert log.size == 0
    skip = run(data, "import", "--source", "github", "--skip-invalid", str(src))
    assert skip.returncode == 0, skip.stderr
    assert "skipped line 7" in skip.stderr.decode()
    assert (_summary(skip)["imported"], _summary(skip)["skipped"]) == (9, 1)


@pytest.mark.parametrize(("args", "says"), [
    (("--source", "splunk"), "cloudtrail, okta, github, gcp, azure, k8s-audit, auditd"),
    (("--source", "github", "missing.jsonl"), "cannot read"),
])
def test_usage_errors_exit_2_and_say_why(data: Path, args: tuple[str, ...], says: str,
                                        tmp_path: Path) -> None:
    src = tmp_path / "a.jsonl"
    src.write_bytes(_github(1))
    argv = list(args) if "missing.jsonl" in args else [*args, str(src)]
    res = run(data, "import", *argv)
    assert res.returncode == 2
    assert says in res.stderr.decode()


def test_standard_input_and_a_gzip_bomb_guard(data: Path) -> None:
    res = run(data, "import", "--source", "github", "-", stdin=_github(3))
    assert res.returncode == 0, res.stderr
    assert _summary(res)["imported"] == 3
    broken = run(data, "import", "--source", "github", "-", stdin=b"\x1f\x8b\x08\x00garbage")
    assert broken.returncode == 2
    assert "gzip" in broken.stderr.decode()


def test_a_record_whose_id_was_taken_first_is_reported_not_passed_as_stored(
        data: Path, tmp_path: Path) -> None:
    """Someone who can post events and knows a record's id (its author) takes the id first
    with a harmless event: the import must not answer "already stored" for the real one."""
    from sealtrail.core.sources import get_source
    from sealtrail.core.sources.base import convert

    src = tmp_path / "audit.jsonl"
    src.write_bytes(_github(5))
    real = convert(get_source("github"), src.read_text()).events
    with AuditLog.open(data, create=False) as log:
        log.append({"id": real[3].id, "actor": {"id": "dev0"}, "action": "github.repo.create",
                    "outcome": "success", "time": real[3].time})
    res = run(data, "import", "--source", "github", str(src))
    assert res.returncode == 1
    assert "line 4: its id is already taken by a different event" in res.stderr.decode()
    s = _summary(res)
    assert (s["imported"], s["duplicates"], s["conflicts"]) == (4, 0, 1)
    again = run(data, "import", "--source", "github", str(src))  # a true re-import is fine...
    assert _summary(again)["duplicates"] == 4
    assert again.returncode == 1  # ...but the taken record is reported every time


def test_append_refuses_events_claiming_to_be_imported(data: Path) -> None:
    line = json.dumps({"actor": {"id": "a"}, "action": "doc.read", "outcome": "success",
                       "metadata": {"log_source": {"product": "okta", "service": "okta"}}})
    res = run(data, "append", "-", stdin=line.encode() + b"\n")
    assert res.returncode == 2
    assert "metadata.log_source" in res.stderr.decode()


def test_a_record_dated_in_the_future_is_named_before_anything_is_stored(data: Path,
                                                                         tmp_path: Path) -> None:
    """The log refuses ids dated past its clock: the import names that record up front (and
    --skip-invalid leaves it out) instead of failing half way through the batches."""
    lines = _github(1500).decode().split("\n")[:-1]  # LF only: the records hold U+2028
    late = json.loads(lines[1200])
    late["@timestamp"] = 4_070_908_800_000  # 2099
    lines[1200] = json.dumps(late)
    src = tmp_path / "audit.jsonl"
    src.write_text("\n".join(lines) + "\n")
    res = run(data, "import", "--source", "github", str(src))
    assert res.returncode == 2
    assert "line 1201: time" in res.stderr.decode()
    with AuditLog.open(data, create=False) as log:
        assert log.size == 0
    skip = run(data, "import", "--source", "github", "--skip-invalid", str(src))
    assert skip.returncode == 0, skip.stderr
    assert (_summary(skip)["imported"], _summary(skip)["skipped"]) == (1499, 1)
