"""Blind-index rows inserted by hand: a search pointed at entries that do not match it.

A row copied from another entry (a real token, a wrong index) makes a lookup answer an entry
that is not about the value; :func:`verify_derived` names the entry.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from tests.conftest import TEST_PASSPHRASE

from sealtrail import AuditLog
from sealtrail.core.errors import TamperError
from sealtrail.log.derived import verify_derived


def test_a_row_pointing_a_token_at_another_entry_is_named(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with AuditLog.open(data, passphrase=TEST_PASSPHRASE) as log:
        log.append_many([{"action": "login", "actor": {"id": f"user-{i}", "ip": "192.0.2.1"},
                          "outcome": "success"} for i in range(5200)])
        assert log.find("actor.id", "user-7") == [7]
    with closing(sqlite3.connect(next(data.rglob("log.db")))) as con:
        (tok,) = con.execute("SELECT tok FROM blind WHERE idx = 7 EXCEPT "
                             "SELECT tok FROM blind WHERE idx = 8").fetchone()
        con.execute("INSERT INTO blind VALUES (0, ?, 9)", (tok,))
        con.commit()
    with AuditLog.open(data, passphrase=TEST_PASSPHRASE) as log:
        assert log.find("actor.id", "user-7") == [9, 7]
        with pytest.raises(TamperError) as err:
            verify_derived(log)
    assert err.value.kind == "extra"
    assert err.value.index == 9


def test_a_row_for_an_entry_past_the_log_is_named(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with AuditLog.open(data, passphrase=TEST_PASSPHRASE) as log:
        log.append({"action": "login", "actor": {"id": "u"}, "outcome": "success"})
    with closing(sqlite3.connect(next(data.rglob("log.db")))) as con:
        con.execute("INSERT INTO blind VALUES (3, 12345, 12290)")
        con.commit()
    with AuditLog.open(data, passphrase=TEST_PASSPHRASE) as log, \
            pytest.raises(TamperError) as err:
        verify_derived(log)
    assert err.value.index == 12290
