"""Safe output: event content never controls the terminal or forges a line.

Strings from events may hold CR, LF, ANSI escapes, bidi overrides: they are data. Table cells
escape every control, format and line-separator character; JSON output escapes them by JSON's
rules (``ensure_ascii`` keeps U+2028/2029 and bidi characters escaped too).
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str) -> str:
    """``text`` with control/format/separator characters shown as escapes."""
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs"):
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def dumps(obj: Any, *, indent: int | None = None) -> str:
    """JSON for output: one line unless ``indent``, every non-ASCII character escaped."""
    separators = None if indent else (",", ":")
    return json.dumps(obj, ensure_ascii=True, indent=indent, separators=separators)
