"""Measurement plumbing: repeats, percentiles, temp dirs, the result table."""

from __future__ import annotations

import contextlib
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPEATS = 3


def percentile(samples: list[float], q: float) -> float:
    """The ``q``-quantile (0..1) by nearest rank; samples need not be sorted."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    k = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return ordered[k]


@contextlib.contextmanager
def temp_dir(tag: str) -> Iterator[Path]:
    """A fresh directory under /tmp, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=f"sealtrail-bench-{tag}-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@dataclass
class Rate:
    """Events per second over repeats (median), with per-operation latencies if recorded."""

    rates: list[float]
    latencies_s: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.rates)

    @property
    def p50_us(self) -> float | None:
        return percentile(self.latencies_s, 0.50) * 1e6 if self.latencies_s else None

    @property
    def p99_us(self) -> float | None:
        return percentile(self.latencies_s, 0.99) * 1e6 if self.latencies_s else None


Once = Callable[[], tuple[int, float, list[float]]]
"""One repeat of a measurement: returns (events, seconds, per-operation latencies)."""


def interleaved(runs: dict[str, Once], repeats: int = REPEATS,
                progress: Callable[[str], None] | None = None) -> dict[str, Rate]:
    """Run the measurements round-robin (a, b, c, a, b, c, ...) so that a noisy neighbour or a
    busy disk affects all of them alike, and the ratios between them stay fair."""
    rates: dict[str, list[float]] = {name: [] for name in runs}
    lats: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(repeats):
        for name, once in runs.items():
            if progress is not None:
                progress(f"round {r + 1}/{repeats}: {name}")
            n, secs, lat = once()
            rates[name].append(n / secs)
            lats[name].extend(lat)
    return {name: Rate(rates[name], lats[name]) for name in runs}


def repeat_rate(run_once: Once, repeats: int = REPEATS) -> Rate:
    """Call ``run_once`` -> (events, seconds, latencies) ``repeats`` times."""
    rates: list[float] = []
    lats: list[float] = []
    for _ in range(repeats):
        n, secs, lat = run_once()
        rates.append(n / secs)
        lats.extend(lat)
    return Rate(rates, lats)


def timed_calls(fn: Callable[[int], object], args: list[int]) -> list[float]:
    """Seconds taken by ``fn(a)`` for each ``a``."""
    out: list[float] = []
    clock = time.perf_counter
    for a in args:
        t0 = clock()
        fn(a)
        out.append(clock() - t0)
    return out


@dataclass
class Row:
    """One line of the result table."""

    system: str
    measurement: str
    rate: float | None = None          # events/s (median of repeats)
    p50_us: float | None = None
    p99_us: float | None = None
    value: str = ""                    # a non-rate figure (µs per proof, bytes, MB)
    ratio: float | None = None
    ratio_of: str = ""                 # what the ratio divides
    target: str = ""                   # e.g. "≥ 3x — met"


HEADERS = ["system", "measurement", "events/s", "p50 µs", "p99 µs", "value", "ratio",
           "ratio is", "target"]


def _num(x: float | None, digits: int = 0) -> str:
    if x is None:
        return ""
    if digits == 0:
        return f"{x:,.0f}"
    return f"{x:,.{digits}f}"


def _ratio(x: float | None) -> str:
    if x is None:
        return ""
    return f"{x:.2f}x" if x < 10 else f"{x:.1f}x"


def cells(row: Row) -> list[str]:
    return [row.system, row.measurement, _num(row.rate), _num(row.p50_us), _num(row.p99_us),
            row.value, _ratio(row.ratio), row.ratio_of, row.target]


def text_table(rows: list[Row]) -> str:
    """A plain, aligned table for the terminal."""
    grid = [HEADERS, *[cells(r) for r in rows]]
    widths = [max(len(line[i]) for line in grid) for i in range(len(HEADERS))]
    right = {2, 3, 4, 5, 6}
    lines = []
    for n, line in enumerate(grid):
        parts = [c.rjust(w) if i in right else c.ljust(w)
                 for i, (c, w) in enumerate(zip(line, widths, strict=True))]
        lines.append("  ".join(parts).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: list[Row]) -> str:
    """The same table in GitHub Markdown."""
    def esc(c: str) -> str:
        return c.replace("|", "\\|")

    out = ["| # | " + " | ".join(HEADERS) + " |",
           "|---|" + "|".join("---:" if i in {2, 3, 4, 5, 6} else "---"
                              for i in range(len(HEADERS))) + "|"]
    for n, r in enumerate(rows, 1):
        out.append(f"| {n} | " + " | ".join(esc(c) for c in cells(r)) + " |")
    return "\n".join(out)


def verdict(ok: bool, text: str) -> str:
    """A target cell: the target and whether this run met it."""
    return f"{text}: {'met' if ok else 'NOT met'}"
