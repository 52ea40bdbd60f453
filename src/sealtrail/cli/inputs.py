"""Reading what a command is given to store or check: JSON Lines events, other systems' logs.

Both readers bound what they hold in memory before reading it whole: an event line longer than
an event may be is refused at that line, a log file larger than ``import`` takes is refused.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from sealtrail.cli.common import fail
from sealtrail.core.errors import ValidationError
from sealtrail.core.event import MAX_EVENT_BYTES, Event, parse_event
from sealtrail.core.sources import claims_import
from sealtrail.core.sources.base import input_text
from sealtrail.log.auditlog import MAX_BATCH

#: The largest input ``import`` reads (after gunzip): it is held in memory while checked.
MAX_INPUT_BYTES = 256 << 20  # records in memory take several times their text: split larger files


def _lines(source: BinaryIO) -> Iterator[bytes]:
    """Lines of at most one event's size: a longer line is refused before it is read whole."""
    limit = MAX_EVENT_BYTES + 2
    while line := source.readline(limit + 1):
        yield line


def _read_events(source: BinaryIO) -> list[Event]:
    events: list[Event] = []
    for lineno, line in enumerate(_lines(source), start=1):
        if not line.strip():
            continue
        if len(line) > MAX_EVENT_BYTES + 2:
            raise ValidationError("event", f"larger than {MAX_EVENT_BYTES} bytes", line=lineno)
        if len(events) >= MAX_BATCH:
            raise ValidationError("input", f"more than {MAX_BATCH} events: split the file "
                                  "(each append is one atomic commit)", line=lineno)
        try:
            event = parse_event(line.rstrip(b"\r\n"))
            claim = claims_import(event.metadata)
            if claim is not None:
                raise claim
            events.append(event)
        except ValidationError as exc:
            raise exc.at_line(lineno) from exc
    return events


def events_from(file: Path | None) -> list[Event]:
    """Events of a JSON Lines file, or of standard input for None or ``-``."""
    if file is None or str(file) == "-":
        return _read_events(sys.stdin.buffer)
    try:
        with file.open("rb") as fh:
            return _read_events(fh)
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}")


def read_input(file: Path, what: str = "FILE", limit: int = MAX_INPUT_BYTES) -> str:
    """The text of a file (``-``: standard input), gunzipped if gzip, as UTF-8."""
    try:
        if str(file) == "-":
            data = sys.stdin.buffer.read(limit + 1)
        else:
            with file.open("rb") as fh:
                data = fh.read(limit + 1)
    except OSError as exc:
        fail(f"{what}: cannot read {file}: {exc.strerror}")
    if len(data) > limit:
        raise ValidationError(what, f"larger than {limit} bytes")
    return input_text(data, limit, what)
