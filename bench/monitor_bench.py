"""Monitoring rows: ingest with 50 active rules against ingest with none, and alert latency.

- Ingest: batched appends (1000 events) to the default (encrypted) log for a fixed number of
  events, with no monitor, then with the monitor evaluating the built-in pack plus Sigma rules
  (50 in all) over every committed event, as ``sealtrail serve`` runs it: a child process
  (``sealtrail monitor``) on the same data directory. Same run, alternated.
- Latency: a producer appends at a steady 10,000 events/s in batches of 100; every 0.2 s one
  batch carries an event that a rule matches; the time from the append's return (durable) to
  the webhook receiver's arrival of the signed alert, p50/p99 over all of them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import st_bench as st
from harness import Row, percentile, temp_dir, verdict
from sealtrail.monitor.alerts import AlertStore, monitor_db_path
from sealtrail.monitor.builtin import builtin_rules
from sealtrail.monitor.rules import Rule
from sealtrail.monitor.runner import Monitor
from sealtrail.monitor.sigma import load_sigma
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


# The synthetic workload makes one event in eight a role grant and one in eight an export by a
# reader, each of which the built-in pack alerts on (privilege change; audit-trail access by a
# non-auditor), and its failed logins, spread over synthetic times, keep tripping the
# brute-force rule: an alert storm. Alerts are rare in a real trail, so the ingest and latency
# rows use the workload without those events; the storm is measured on its own (storm_row).
STORM_ACTIONS = frozenset({"role.grant", "export.run"})


def _storming(e: dict[str, Any]) -> bool:
    return e["action"] in STORM_ACTIONS or (e.get("category") == "authentication"
                                            and e["outcome"] != "success")


def quiet_events(n: int, *, subjects: bool) -> list[dict[str, Any]]:
    """``n`` workload events without those that raise alerts (see above)."""
    out: list[dict[str, Any]] = []
    seed = 0
    while len(out) < n:
        out.extend(e for e in make_events(n, seed=1000 + seed, subjects=subjects)
                   if not _storming(e))
        seed += 1
    return out[:n]


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


def _sigma_dir(directory: Path, count: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "bench.yml").write_text("\n---\n".join(
        SIGMA_TEMPLATE.format(n=n, action=_ACTIONS[n % 5], outcome=_OUTCOMES[n % 3])
        for n in range(count)))
    return directory


@contextmanager
def monitor_child(data: Path, rules_dir: Path, *extra: str) -> Iterator[subprocess.Popen[bytes]]:
    """``sealtrail monitor`` on ``data`` (what ``serve`` starts), stopped afterwards."""
    env = {**os.environ, "SEALTRAIL_PASSPHRASE": st.PASSPHRASE}
    proc = subprocess.Popen([sys.executable, "-m", "sealtrail.cli", "--data", str(data),
                             "monitor", "--rules", str(rules_dir), *extra], env=env,
                            stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # It says so on stderr once its rules are loaded and its loop runs: start the clock then.
        assert proc.stderr is not None
        line = proc.stderr.readline()
        if b"sealtrail monitor:" not in line:
            raise RuntimeError(f"the monitor did not start: {line!r}")
        # Keep draining its stderr (a full pipe would stop it); show what it complained about.
        threading.Thread(target=_drain, args=(proc.stderr,), daemon=True).start()
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def _drain(stream: IO[bytes]) -> None:
    for line in stream:
        say("monitor: " + line.decode(errors="replace").rstrip()[:200])


def _evaluated(data: Path) -> int:
    """How far the child's rule engine is (its last saved cursor; saved every few seconds)."""
    path = monitor_db_path(data)
    if not path.exists():
        return 0
    store = AlertStore(path)
    try:
        return store.cursor("default")[0]
    finally:
        store.close()


def ingest_rows(n: int, repeats: int) -> list[Row]:
    events = quiet_events(n, subjects=True)
    n_rules = len(builtin_rules())
    rates: dict[str, list[float]] = {"none": [], "rules": []}
    for _ in range(repeats):
        for mode in ("none", "rules"):
            with temp_dir("monitor") as d:
                data = d / "data"
                alog = st.DEFAULT.open(data, create=True)
                with contextlib.ExitStack() as stack:
                    if mode == "rules":
                        stack.enter_context(monitor_child(
                            data, _sigma_dir(d / "rules", 50 - n_rules)))
                    t0 = time.perf_counter()
                    for k in range(0, n, 1000):
                        alog.append_many(events[k:k + 1000])
                    elapsed = time.perf_counter() - t0
                    if mode == "rules":
                        deadline = time.monotonic() + 120
                        while _evaluated(data) < n and time.monotonic() < deadline:
                            time.sleep(0.25)
                        say(f"monitor caught up {time.perf_counter() - t0 - elapsed:.1f} s "
                            "after the last append (cursor saved every 5 s)")
                rates[mode].append(n / elapsed)
                alog.close()
    none = sorted(rates["none"])[len(rates["none"]) // 2]
    ruled = sorted(rates["rules"])[len(rates["rules"]) // 2]
    return [
        Row("sealtrail (default)", f"append_many x1000, no monitor ({n:,} events)", none),
        Row("sealtrail (default)", "the same with the monitor (child process, as serve runs "
            "it) evaluating 50 rules (built-in pack + Sigma) on every event", ruled,
            ratio=ruled / none, ratio_of="with rules / without",
            target=verdict(ruled / none >= 0.8, ">= 0.8x")),
    ]


_RECEIVER = r"""
import json, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        now = time.monotonic()
        alert = json.loads(body)
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()
        if alert.get("status") == "open":
            print(alert["key"], now, flush=True)

    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


class _Receiver:
    """A webhook receiver in a process of its own (so the producer's interpreter lock cannot
    delay it), noting on its stdout when each alert arrives (CLOCK_MONOTONIC, system-wide)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", _RECEIVER], stdout=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())
        self.arrivals: dict[str, float] = {}
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            key, _, at = line.rpartition(" ")
            self.arrivals.setdefault(key, float(at))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def latency_rows(seconds: float, rate: int = 10_000) -> list[Row]:
    receiver = _Receiver()
    base = quiet_events(rate, subjects=False)
    sent: dict[str, float] = {}
    n_rules = len(builtin_rules())
    with temp_dir("latency") as d:
        data = d / "data"
        alog = st.DEFAULT.open(data, create=True)
        rules = _sigma_dir(d / "rules", 50 - n_rules - 1)
        # One more rule, keyed by actor, that each marker event fires anew.
        (rules / "marker.yml").write_text(
            "id: bench.marker\nkind: match\nseverity: high\ntitle: Bench marker\n"
            "match: {action: bench.marker}\ngroup_by: actor.id\n")
        os.environ["SEALTRAIL_WEBHOOK_SECRET"] = "bench-secret"
        with monitor_child(data, rules, "--alert-webhook", receiver.url):
            batch = 100
            interval = batch / rate
            t_next = time.perf_counter()
            end = t_next + seconds
            k = marker = 0
            while time.perf_counter() < end:
                chunk = [dict(e) for e in base[(k * batch) % rate:(k * batch) % rate + batch]]
                mark: str | None = None
                if k % 20 == 0:
                    mark = f"bench-marker-{marker}"
                    marker += 1
                    chunk[-1] = {"action": "bench.marker", "actor": {"id": mark},
                                 "outcome": "success", "category": "admin"}
                alog.append_many(chunk)
                if mark is not None:
                    sent[mark] = time.monotonic()
                k += 1
                t_next += interval
                pause = t_next - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
            offered = k * batch / seconds
            deadline = time.monotonic() + 30
            while not set(sent) <= set(receiver.arrivals) and time.monotonic() < deadline:
                time.sleep(0.05)
        alog.close()
    receiver.close()
    lat = [(receiver.arrivals[m] - t) * 1e6 for m, t in sent.items() if m in receiver.arrivals]
    missing = len(sent) - len(lat)
    if missing:
        say(f"not delivered: {sorted(set(sent) - set(receiver.arrivals))}")
    p50 = percentile(lat, 0.5) if lat else None
    p99 = percentile(lat, 0.99) if lat else None
    return [Row("sealtrail (default)", f"alert latency, commit -> signed webhook, at "
                f"{offered:,.0f} events/s ({len(lat)} alerts"
                + (f", {missing} missing" if missing else "") + "; 50 rules, child process)",
                None, p50, p99,
                target=verdict(p99 is not None and p99 < 1e6 and not missing, "p99 < 1 s"))]


def storm_row(n: int) -> Row:
    """The monitor alone over the full workload, where 25 % of events raise an alert."""
    with temp_dir("storm") as d:
        alog = st.DEFAULT.open(d, create=True)
        events = make_events(n, subjects=False)
        for k in range(0, n, 1000):
            alog.append_many(events[k:k + 1000])
        store = AlertStore(monitor_db_path(d))
        monitor = Monitor(d, lambda: [("default", alog)], fifty_rules(), store,
                          clock=lambda: datetime.now(UTC))
        monitor._in_loop = True  # the loop's own path (caches), without its sleeps
        t0 = time.perf_counter()
        while monitor.step():
            pass
        rate = n / (time.perf_counter() - t0)
        alerts = len(store.list(None, limit=1_000_000))
        store.close()
        alog.close()
    return Row("sealtrail (default)", f"monitor alone, 50 rules, alert storm: {n:,} events of "
               f"which 25 % raise a detection ({alerts:,} alerts opened)", rate)


def run_monitor(quick: bool) -> list[Row]:
    """The monitoring rows (smaller with ``quick``)."""
    say("ingest with and without 50 rules")
    rows = ingest_rows(20_000 if quick else 100_000, 1 if quick else 3)
    say("alert latency at 10k events/s")
    rows.extend(latency_rows(5.0 if quick else 20.0))
    say("alert storm")
    rows.append(storm_row(20_000 if quick else 50_000))
    return rows


if __name__ == "__main__":
    from harness import text_table

    print(text_table(run_monitor("--quick" in sys.argv)))
