"""Which refusals name an event of the caller's batch by position (the service answers those as
``errors[].index``) and which do not (the engine's own records: the caller sent no batch)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from sealtrail.core.errors import ValidationError
from sealtrail.core.uuid7 import make_uuid7
from sealtrail.log.auditlog import AuditLog

EVENT = {"actor": {"id": "u1"}, "action": "doc.read", "outcome": "success"}


def test_a_refusal_while_appending_names_the_event_s_position(tmp_path: Path) -> None:
    """An id dated an hour ahead in the third event is refused as ``events[2].id``, position 2."""
    ahead = str(make_uuid7(time.time_ns() // 1_000_000 + 3_600_000, os.urandom(10)))
    with AuditLog.open(tmp_path) as log:
        with pytest.raises(ValidationError) as caught:
            log.append_many([EVENT, EVENT, {**EVENT, "id": ahead}])
        assert (caught.value.field, caught.value.position) == ("events[2].id", 2)
        assert log.size == 0


def test_a_refusal_found_while_sequencing_names_the_event_s_position(tmp_path: Path) -> None:
    """A lone surrogate, found only when the event is encoded under the write lock, is refused
    with the event's position and the field that holds it; nothing is stored."""
    with AuditLog.open(tmp_path) as log:
        with pytest.raises(ValidationError) as caught:
            log.append_many([EVENT, {**EVENT, "metadata": {"k": "x\ud800"}}])
        assert (caught.value.field, caught.value.position) == ("events[1].metadata.k", 1)
        assert log.size == 0


def test_the_engine_s_own_record_refused_names_no_position(tmp_path: Path) -> None:
    """A read record too large to store (a huge search filter) is refused without a
    position: no event of the caller's is at fault."""
    with AuditLog.open(tmp_path) as log:
        with pytest.raises(ValidationError) as caught:
            log.record_access({"id": "reader-1"}, "audit.search", role="reader",
                              details={"actor": "a" * 40_000}, results=0)
        assert caught.value.position == -1
