"""The monitor's configuration: every bad setting is refused with the field named."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from sealtrail.core.errors import ConfigError
from sealtrail.monitor.config import build_config, load_config


def test_defaults_are_the_builtin_pack_and_no_sinks() -> None:
    cfg = build_config()
    assert any(r.id == "builtin.brute_force" for r in cfg.rules)
    assert cfg.sinks == []
    assert cfg.settings.dedup_window == timedelta(hours=1)


@pytest.mark.parametrize(("doc", "field"), [
    ({"rulez": []}, "monitor.rulez"),
    ({"builtin": "yes"}, "monitor.builtin"),
    ({"rules": "rules"}, "monitor.rules"),
    ({"rules": ["no-such-dir"]}, "monitor.rules"),
    ({"sinks": {"type": "webhook"}}, "monitor.sinks"),
    ({"dedup_window": "soon"}, "monitor.dedup_window"),
    ({"suppress": [{"key": "x"}]}, "monitor.suppress[0].rule"),
    ({"suppress": [{"rule": "r", "until": "tomorrow"}]}, "monitor.suppress[0].until"),
    ({"suppress": [{"rule": "r", "color": "red"}]}, "monitor.suppress[0].color"),
    ({"disk_min_free": {"ratio": 2}}, "monitor.disk_min_free.ratio"),
    ({"disk_min_free": {"bytes": -1}}, "monitor.disk_min_free.bytes"),
    ({"lag_alert_entries": 0}, "monitor.lag_alert_entries"),
])
def test_bad_settings_name_the_field(doc: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_config(doc)
    assert str(err.value).startswith(field), str(err.value)


def test_a_file_with_rules_suppression_and_overrides(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yml").write_text(
        "id: local.admin_delete\nkind: match\nseverity: high\ntitle: Admin delete\n"
        "match: {action: admin.delete}\n")
    path = tmp_path / "monitor.yml"
    path.write_text("rules: [rules]\nbuiltin: {builtin.clock_skew: false}\n"
                    "dedup_window: 30m\nsuppress:\n"
                    "  - {rule: builtin.brute_force, key: scanner, reason: pentest}\n")
    cfg = load_config(path)
    ids = {r.id: r for r in cfg.rules}
    assert "local.admin_delete" in ids
    assert not ids["builtin.clock_skew"].enabled
    assert cfg.settings.dedup_window == timedelta(minutes=30)
    assert cfg.settings.suppress[0].key == "scanner"
    bad = tmp_path / "bad.yml"
    bad.write_text("sinks: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


@pytest.mark.parametrize(("sinks", "field"), [
    (["webhook"], "monitor.sinks[0]"),
    ([{"type": "webhook", "url": "ftp://x", "secret": "s"}], "monitor.sinks[0].url"),
    ([{"type": "webhook", "url": "https://hooks.example.com/x"}], "monitor.sinks[0].secret"),
])
def test_bad_sinks_stop_the_start(sinks: list[object], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_config({"sinks": sinks})
    assert str(err.value).startswith(field), str(err.value)
