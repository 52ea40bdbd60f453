"""Regressions: a trailing newline never passes a format check (Python's ``$`` allows one).

Found by fuzzing the service: a log named ``"a\\n"`` passed the name check and ended in a 500.
Every anchored pattern now ends in ``\\Z``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from sealtrail import ConfigError, FormatError, ValidationError
from sealtrail.core.event import validate_event
from sealtrail.core.tiles import parse_tile_path
from sealtrail.core.timefmt import parse_time
from sealtrail.log.apikeys import ApiKeys
from sealtrail.log.auditlog import log_dir


@pytest.mark.parametrize(("event", "field"), [
    ({"actor": {"id": "a"}, "action": "user.login\n", "outcome": "success"}, "action"),
    ({"actor": {"id": "a", "ip": "192.0.2.1\n"}, "action": "a.b", "outcome": "success"},
     "actor.ip"),
    ({"actor": {"id": "a"}, "action": "a.b", "outcome": "success",
      "time": "2026-01-01T00:00:00Z\n"}, "time"),
])
def test_event_fields_refuse_a_trailing_newline(event: dict[str, object], field: str) -> None:
    """Validated event formats (action, IP, time) reject a value with a newline at the end."""
    with pytest.raises(ValidationError) as info:
        validate_event(event)
    assert info.value.field == field


def test_time_parsing_refuses_a_trailing_newline() -> None:
    """RFC 3339 parsing is exact."""
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_time("2026-01-01T00:00:00Z\n")


def test_log_names_and_tile_paths_refuse_a_trailing_newline(tmp_path: Path) -> None:
    """A log name or a tile index with a trailing newline is not a log or a tile."""
    with pytest.raises(ConfigError):
        log_dir(tmp_path, "a\n")
    with pytest.raises(FormatError):
        parse_tile_path("tile/0/000\n")


def test_api_tokens_refuse_a_trailing_newline(tmp_path: Path) -> None:
    """A valid token with a newline appended does not authenticate."""
    keys = ApiKeys(tmp_path)
    try:
        now = datetime.now(UTC)
        token = keys.create("reader", log=None, name="t", now=now)
        assert keys.authenticate(token, now) is not None
        assert keys.authenticate(token + "\n", now) is None
    finally:
        keys.close()
