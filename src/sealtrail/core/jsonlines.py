"""JSON Lines: one JSON text per line, lines split on LF alone.

``str.splitlines()`` also splits on U+2028, U+2029, U+0085, FF, VT and the other Unicode line
boundaries, which JSON allows unescaped inside strings: an event whose text holds one would be
cut in two. Every reader of JSON Lines in sealtrail (request bodies, event files, evidence
bundles) splits here, on ``\\n`` only (a ``\\r`` before it is dropped, for CRLF files).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import AnyStr


def numbered_lines(data: AnyStr) -> Iterator[tuple[int, AnyStr]]:
    """(line number from 1, line) for each line of ``data``, split on LF only; blank lines
    are skipped (their numbers still count)."""
    newline = "\n" if isinstance(data, str) else b"\n"
    for n, raw in enumerate(data.split(newline), start=1):
        line = raw[:-1] if raw[-1:] in ("\r", b"\r") else raw
        if line.strip():
            yield n, line
