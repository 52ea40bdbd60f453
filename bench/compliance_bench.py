"""Compliance rows: evidence bundles (export and offline verification) and retention at scale.

Alternatives, on the same events:

- bundles: a plain export an auditor is usually handed — the events as JSON Lines in a zip,
  with nothing to check them against — and reading that zip back (parsing every line);
- retention: what a plain audit table does, ``DELETE FROM events WHERE received_at < ?`` on a
  SQLite table of the same rows (WAL, synchronous=FULL), which keeps no proof of anything.

Bundle rows use the default (encrypted) log; the retention row a plain log built in a child
process (as the main suite's big log), then purged by a per-category policy with the log's
clock moved a year ahead (every data_access and data_change entry is past its maximum).
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
import zipfile
from datetime import UTC, datetime, timedelta

import st_bench as st
from harness import Row, temp_dir, verdict
from sealtrail import AuditLog
from sealtrail.compliance.bundle import export_bundle, verify_bundle_file
from sealtrail.log.retention import RetentionPolicy, apply_purge, plan_purge
from sealtrail.log.search import Filter
from workload import iter_batches, make_events

AUDITOR = {"id": "bench-auditor"}


def say(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def _best(samples: list[float]) -> float:
    return sorted(samples)[len(samples) // 2]


def bundle_rows(n: int, repeats: int = 3) -> list[Row]:
    """Export and verify an n-event bundle (median of ``repeats``), against plain zips."""
    rows: list[Row] = []
    with temp_dir("bundle") as d:
        log = st.DEFAULT.open(d / "log", create=True)
        for batch in iter_batches(n, 1000, subjects=True):
            log.append_many(batch)
        exp, ver, plain_exp, plain_read = [], [], [], []
        size_bytes = 0
        plain_bytes = 0
        vkey = log.vkey()
        for r in range(repeats):
            path = d / f"b{r}.zip"
            t0 = time.perf_counter()
            summary = export_bundle(log, path, flt=Filter(), actor=AUDITOR, opened=True)
            exp.append(summary.events / (time.perf_counter() - t0))
            size_bytes = summary.bytes
            t0 = time.perf_counter()
            report = verify_bundle_file(path, vkey)
            ver.append(report.events / (time.perf_counter() - t0))
            path.unlink()
            # The alternative: the same events, opened, as JSON Lines in a zip.
            plain = d / f"p{r}.zip"
            t0 = time.perf_counter()
            count = 0
            with zipfile.ZipFile(plain, "w", compression=zipfile.ZIP_DEFLATED,
                                 compresslevel=6) as z, z.open("events.jsonl", "w") as out:
                for entry in log.entries(0, n):
                    out.write(json.dumps(log.read(entry)).encode() + b"\n")
                    count += 1
            plain_exp.append(count / (time.perf_counter() - t0))
            plain_bytes = plain.stat().st_size
            t0 = time.perf_counter()
            with zipfile.ZipFile(plain) as z:
                got = sum(1 for line in z.read("events.jsonl").splitlines() if json.loads(line))
            plain_read.append(got / (time.perf_counter() - t0))
            plain.unlink()
        log.close()
    e, v, pe, pr = _best(exp), _best(ver), _best(plain_exp), _best(plain_read)
    rows.append(Row("sealtrail (default)", f"export --bundle, {n:,} events (proof per event, "
                    "signed statement)", e, value=f"{size_bytes / n:,.0f} B/event",
                    ratio=e / pe, ratio_of="sealtrail / plain zip"))
    rows.append(Row("plain export", f"the same {n:,} events opened, JSON Lines in a zip "
                    "(nothing to verify)", pe, value=f"{plain_bytes / n:,.0f} B/event"))
    rows.append(Row("sealtrail (default)", f"verify-bundle offline, {n:,} events", v,
                    ratio=v / pr, ratio_of="sealtrail / reading the plain zip"))
    rows.append(Row("plain export", "reading that zip back (json.loads per line)", pr))
    return rows


def retention_rows(n: int) -> list[Row]:
    """Purge on an n-entry plain log vs DELETE on a plain SQLite table of the same rows."""
    rows: list[Row] = []
    policy = RetentionPolicy.parse({"name": "bench", "default": {"min": "30d"},
                                    "data_access": {"max": "90d"},
                                    "data_change": {"max": "90d"}})
    with temp_dir("retention") as d:
        say(f"building a {n:,}-entry log for retention")
        st.build_in_child(d / "log", n)
        later = datetime.now(UTC) + timedelta(days=365)
        log = AuditLog.open(d / "log", clock=lambda: later)
        t0 = time.perf_counter()
        plan = plan_purge(log, policy)
        t_plan = time.perf_counter() - t0
        t0 = time.perf_counter()
        _, receipt = apply_purge(log, policy, actor=AUDITOR, plan=plan)
        t_apply = time.perf_counter() - t0
        assert receipt is not None
        t0 = time.perf_counter()
        report = log.verify(workers=2)
        t_verify = time.perf_counter() - t0
        log.close()
        purged = plan.count
        # The alternative: a plain table of the same events, one row each, DELETE by age.
        db = sqlite3.connect(d / "plain.db", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("CREATE TABLE events(id INTEGER PRIMARY KEY, category TEXT, "
                   "received_at TEXT, body TEXT)")
        db.execute("CREATE INDEX events_age ON events(category, received_at)")
        old = "2025-01-01T00:00:00Z"
        db.execute("BEGIN")
        for k, ev in enumerate(make_events(n)):
            db.execute("INSERT INTO events VALUES (?, ?, ?, ?)",
                       (k, ev.get("category"), old, json.dumps(ev)))
        db.execute("COMMIT")
        t0 = time.perf_counter()
        db.execute("BEGIN")
        cur = db.execute("DELETE FROM events WHERE category IN ('data_access', 'data_change') "
                         "AND received_at < ?", ("2026-01-01T00:00:00Z",))
        deleted = cur.rowcount
        db.execute("COMMIT")
        t_delete = time.perf_counter() - t0
        db.close()
    total = t_plan + t_apply
    rate = purged / total
    alt = deleted / t_delete
    rows.append(Row("sealtrail (plain)", f"retention apply on {n:,} entries: plan "
                    f"{t_plan:.1f} s + purge {t_apply:.1f} s of {purged:,} entries "
                    f"(receipt, leaf hashes kept)", rate, value=f"{total:.1f} s",
                    ratio=rate / alt, ratio_of="sealtrail / SQL DELETE",
                    target=verdict(total < 120, "1M in < 2 min")))
    rows.append(Row("sqlite3", f"DELETE ... WHERE category IN (...) AND received_at < ? "
                    f"({deleted:,} rows, indexed; no proof kept)", alt,
                    value=f"{t_delete:.1f} s"))
    rows.append(Row("sealtrail (plain)", f"verify after the purge ({n:,} entries, "
                    f"{report.retired:,} retired: their leaf hashes checked)",
                    n / t_verify, value=f"{t_verify:.1f} s"))
    return rows


def run_compliance(quick: bool) -> list[Row]:
    """The compliance rows (smaller with ``quick``)."""
    say("evidence bundles")
    rows = bundle_rows(10_000 if quick else 100_000, repeats=1 if quick else 3)
    say("retention")
    rows.extend(retention_rows(100_000 if quick else 1_000_000))
    return rows


if __name__ == "__main__":
    from harness import text_table

    print(text_table(run_compliance("--quick" in sys.argv)))
