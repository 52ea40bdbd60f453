"""Audited reads done by the engine (log/reads.py, log/search.py): given a reader, the engine
function serving a read appends its ``audit_access`` record before the first result leaves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sealtrail import AuditLog
from sealtrail.log.reads import Reader, export_subject
from sealtrail.log.search import Filter, search, search_page

READER = Reader({"id": "key:0123", "type": "api_key", "name": "r"}, "reader")


@pytest.fixture
def log(tmp_path: Path) -> Iterator[AuditLog]:
    """An encrypted log of 10 events: 5 by ``u0``, 5 by ``u1``; subjects ``s0`` and ``s1``."""
    with AuditLog.open(tmp_path) as alog:
        alog.append_many([{"actor": {"id": f"u{i % 2}"}, "action": "doc.read",
                           "outcome": "success", "subjects": [f"s{i % 2}"]}
                          for i in range(10)])
        yield alog


def _last(log: AuditLog) -> dict[str, Any]:
    return log.read(log.entry(log.size - 1))


def test_a_search_is_recorded_before_its_first_result(log: AuditLog) -> None:
    """Nothing is recorded until the search runs; its first result comes with the record
    already in the log, counting every match (up to the limit) and naming the filter."""
    flt = Filter(actor="u1")
    results = search(log, flt, limit=4, reader=READER)
    assert log.size == 10
    entry, ev = next(results)
    assert ev["actor"]["id"] == "u1"
    assert log.size == 11
    record = _last(log)
    assert (record["action"], record["category"]) == ("audit.search", "audit_access")
    assert record["actor"] == dict(READER.actor)
    assert record["metadata"] == {"role": "reader", "filter": {"actor": "u1"}, "results": 4}
    assert len([entry, *results]) == 4


def test_a_search_without_a_reader_records_nothing(log: AuditLog) -> None:
    assert len(list(search(log, Filter(actor="u0"), limit=100))) == 5
    assert log.size == 10


def test_a_page_counts_what_it_returns_not_the_match_looked_for_beyond_it(
        log: AuditLog) -> None:
    """The match past ``limit`` only tells that there is a next page: it is neither returned
    nor counted in the record; the last page has no next cursor."""
    first = search_page(log, Filter(actor="u0"), limit=3, reader=READER)
    assert [e.index for e, _ in first.rows] == [8, 6, 4]
    assert first.next_cursor == 4
    assert _last(log)["metadata"]["results"] == 3
    rest = search_page(log, Filter(actor="u0"), limit=3, cursor=first.next_cursor,
                       reader=READER)
    assert [e.index for e, _ in rest.rows] == [2, 0]
    assert rest.next_cursor is None
    assert _last(log)["metadata"]["results"] == 2
    assert log.size == 12


def test_a_subject_export_is_recorded_with_the_subject_by_pseudonym(log: AuditLog) -> None:
    found = export_subject(log, "s1", reader=READER)
    assert [e.index for e, _ in found] == [1, 3, 5, 7, 9]
    record = _last(log)
    assert record["action"] == "audit.subject_export"
    assert record["metadata"] == {"role": "reader", "filter": {"subject": log.pseudonym("s1")},
                                  "results": 5}
