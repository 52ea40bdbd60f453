"""C2SP tlog-tiles paths: which tile a URL names (https://c2sp.org/tlog-tiles).

A tile at level ``L``, index ``N`` holds the hashes of tree level ``8·L``, nodes
``256·N .. 256·N + W - 1`` (``W`` = 256 for a full tile, ``.p/W`` for a partial one at the
right edge). An entry bundle ``tile/entries/N`` holds entries ``256·N ..`` as big-endian
uint16 length prefixes followed by the entry bytes. ``N`` is written in groups of three
digits, every group but the last prefixed with ``x``: 1234067 is ``x001/x234/067``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from sealtrail.core.errors import FormatError

TILE_WIDTH: Final = 256
TILE_HEIGHT: Final = 8
_PART = re.compile(r"^x\d{3}\Z")
_LAST = re.compile(r"^\d{3}\Z")


@dataclass(frozen=True, slots=True)
class TileRef:
    """One tile: ``level`` is None for an entry bundle; ``width`` is 1..256."""

    level: int | None
    index: int
    width: int

    def format(self) -> str:
        """The path below the log's prefix (``tile/0/x001/234.p/7``)."""
        head = "entries" if self.level is None else str(self.level)
        digits = f"{self.index:03d}"
        digits = "0" * (-len(digits) % 3) + digits
        groups = [digits[i:i + 3] for i in range(0, len(digits), 3)]
        path = "/".join([*(f"x{g}" for g in groups[:-1]), groups[-1]])
        suffix = "" if self.width == TILE_WIDTH else f".p/{self.width}"
        return f"tile/{head}/{path}{suffix}"


def parse_tile_path(path: str) -> TileRef:
    """Parse ``tile/<L>/<N>[.p/<W>]`` or ``tile/entries/<N>[.p/<W>]``; FormatError if not."""
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "tile":
        raise FormatError("not a tile path")
    head, rest = parts[1], parts[2:]
    width = TILE_WIDTH
    if len(rest) >= 2 and rest[-2].endswith(".p"):
        if not rest[-1].isdigit() or rest[-1].startswith("0"):
            raise FormatError("partial tile width must be 1..255")
        width = int(rest[-1])
        rest = [*rest[:-2], rest[-2][:-2]]
        if not 1 <= width < TILE_WIDTH:
            raise FormatError("partial tile width must be 1..255")
    if not rest or not _LAST.match(rest[-1]) or not all(_PART.match(p) for p in rest[:-1]):
        raise FormatError("tile index must be groups of three digits (x001/234)")
    index = int("".join(p.lstrip("x") for p in rest))
    if head == "entries":
        return TileRef(None, index, width)
    if not head.isdigit() or len(head) > 2 or int(head) > 63:
        raise FormatError("tile level must be 0..63")
    return TileRef(int(head), index, width)
