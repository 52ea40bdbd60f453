"""A rules directory with several bad files names every one of them, native and Sigma alike,
and none of its rules is used."""

from __future__ import annotations

from pathlib import Path

import pytest

from sealtrail.monitor.engine import load_rules
from sealtrail.monitor.rules import RulesError

GOOD_NATIVE = """kind: match
id: good.native
title: Good
severity: low
match: {action: "user.login"}
"""
BAD_NATIVE = """kind: match
id: bad.native
title: Bad
severity: apocalyptic
match: {action: "user.login"}
"""
BAD_SIGMA = """title: Windows only
id: 0c8f7a52-0d43-4c1f-9d1e-2f6b0c9a4e11
logsource: {product: windows, category: process_creation}
detection:
  selection: {Image|endswith: '\\\\cmd.exe'}
  condition: selection
"""


def test_every_bad_file_is_named_and_nothing_loads(tmp_path: Path) -> None:
    (tmp_path / "a_good.yml").write_text(GOOD_NATIVE)
    (tmp_path / "b_bad_native.yml").write_text(BAD_NATIVE)
    (tmp_path / "c_broken.yaml").write_text("kind: match\n  id: [unclosed\n")
    (tmp_path / "d_neither.yml").write_text("hello: world\n")
    (tmp_path / "e_windows.yml").write_text(BAD_SIGMA)
    with pytest.raises(RulesError) as info:
        load_rules(tmp_path)
    text = str(info.value)
    assert len(info.value.errors) == 4
    for name in ("b_bad_native.yml", "c_broken.yaml", "d_neither.yml", "e_windows.yml"):
        assert name in text, name
    assert "a_good.yml" not in text
    assert info.value.summary.startswith("4 rules refused")
    assert text.count("\n") == 4  # the summary, then one line per refused rule


def test_one_bad_rule_is_its_own_error(tmp_path: Path) -> None:
    (tmp_path / "a_good.yml").write_text(GOOD_NATIVE)
    (tmp_path / "b_bad_native.yml").write_text(BAD_NATIVE)
    with pytest.raises(Exception, match="severity") as info:
        load_rules(tmp_path)
    assert not isinstance(info.value, RulesError)
