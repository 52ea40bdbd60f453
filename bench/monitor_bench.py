"""Monitoring rows: ingest with 50 active rules against ingest with none, and alert latency.

- Ingest: batched appends (1000 events) to the default (encrypted) log for a fixed number of
  events, with no monitor, then with the monitor evaluating the built-in pack plus Sigma rules
  (50 in all) over every committed event, in the mode the service uses. Same run, alternated.
- Latency: a producer appends at a steady 10,000 events/s in batches of 100; every 0.2 s one
  batch carries an event that a rule matches; the time from the append's return (durable) to
  the webhook receiver's arrival of the signed alert, p50/p99 over all of them.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import st_bench as st
from harness import Row, percentile, temp_dir, verdict
from sealtrail import AuditLog
from sealtrail.monitor.alerts import AlertStore, monitor_db_path
from sealtrail.monitor.builtin import builtin_rules
from sealtrail.monitor.dispatch import Dispatcher
from sealtrail.monitor.rules import Rule, parse_rule
from sealtrail.monitor.runner import Monitor
from sealtrail.monitor.sigma import load_sigma
from sealtrail.monitor.sinks import build_sinks
from workload import make_events

SIGMA_TEMPLATE = """
title: bench rule {n}
id: 00000000-0000-4000-8000-{n:012d}
logsource:
  product: sealtrail
detection:
  selection:
    action|startswith: '{action}.'
    actor.id|endswith: '-svc-{n}'
    outcome: {outcome}
  condition: selection
level: low
"""
_ACTIONS = ["document", "user", "role", "settings", "export"]
_OUTCOMES = ["failure", "denied", "error"]


def say(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def fifty_rules() -> list[Rule]:
    """The built-in pack plus enough Sigma rules to make 50 (rules that rarely match, as most
    rules in a real deployment)."""
    rules = builtin_rules()
    text = "\n---\n".join(SIGMA_TEMPLATE.format(n=n, action=_ACTIONS[n % 5],
                                                outcome=_OUTCOMES[n % 3])
                          for n in range(50 - len(rules)))
    rules.extend(load_sigma(text))
    return rules[:50]


def _monitor(data: Path, alog: AuditLog, rules: list[Rule],
             dispatcher: Dispatcher | None = None) -> Monitor:
    store = AlertStore(monitor_db_path(data))
    return Monitor(data, lambda: [("default", alog)], rules, store, dispatcher=dispatcher,
                   clock=lambda: datetime.now(UTC))


def ingest_rows(n: int, repeats: int) -> list[Row]:
    events = make_events(n, subjects=True)
    rules = fifty_rules()
    rates: dict[str, list[float]] = {"none": [], "rules": []}
    for _ in range(repeats):
        for mode in ("none", "rules"):
            with temp_dir("monitor") as d:
                alog = st.DEFAULT.open(d, create=True)
                monitor = _monitor(d, alog, rules) if mode == "rules" else None
                if monitor is not None:
                    monitor.start()
                t0 = time.perf_counter()
                for k in range(0, n, 1000):
                    alog.append_many(events[k:k + 1000])
                elapsed = time.perf_counter() - t0
                if monitor is not None:
                    deadline = time.monotonic() + 120
                    while monitor.stats.processed.get("default", 0) < n and \
                            time.monotonic() < deadline:
                        time.sleep(0.05)
                    caught_up = time.perf_counter() - t0
                    monitor.stop()
                    monitor.store.close()
                    say(f"monitor caught up {caught_up - elapsed:.1f} s after the last append")
                rates[mode].append(n / elapsed)
                alog.close()
    none = sorted(rates["none"])[len(rates["none"]) // 2]
    ruled = sorted(rates["rules"])[len(rates["rules"]) // 2]
    return [
        Row("sealtrail (default)", f"append_many x1000, no monitor ({n:,} events)", none),
        Row("sealtrail (default)", f"the same with the monitor running {len(rules)} rules "
            "(built-in pack + Sigma) on every event", ruled, ratio=ruled / none,
            ratio_of="with rules / without", target=verdict(ruled / none >= 0.8, ">= 0.8x")),
    ]


class _Receiver:
    """A webhook receiver that notes when each alert arrives."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                alert = json.loads(body)
                if alert.get("status") == "open":
                    receiver.arrivals.setdefault(alert["key"], time.perf_counter())
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def latency_rows(seconds: float, rate: int = 10_000) -> list[Row]:
    # 49 of the 50 rules, plus one keyed by actor that each marker event fires anew.
    rules = [*fifty_rules()[:49], parse_rule({
        "id": "bench.marker", "kind": "match", "severity": "high", "title": "Bench marker",
        "match": {"action": "bench.marker"}, "group_by": "actor.id"})]
    receiver = _Receiver()
    base = make_events(rate, subjects=False)
    sent: dict[str, float] = {}
    with temp_dir("latency") as d:
        alog = st.DEFAULT.open(d, create=True)
        dispatcher = Dispatcher(build_sinks([{"type": "webhook", "url": receiver.url,
                                              "secret": "bench-secret"}]),
                                d / "_monitor" / "outbox.db")
        monitor = _monitor(d, alog, rules, dispatcher)
        monitor.start()
        batch = 100
        interval = batch / rate
        t_next = time.perf_counter()
        end = t_next + seconds
        k = 0
        marker = 0
        behind = 0
        while time.perf_counter() < end:
            chunk = [dict(e) for e in base[(k * batch) % rate:(k * batch) % rate + batch]]
            mark: str | None = None
            if k % 20 == 0:
                mark = f"bench-export-{marker}"
                marker += 1
                chunk[-1] = {"action": "bench.marker", "actor": {"id": mark},
                             "outcome": "success", "category": "admin"}
            alog.append_many(chunk)
            if mark is not None:
                sent[mark] = time.perf_counter()
            k += 1
            t_next += interval
            pause = t_next - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            else:
                behind += 1
        produced = k * batch / seconds
        deadline = time.monotonic() + 30
        while len(receiver.arrivals) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.05)
        monitor.stop()
        dispatcher.close(5)
        monitor.store.close()
        alog.close()
    receiver.close()
    lat = [(receiver.arrivals[m] - t) * 1e6 for m, t in sent.items() if m in receiver.arrivals]
    missing = len(sent) - len(lat)
    p50, p99 = percentile(lat, 50), percentile(lat, 99)
    return [Row("sealtrail (default)", f"alert latency, commit -> signed webhook, at "
                f"{produced:,.0f} events/s offered ({len(lat)} alerts"
                + (f", {missing} missing" if missing else "") + ")", None, p50, p99,
                target=verdict(p99 < 1e6 and not missing, "p99 < 1 s"))]


def run_monitor(quick: bool) -> list[Row]:
    """The monitoring rows (smaller with ``quick``)."""
    say("ingest with and without 50 rules")
    rows = ingest_rows(20_000 if quick else 100_000, 1 if quick else 3)
    say("alert latency at 10k events/s")
    rows.extend(latency_rows(5.0 if quick else 20.0))
    return rows


if __name__ == "__main__":
    from harness import text_table

    print(text_table(run_monitor("--quick" in sys.argv)))
