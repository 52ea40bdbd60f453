"""JSON Lines split on LF only: every Unicode line boundary stays inside its JSON text, at each
reader — the bundle verifier, the service's NDJSON bodies, ``rules test`` event files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.clirun import sealtrail

from sealtrail.core.jsonlines import numbered_lines

# Every character str.splitlines() treats as a line boundary, besides LF and CR.
SEPARATORS = ["\u2028", "\u2029", "\u0085", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e"]


@pytest.mark.parametrize("sep", SEPARATORS)
def test_numbered_lines_keeps_every_separator_inside_its_line(sep: str) -> None:
    docs = [{"a": f"x{sep}y"}, {"b": sep}]
    text = "\n".join(json.dumps(d, ensure_ascii=False) for d in docs) + "\r\n\n"
    assert [json.loads(line) for _, line in numbered_lines(text)] == docs
    assert [json.loads(line) for _, line in numbered_lines(text.encode())] == docs
    assert [n for n, _ in numbered_lines(text)] == [1, 2]


@pytest.mark.parametrize("sep", SEPARATORS)
def test_rules_test_reads_events_with_separators(tmp_path: Path, sep: str) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps({"actor": {"id": f"a{sep}b"}, "action": "user.login",
                                  "outcome": "failure", "category": "authentication"},
                                 ensure_ascii=False) + "\n", encoding="utf-8")
    res = sealtrail("rules", "test", "--builtin", "--events", events, text=True)
    assert "not JSON" not in res.stdout + res.stderr
    assert res.returncode in (0, 1), res.stderr
