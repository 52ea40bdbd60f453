"""sealtrail benchmark suite: sealtrail and its alternatives on the same events, one table.

Run ``./scripts/bench [--quick] [--out docs/benchmarks.md]``. Rates are the median of
``harness.REPEATS`` repeats; latency percentiles pool every call of every repeat. Progress goes
to stderr, the table to stdout (and, with ``--out``, a Markdown file).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import shlex
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import alternatives as alt
import st_bench as st
from harness import REPEATS, Row, interleaved, markdown_table, temp_dir, text_table, verdict
from workload import SEED, json_lines, make_events

BATCH = 1000
THREADS = 64


@dataclass(frozen=True)
class Sizes:
    """How much work each measurement does."""

    events: int          # events per throughput repeat
    single: int          # sequential single appends (and fsyncs, per-row creates) per repeat
    per_thread: int      # single appends per thread, 64 threads
    big: int             # log size for verify, proofs, bytes on disk, the large RSS run
    small: int           # the small RSS run
    proof_samples: int   # proofs per round (3 rounds)
    django_rows: int     # per-row LogEntry.objects.create calls per repeat
    pymerkle_big: int    # tree size for pymerkle's proofs


FULL = Sizes(events=50_000, single=1000, per_thread=100, big=1_000_000, small=100_000,
             proof_samples=300, django_rows=500, pymerkle_big=1_000_000)
QUICK = Sizes(events=10_000, single=200, per_thread=20, big=100_000, small=10_000,
              proof_samples=100, django_rows=200, pymerkle_big=100_000)


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def human(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def run(sz: Sizes) -> list[Row]:
    rows: list[Row] = []
    big = human(sz.big)

    # -- the big log, built in a child process (its peak RSS is a measurement) ---------------
    with temp_dir("big") as big_dir:
        say(f"sealtrail: building a {big}-entry log in a child process (append_many x{BATCH})")
        built_big = st.build_in_child(big_dir, sz.big, BATCH)
        say(f"  {built_big.rate:,.0f} events/s, peak RSS {built_big.peak_rss_mb:.0f} MB")
        with temp_dir("small") as small_dir:
            say(f"sealtrail: {human(sz.small)} events in a child process (RSS)")
            built_small = st.build_in_child(small_dir, sz.small, BATCH)
        say(f"sealtrail: verify x3 on {big}")
        verify = st.verify(big_dir)
        say(f"sealtrail: proofs at {big}")
        incl, cons = st.proof_times(big_dir, sz.proof_samples)
        on_disk = st.disk_bytes(big_dir)

    # -- throughput on the shared events ---------------------------------------------------
    say(f"generating {sz.events:,} events (seed {SEED})")
    events = make_events(sz.events)
    lines = json_lines(events)
    raw_avg = sum(map(len, lines)) / len(lines)
    say(f"  average raw JSON {raw_avg:.0f} bytes")

    with temp_dir("django") as ddir:
        say("django-auditlog: setup + migrate")
        dj = alt.Django(ddir)
        runs = {
            "sealtrail batched": st.batched(events, BATCH),
            "sealtrail single": st.single(events, sz.single),
            "raw fsync": st.raw_fsync(sz.single),
            "sqlite commit": st.sqlite_commit(sz.single),
            "sealtrail threads": st.threaded(events, THREADS, sz.per_thread),
            "logging": alt.logging_json(events),
            "hash chain": alt.logging_hash_chain(events),
            "django create": dj.per_row(events, sz.django_rows),
            "django bulk": dj.bulk(events, BATCH),
            "pymerkle memory": alt.pymerkle_inmemory(lines),
            "pymerkle sqlite single": alt.pymerkle_sqlite_single(lines, sz.single),
            "pymerkle sqlite bulk": alt.pymerkle_sqlite_bulk(lines, BATCH),
        }
        say(f"throughput: {len(runs)} measurements, round-robin, {REPEATS} rounds")
        res = interleaved(runs, REPEATS, say)
    batched, single, fsync, floor, threads = (
        res["sealtrail batched"], res["sealtrail single"], res["raw fsync"],
        res["sqlite commit"], res["sealtrail threads"])

    b = batched.median
    s1 = single.median
    rows.append(Row("sealtrail", f"append_many, batches of {BATCH}, durable", b,
                    batched.p50_us, batched.p99_us, value="latency per batch"))
    rows.append(Row("sealtrail", "append, one event per call, durable", s1, single.p50_us,
                    single.p99_us))
    rows.append(Row("disk", "raw write 500 B + os.fsync loop", fsync.median, fsync.p50_us,
                    fsync.p99_us, ratio=s1 / fsync.median,
                    ratio_of="sealtrail append ÷ this",
                    target=verdict(s1 >= 0.8 * fsync.median, "≥ 0.8x")))
    rows.append(Row("sqlite3", "WAL, synchronous=FULL, 1 row of 500 B per commit", floor.median,
                    floor.p50_us, floor.p99_us, ratio=s1 / floor.median,
                    ratio_of="sealtrail append ÷ this"))
    rows.append(Row("sealtrail", f"{THREADS} threads, single appends (group commit)",
                    threads.median, threads.p50_us, threads.p99_us,
                    ratio=threads.median / s1, ratio_of="this ÷ sealtrail append (1 thread)",
                    target=verdict(threads.median >= 20 * s1, "≥ 20x")))
    rows.append(Row("sealtrail", f"verify, {big}-entry log", verify.median,
                    target=verdict(verify.median >= 300_000, "≥ 300k/s")))
    rows.append(Row("sealtrail", f"inclusion proof at {big} (median)", None, incl.median_us,
                    incl.p99_us, value=f"{incl.median_us:,.0f} µs",
                    target=verdict(incl.median_us < 1000, "< 1 ms")))
    rows.append(Row("sealtrail", f"consistency proof at {big} (median)", None, cons.median_us,
                    cons.p99_us, value=f"{cons.median_us:,.0f} µs",
                    target=verdict(cons.median_us < 1000, "< 1 ms")))
    per_event = on_disk / built_big.events
    raw_big = built_big.raw_json_bytes / built_big.events
    rows.append(Row("sealtrail", f"bytes on disk per event ({big} log, after checkpoint)",
                    value=f"{per_event:,.0f} B (raw JSON {raw_big:,.0f} B)",
                    ratio=per_event / raw_big, ratio_of="disk ÷ raw JSON",
                    target=verdict(per_event <= 1.5 * raw_big, "≤ 1.5x")))
    rows.append(Row("sealtrail", f"peak RSS, process appending {human(sz.small)}",
                    built_small.rate, value=f"{built_small.peak_rss_mb:,.0f} MB"))
    flat = built_big.peak_rss_mb <= 1.25 * built_small.peak_rss_mb + 10
    rows.append(Row("sealtrail", f"peak RSS, process appending {big}", built_big.rate,
                    value=f"{built_big.peak_rss_mb:,.0f} MB",
                    ratio=built_big.peak_rss_mb / built_small.peak_rss_mb,
                    ratio_of=f"this ÷ {human(sz.small)} RSS",
                    target=verdict(flat and built_big.peak_rss_mb < 200, "flat, < 200 MB")))

    # -- alternatives ------------------------------------------------------------------------
    naive, chain, dj_row, dj_bulk = (res["logging"], res["hash chain"], res["django create"],
                                     res["django bulk"])
    pm_mem, pm_one, pm_bulk = (res["pymerkle memory"], res["pymerkle sqlite single"],
                               res["pymerkle sqlite bulk"])
    rows.append(Row("stdlib logging", "FileHandler, json.dumps per line (naive baseline)",
                    naive.median, ratio=b / naive.median,
                    ratio_of="sealtrail batched ÷ this",
                    target=verdict(b >= 3 * naive.median, "≥ 3x (aim 5x)")))
    rows.append(Row("stdlib logging", "the same + SHA-256 hash chain", chain.median,
                    ratio=b / chain.median, ratio_of="sealtrail batched ÷ this"))

    rows.append(Row("django-auditlog", "LogEntry.objects.create per event (SQLite)",
                    dj_row.median, dj_row.p50_us, dj_row.p99_us,
                    ratio=s1 / dj_row.median, ratio_of="sealtrail append ÷ this"))
    rows.append(Row("django-auditlog", f"LogEntry bulk_create, batches of {BATCH}",
                    dj_bulk.median, ratio=b / dj_bulk.median,
                    ratio_of="sealtrail batched ÷ this"))
    rows.append(Row("pymerkle 7", "InmemoryTree.append_entry (not durable)", pm_mem.median,
                    ratio=b / pm_mem.median, ratio_of="sealtrail batched ÷ this"))
    rows.append(Row("pymerkle 7", "SqliteTree.append_entry per event", pm_one.median,
                    pm_one.p50_us, pm_one.p99_us, ratio=s1 / pm_one.median,
                    ratio_of="sealtrail append ÷ this"))
    rows.append(Row("pymerkle 7", f"SqliteTree.append_entries, batches of {BATCH}",
                    pm_bulk.median, ratio=b / pm_bulk.median,
                    ratio_of="sealtrail batched ÷ this"))
    del events, lines
    gc.collect()

    pbig = human(sz.pymerkle_big)
    note = "" if sz.pymerkle_big == sz.big else f" (sealtrail's at {big})"
    for label, fn in (("InmemoryTree", alt.pymerkle_inmemory_proofs),
                      ("SqliteTree", alt.pymerkle_sqlite_proofs)):
        say(f"pymerkle {label}: build {pbig} + proofs")
        pp = fn(sz.pymerkle_big, sz.proof_samples)
        say(f"  built in {pp.build_s:.1f} s")
        rows.append(Row("pymerkle 7", f"{label} inclusion proof at {pbig}{note}", None,
                        pp.incl_median_us, pp.incl_p99_us,
                        value=f"{pp.incl_median_us:,.0f} µs",
                        ratio=pp.incl_median_us / incl.median_us,
                        ratio_of="this ÷ sealtrail (time)"))
        rows.append(Row("pymerkle 7", f"{label} consistency proof at {pbig}{note}", None,
                        pp.cons_median_us, pp.cons_p99_us,
                        value=f"{pp.cons_median_us:,.0f} µs",
                        ratio=pp.cons_median_us / cons.median_us,
                        ratio_of="this ÷ sealtrail (time)"))
        del pp
        gc.collect()
    return rows


def machine() -> str:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    nproc = len(os.sched_getaffinity(0))
    return (f"nproc {nproc}{', ' + cpu if cpu else ''}, {mem:.0f} GiB RAM, "
            f"{platform.system()} {platform.release()}, "
            f"Python {platform.python_version()} ({platform.python_implementation()}), "
            f"SQLite {sqlite3.sqlite_version}")


BEGIN = "<!-- bench:begin (written by ./scripts/bench --out; edit outside the markers) -->"
END = "<!-- bench:end -->"


def write_out(path: Path, results: str) -> None:
    """Write the results; in a file that has the markers, replace only what is between them."""
    block = f"{BEGIN}\n{results}{END}\n"
    if path.exists():
        text = path.read_text()
        if BEGIN in text and END in text:
            head, rest = text.split(BEGIN, 1)
            tail = rest.split(END, 1)[1].lstrip("\n")
            path.write_text(head + block + ("\n" + tail if tail else ""))
            return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# Benchmarks\n\n{block}")


def revision() -> str:
    """The commit measured, ``-dirty`` when the working tree has changes."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], check=True,
                             capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent.parent)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


def command(argv: list[str]) -> str:
    return os.environ.get("SEALTRAIL_BENCH_CMD") or shlex.join(["python", "bench/run.py", *argv])


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="smaller sizes (under 2 minutes)")
    p.add_argument("--out", type=Path, help="also write the table as Markdown to this file")
    args = p.parse_args(args_list)
    sz = QUICK if args.quick else FULL
    started = datetime.now(UTC)
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    rows = run(sz)
    elapsed = time.perf_counter() - t0
    load = (f"load average (1 min) {load_before:.2f} at the start, "
            f"{os.getloadavg()[0]:.2f} at the end")
    print(text_table(rows))
    print(f"\n{'quick' if args.quick else 'full'} run, {elapsed:.0f} s; {machine()}; {load}")
    if args.out:
        header = "\n".join([
            f"Run {started:%Y-%m-%d %H:%M} UTC, {'quick' if args.quick else 'full'} suite, "
            f"{elapsed:.0f} s.",
            "",
            f"- machine: {machine()}",
            f"- command: `{command(args_list)}` (sealtrail at `{revision()}`)",
            f"- {load} (2 CPUs: anything above ~0.5 means other work shared the machine)",
            f"- workload: {sz.events:,} events per throughput repeat (seed {SEED}), "
            f"median of 3 repeats; big log {sz.big:,} entries",
            "",
        ])
        write_out(args.out, header + "\n" + markdown_table(rows) + "\n")
        say(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
