"""The store adapters the contract suite runs against (habit 7: one suite, every adapter).

Adding an adapter is one more line in :data:`ADAPTERS`. What an adapter may answer its own way
is declared next to it, never inside a test: whether another process can reach its data
(``Store.opener``), how something else can be put where it lives (``Store.replaced``), and the
protocol docstrings it is known to break (``deviations``: each test marked
``@pytest.mark.deviation(check)`` becomes a strict xfail for those adapters, so a fix shows up
as an unexpected pass).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from sealtrail.store.memory import MemoryStore
from sealtrail.store.protocol import Store
from sealtrail.store.sqlite import SQLiteStore


@dataclass(frozen=True, slots=True)
class Adapter:
    """One kind of store, as the suite opens and judges it."""

    name: str
    make: Callable[[Path], Store]  # a new, empty store in this empty directory
    processes: bool  # another process reaches the data: opener() gives a picklable handle maker
    # Put other data where the store's location is (the store was made in this directory);
    # None when nothing can, and replaced() must then stay False.
    replace: Callable[[Path], None] | None = None
    deviations: Mapping[str, str] = field(default_factory=dict)  # check -> what it does instead


def _sqlite_replace(directory: Path) -> None:
    """An older copy of the database moved into place: another file under the same name."""
    shutil.copyfile(directory / "log.db", directory / "copy.db")
    os.replace(directory / "copy.db", directory / "log.db")


SQLITE_DEVIATIONS: Final[dict[str, str]] = {}

ADAPTERS: Final = (
    Adapter("sqlite", lambda d: SQLiteStore(d / "log.db"), True, _sqlite_replace,
            SQLITE_DEVIATIONS),
    Adapter("memory", lambda _: MemoryStore(), False),
)
