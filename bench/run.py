"""sealtrail benchmark suite: sealtrail and its alternatives on the same events, one table.

Run ``./scripts/bench [--quick] [--out docs/benchmarks.md]``. Rates are the median of
``harness.REPEATS`` repeats; latency percentiles pool every call of every repeat. Progress goes
to stderr, the table to stdout (and, with ``--out``, a Markdown file).

Rows 1-22 are the suite as it was before logs were encrypted by default: sealtrail's rows there
measure logs created with ``encryption=False, redaction="off"`` ("sealtrail (plain)"), so they
stay comparable with earlier runs. Rows 23 on measure the default configuration (encrypted,
redaction ``mask``; "sealtrail (default)") on the same events, ~30 % of them naming a data
subject, and the personal-data features: blind-index search, erasure.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
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
from compliance_bench import run_compliance
from harness import (
    REPEATS,
    Rate,
    Row,
    interleaved,
    markdown_table,
    percentile,
    temp_dir,
    text_table,
    verdict,
)
from http_bench import run_http
from monitor_bench import run_monitor
from workload import SEED, SUBJECT_SHARE, SUBJECTS, json_lines, make_events, with_subjects

BATCH = 1000
THREADS = 64
PLAIN = "sealtrail (plain)"
DEFAULT = "sealtrail (default)"


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
    searches: int        # actor ids (and IPs) looked up in the big encrypted log
    scans: int           # of them, also searched by scanning the big plain log
    erasures: int        # subjects erased from the big encrypted log
    opens: int           # single entries read and opened at random indexes


FULL = Sizes(events=50_000, single=1000, per_thread=100, big=1_000_000, small=100_000,
             proof_samples=300, django_rows=500, pymerkle_big=1_000_000, searches=50, scans=3,
             erasures=5, opens=1000)
QUICK = Sizes(events=10_000, single=200, per_thread=20, big=100_000, small=10_000,
              proof_samples=100, django_rows=200, pymerkle_big=100_000, searches=20, scans=3,
              erasures=5, opens=500)


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def human(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def micros(rate: float) -> float:
    """Microseconds per event at ``rate`` events/s."""
    return 1e6 / rate


def run(sz: Sizes) -> list[Row]:
    rows: list[Row] = []
    big = human(sz.big)

    # -- the big logs, built in child processes (their peak RSS is a measurement) ------------
    with temp_dir("big") as big_dir:
        say(f"sealtrail (plain): building a {big}-entry log in a child process "
            f"(append_many x{BATCH})")
        built_big = st.build_in_child(big_dir, sz.big, BATCH, st.PLAIN)
        say(f"  {built_big.rate:,.0f} events/s, peak RSS {built_big.peak_rss_mb:.0f} MB")
        with temp_dir("small") as small_dir:
            say(f"sealtrail (plain): {human(sz.small)} events in a child process (RSS)")
            built_small = st.build_in_child(small_dir, sz.small, BATCH, st.PLAIN)
        say(f"sealtrail (plain): proofs at {big}")
        incl, cons = st.proof_times(big_dir, sz.proof_samples)
        on_disk = st.disk_bytes(big_dir)

        with temp_dir("big-enc") as enc_dir:
            say(f"sealtrail (default): building an encrypted {big}-entry log in a child process")
            built_enc = st.build_in_child(enc_dir, sz.big, BATCH, st.DEFAULT)
            say(f"  {built_enc.rate:,.0f} events/s, peak RSS {built_enc.peak_rss_mb:.0f} MB")
            enc_disk = st.disk_bytes(enc_dir)
            say(f"sealtrail: verify the plain and the encrypted {big} logs (the latter without "
                f"its key), round-robin, {REPEATS} rounds")
            verified = interleaved({"plain": st.verify_once(big_dir, st.PLAIN),
                                    "default": st.verify_once(enc_dir, st.DEFAULT)}, REPEATS)
            verify, verify_enc = verified["plain"], verified["default"]
            sample = st.sample_values(enc_dir, sz.searches, sz.erasures)
            say(f"sealtrail (default): find actor.id / actor.ip, {sz.searches} values each")
            by_id = st.blind_search(enc_dir, "actor.id", sample.actor_ids)
            by_ip = st.blind_search(enc_dir, "actor.ip", sample.actor_ips)
            opens = st.open_random(enc_dir, sz.opens, st.DEFAULT)
            say(f"sealtrail (plain): scan search for {sz.scans} actor ids on {big}")
            scan = st.scan_search(big_dir, sample.actor_ids[:sz.scans])
            if scan.hits != by_id.hits[:sz.scans]:
                raise RuntimeError(f"scan found {scan.hits}, the blind index "
                                   f"{by_id.hits[:sz.scans]}")
            say(f"sealtrail (default): erase {sz.erasures} subjects")
            erased = st.erase(enc_dir, sample.subjects)

    # -- throughput on the shared events ---------------------------------------------------
    say(f"generating {sz.events:,} events (seed {SEED})")
    events = make_events(sz.events)
    enc_events = with_subjects(events)
    lines = json_lines(events)
    raw_avg = sum(map(len, lines)) / len(lines)
    say(f"  average raw JSON {raw_avg:.0f} bytes")

    with temp_dir("django") as ddir:
        say("django-auditlog: setup + migrate")
        dj = alt.Django(ddir)
        runs = {
            "sealtrail batched": st.batched(events, BATCH, st.PLAIN),
            "default batched": st.batched(enc_events, BATCH, st.DEFAULT),
            "encrypted batched, no subjects": st.batched(events, BATCH, st.DEFAULT),
            "plain+mask batched": st.batched(events, BATCH, st.PLAIN_MASK),
            "sealtrail single": st.single(events, sz.single, st.PLAIN),
            "default single": st.single(enc_events, sz.single, st.DEFAULT),
            "raw fsync": st.raw_fsync(sz.single),
            "sqlite commit": st.sqlite_commit(sz.single),
            "sealtrail threads": st.threaded(events, THREADS, sz.per_thread, st.PLAIN),
            "default threads": st.threaded(enc_events, THREADS, sz.per_thread, st.DEFAULT),
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
    rows.append(Row(PLAIN, f"append_many, batches of {BATCH}, durable", b,
                    batched.p50_us, batched.p99_us, value="latency per batch"))
    rows.append(Row(PLAIN, "append, one event per call, durable", s1, single.p50_us,
                    single.p99_us))
    rows.append(Row("disk", "raw write 500 B + os.fsync loop", fsync.median, fsync.p50_us,
                    fsync.p99_us, ratio=s1 / fsync.median,
                    ratio_of="sealtrail append ÷ this",
                    target=verdict(s1 >= 0.8 * fsync.median, "≥ 0.8x")))
    rows.append(Row("sqlite3", "WAL, synchronous=FULL, 1 row of 500 B per commit", floor.median,
                    floor.p50_us, floor.p99_us, ratio=s1 / floor.median,
                    ratio_of="sealtrail append ÷ this"))
    rows.append(Row(PLAIN, f"{THREADS} threads, single appends (group commit)",
                    threads.median, threads.p50_us, threads.p99_us,
                    ratio=threads.median / s1, ratio_of="this ÷ sealtrail append (1 thread)",
                    target=verdict(threads.median >= 20 * s1, "≥ 20x")))
    rows.append(Row(PLAIN, f"verify, {big}-entry log", verify.median,
                    target=verdict(verify.median >= 300_000, "≥ 300k/s")))
    rows.append(Row(PLAIN, f"inclusion proof at {big} (median)", None, incl.median_us,
                    incl.p99_us, value=f"{incl.median_us:,.0f} µs",
                    target=verdict(incl.median_us < 1000, "< 1 ms")))
    rows.append(Row(PLAIN, f"consistency proof at {big} (median)", None, cons.median_us,
                    cons.p99_us, value=f"{cons.median_us:,.0f} µs",
                    target=verdict(cons.median_us < 1000, "< 1 ms")))
    per_event = on_disk / built_big.events
    raw_big = built_big.raw_json_bytes / built_big.events
    rows.append(Row(PLAIN, f"bytes on disk per event ({big} log, after checkpoint)",
                    value=f"{per_event:,.0f} B (raw JSON {raw_big:,.0f} B)",
                    ratio=per_event / raw_big, ratio_of="disk ÷ raw JSON",
                    target=verdict(per_event <= 1.5 * raw_big, "≤ 1.5x")))
    rows.append(Row(PLAIN, f"peak RSS, process appending {human(sz.small)}",
                    built_small.rate, value=f"{built_small.peak_rss_mb:,.0f} MB"))
    flat = built_big.peak_rss_mb <= 1.25 * built_small.peak_rss_mb + 10
    rows.append(Row(PLAIN, f"peak RSS, process appending {big}", built_big.rate,
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

    rows.extend(personal_rows(sz, res, built_big, built_enc, on_disk, enc_disk, verify,
                              verify_enc, (by_id, by_ip, scan, opens, erased)))
    return rows


def personal_rows(sz: Sizes, res: dict[str, Rate], built_big: st.BuildResult,
                  built_enc: st.BuildResult, on_disk: int, enc_disk: int, verify: Rate,
                  verify_enc: Rate,
                  found: tuple[st.Lookups, st.Lookups, st.Lookups, list[float], st.Lookups]
                  ) -> list[Row]:
    """Rows 23 on: the default configuration (encrypted, redaction mask) and its features."""
    big = human(sz.big)
    by_id, by_ip, scan, opens, erased = found
    plain_b, plain_1, plain_t = (res["sealtrail batched"], res["sealtrail single"],
                                 res["sealtrail threads"])
    enc_b, nosub_b, mask_b = (res["default batched"], res["encrypted batched, no subjects"],
                              res["plain+mask batched"])
    enc_1, enc_t = res["default single"], res["default threads"]
    pb = plain_b.median
    rows: list[Row] = []

    def cost(rate: Rate) -> str:
        return f"{micros(rate.median) - micros(pb):+,.0f} µs/event vs plain"

    rows.append(Row(DEFAULT, f"append_many, batches of {BATCH}, durable (encrypted, "
                    f"redaction mask, {SUBJECT_SHARE:.0%} with subjects)", enc_b.median,
                    enc_b.p50_us, enc_b.p99_us, value=cost(enc_b), ratio=enc_b.median / pb,
                    ratio_of="this ÷ sealtrail (plain) batched",
                    target=verdict(enc_b.median >= 0.7 * pb, "≥ 0.7x")))
    rows.append(Row("sealtrail (encrypted)", "the same, no subjects (the plain rows' events)",
                    nosub_b.median, nosub_b.p50_us, nosub_b.p99_us, value=cost(nosub_b),
                    ratio=nosub_b.median / pb, ratio_of="this ÷ sealtrail (plain) batched"))
    rows.append(Row("sealtrail (plain, mask)", "the same, not encrypted, redaction mask",
                    mask_b.median, mask_b.p50_us, mask_b.p99_us, value=cost(mask_b),
                    ratio=mask_b.median / pb, ratio_of="this ÷ sealtrail (plain) batched"))
    rows.append(Row(DEFAULT, "append, one event per call, durable", enc_1.median, enc_1.p50_us,
                    enc_1.p99_us,
                    value=f"{micros(enc_1.median) - micros(plain_1.median):+,.0f} µs/event",
                    ratio=enc_1.median / plain_1.median,
                    ratio_of="this ÷ sealtrail (plain) append"))
    rows.append(Row(DEFAULT, f"{THREADS} threads, single appends (group commit)",
                    enc_t.median, enc_t.p50_us, enc_t.p99_us,
                    ratio=enc_t.median / plain_t.median,
                    ratio_of=f"this ÷ sealtrail (plain) {THREADS} threads"))
    for field, look in (("actor.id", by_id), ("actor.ip", by_ip)):
        rows.append(Row(DEFAULT, f"find({field!r}, limit=100) + read and open the hits, "
                        f"{big} log (median of {len(look.seconds)} values)", None,
                        look.p50_us, look.p99_us,
                        value=f"{look.median_ms:,.1f} ms ({look.mean_hits:.1f} hits on average)",
                        target=verdict(look.median_ms < 50, "< 50 ms")))
    rows.append(Row(PLAIN, f"no index: log.search(Filter(actor=...), limit=100), {big} log "
                    f"(median of {len(scan.seconds)})", None, scan.p50_us, scan.p99_us,
                    value=f"{scan.median_ms:,.0f} ms ({scan.mean_hits:.1f} hits)",
                    ratio=scan.median_ms / by_id.median_ms,
                    ratio_of="this ÷ find actor.id (time)"))
    rows.append(Row(DEFAULT, f"read + open one entry at a random index, {big} log", None,
                    percentile(opens, 0.5) * 1e6, percentile(opens, 0.99) * 1e6,
                    value=f"{percentile(opens, 0.5) * 1e6:,.0f} µs"))
    rows.append(Row(DEFAULT, f"erase_subject, one of {SUBJECTS // 1000}k subjects, {big} log "
                    f"(median of {len(erased.seconds)})", None, erased.p50_us, erased.p99_us,
                    value=f"{erased.median_ms:,.0f} ms ({erased.mean_hits:.0f} events each)",
                    target=verdict(erased.median_ms < 1000, "< 1 s")))
    rows.append(Row(DEFAULT, f"verify, {big}-entry encrypted log (no key)", verify_enc.median,
                    ratio=verify_enc.median / verify.median,
                    ratio_of="this ÷ sealtrail (plain) verify"))
    per_plain = on_disk / built_big.events
    per_enc = enc_disk / built_enc.events
    raw_enc = built_enc.raw_json_bytes / built_enc.events
    rows.append(Row(DEFAULT, f"bytes on disk per event ({big} log, after checkpoint)",
                    value=f"{per_enc:,.0f} B (raw JSON {raw_enc:,.0f} B, plain {per_plain:,.0f} B)",
                    ratio=per_enc / per_plain, ratio_of="this ÷ sealtrail (plain)"))
    rows.append(Row(DEFAULT, f"peak RSS, process appending {big}", built_enc.rate,
                    value=f"{built_enc.peak_rss_mb:,.0f} MB",
                    ratio=built_enc.peak_rss_mb / built_big.peak_rss_mb,
                    ratio_of="this ÷ sealtrail (plain)"))
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


def src_digest() -> str:
    """A digest of sealtrail's source files, to tell whether they changed during the run."""
    h = hashlib.sha256()
    src = Path(__file__).resolve().parent.parent / "src"
    for path in sorted(src.rglob("*.py")):
        h.update(str(path.relative_to(src)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def command(argv: list[str]) -> str:
    return os.environ.get("SEALTRAIL_BENCH_CMD") or shlex.join(["python", "bench/run.py", *argv])


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="smaller sizes (under 3 minutes)")
    p.add_argument("--out", type=Path, help="also write the table as Markdown to this file")
    p.add_argument("--only", choices=["core", "http", "compliance", "monitor"], action="append",
                   help="run only these sections (repeatable) [default: all]")
    args = p.parse_args(args_list)
    sections = set(args.only or ["core", "http", "compliance", "monitor"])
    sz = QUICK if args.quick else FULL
    started = datetime.now(UTC)
    rev, digest = revision(), src_digest()
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    rows = run(sz) if "core" in sections else []
    if "http" in sections:
        say("the HTTP service and the SDK (bench/http_bench.py)")
        rows.extend(run_http(args.quick))
    if "compliance" in sections:
        say("evidence bundles and retention (bench/compliance_bench.py)")
        rows.extend(run_compliance(args.quick))
    if "monitor" in sections:
        say("rules and alerts (bench/monitor_bench.py)")
        rows.extend(run_monitor(args.quick))
    elapsed = time.perf_counter() - t0
    load = (f"load average (1 min) {load_before:.2f} at the start, "
            f"{os.getloadavg()[0]:.2f} at the end")
    print(text_table(rows))
    changed = ""
    rev_end, digest_end = revision(), src_digest()
    if digest_end != digest:
        changed = (f" NOTE: sealtrail's source changed during the run (at the end: {rev_end}, "
                   f"src digest {digest_end}): the rows may mix versions.")
        say(changed.strip())
    print(f"\n{'quick' if args.quick else 'full'} run, {elapsed:.0f} s; {machine()}; {load}; "
          f"sealtrail at {rev} (src digest {digest}) at the start.{changed}")
    if args.out:
        header = "\n".join([
            f"Run {started:%Y-%m-%d %H:%M} UTC, {'quick' if args.quick else 'full'} suite, "
            f"{elapsed:.0f} s.",
            "",
            f"- machine: {machine()}",
            f"- command: `{command(args_list)}` (sealtrail at `{rev}`, src digest `{digest}`, "
            f"at the start)"
            f"{changed}",
            f"- {load} (2 CPUs: anything above ~0.5 means other work shared the machine)",
            f"- workload: {sz.events:,} events per throughput repeat (seed {SEED}), "
            f"median of 3 repeats; big log {sz.big:,} entries",
            f"- rows 1-22: sealtrail logs created with `encryption=False, redaction=\"off\"` "
            f"(\"plain\"), as in runs before encryption became the default; rows 23 on: the "
            f"default (encrypted, redaction `mask`), on the same events with `subjects: "
            f"[\"patient-<k>\"]` (one of {SUBJECTS:,}) added to {SUBJECT_SHARE:.0%} of them, "
            f"except where a row says otherwise; their search, erasure, verify, bytes and RSS "
            f"rows use a second big log, built like the first but encrypted; rows 36 on: the "
            f"HTTP service (a child process, encrypted default log, events without subjects) "
            f"and the SDK, from bench/http_bench.py",
            "",
        ])
        write_out(args.out, header + "\n" + markdown_table(rows) + "\n")
        say(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
