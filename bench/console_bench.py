"""The web console, measured: proofs checked in the browser, the event page, the overview.

Run: ``.venv/bin/python bench/console_bench.py [--entries N] [--samples K] [--out FILE]``
(needs Debian's ``chromium``; ``scripts/test`` installs it as root).

Rows, each with its alternative where there is one:

- **one inclusion proof checked** (signed checkpoint opened with the pinned key, leaf hashed,
  RFC 9162 path walked): ``static/tlog.js`` in Chromium with WebCrypto, against the same
  check in Python (``InclusionProof.verify_signed``, the ``sealtrail verify-proof`` path), on
  the same proofs of the same N-entry log. Timed inside each runtime (no HTTP).
- **event page, navigation to verified**: what a reviewer waits for, end to end (page, four
  API calls, the checks); no alternative (no other console checks proofs at all).
- **overview API**: ``GET /v1/logs/{log}/overview`` on an N-entry log whose entries all fall in
  the last 24 hours (the worst case: the whole window is counted): the first answer (reads
  the window back) and a refresh after a new entry (counts only what is new); against a
  search of the newest 100 events (the explorer's first page) on the same service.

Medians (p50) and p99 of K samples. The log is the default one (encrypted), N events of the
benchmark workload.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from harness import percentile
from sealtrail import AuditLog
from sealtrail.core.note import Verifier
from sealtrail.core.proofs import InclusionProof
from sealtrail.log.apikeys import ApiKeys
from sealtrail.log.users import Users
from sealtrail.server.app import ServiceConfig, create_app
from workload import iter_batches

PASSWORD = "bench console password"


def say(msg: str) -> None:
    print(f"[console-bench] {msg}", file=sys.stderr, flush=True)


@contextmanager
def serving(config: ServiceConfig) -> Iterator[str]:
    """The service on loopback in a thread (as tests/server/conftest.py runs it)."""
    server = uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1", port=0,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(20)


def ms(samples: list[float]) -> tuple[float, float]:
    """(p50, p99) in milliseconds of samples in seconds."""
    return statistics.median(samples) * 1000, percentile(samples, 0.99) * 1000


def python_checks(proofs: list[dict[str, Any]], vkey: str) -> list[float]:
    """The offline check in Python, once per proof (seconds each)."""
    verifier = Verifier.parse(vkey)
    out = []
    for item in proofs:
        text = json.dumps(item["proof"])
        leaf = base64.b64decode(item["leaf"])
        t0 = time.perf_counter()
        InclusionProof.parse(text).verify_signed(verifier, leaf)
        out.append(time.perf_counter() - t0)
    return out


BROWSER_CHECKS = """async ([items, vkey]) => {
  const t = await import('/ui/static/tlog.js');
  const out = [];
  for (const item of items) {
    const t0 = performance.now();
    const key = await t.parseVkey(vkey);
    const cp = await t.openCheckpoint(item.proof.checkpoint, key);
    const leaf = await t.leafHash(t.b64decode(item.leaf));
    const path = item.proof.audit_path.map((h) => t.b64decode(h));
    await t.verifyInclusion(item.proof.leaf_index, cp.size, leaf, path, cp.root);
    out.push((performance.now() - t0) / 1000);
  }
  return out;
}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("console_bench: no chromium (apt install chromium)")
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - after the check

    os.environ.setdefault("SEALTRAIL_KEK", base64.b64encode(os.urandom(32)).decode())
    root = Path(tempfile.mkdtemp(prefix="st-console-bench-"))
    try:
        data = root / "data"
        t0 = time.perf_counter()
        with AuditLog.open(data, "default") as alog:
            for batch in iter_batches(args.entries, 1000):
                alog.append_many(batch)
            vkey = alog.vkey()
            rng = random.Random(7)
            indexes = [rng.randrange(alog.size) for _ in range(args.samples)]
            entries = {e.index: e.leaf for i in indexes for e in alog.entries(i, i + 1)}
            proofs = [{"leaf": base64.b64encode(entries[i]).decode(),
                       "proof": alog.prove_inclusion(i).to_json()} for i in indexes]
        say(f"built {args.entries} entries in {time.perf_counter() - t0:.1f} s")
        users = Users(data)
        users.create("bench", "auditor", PASSWORD, datetime.now(UTC))
        users.close()
        keys = ApiKeys(data)
        token = keys.create("auditor", log=None, name="bench", now=datetime.now(UTC))
        keys.close()
        auth = {"Authorization": f"Bearer {token}"}
        config = ServiceConfig(data, verify_interval=0, retention_interval=0, monitor=None)
        rows: list[tuple[str, str, str, str]] = []
        with serving(config) as url, sync_playwright() as p:
            # The overview's first answer, before any page asked for it (it reads back
            # through the window once).
            t1 = time.perf_counter()
            first = httpx.get(f"{url}/v1/logs/default/overview", headers=auth, timeout=300)
            first_s = time.perf_counter() - t1
            first.raise_for_status()
            scanned = first.json()["activity"]["scanned"]
            browser = p.chromium.launch(executable_path=chromium, headless=True)
            page = browser.new_page()
            page.goto(f"{url}/ui/")
            page.fill("input[name=username]", "bench")
            page.fill("input[name=password]", PASSWORD)
            page.click("[type=submit]")
            page.wait_for_load_state("load")
            # 1. the check itself, browser vs Python (warm both first)
            page.evaluate(BROWSER_CHECKS, [proofs[:5], vkey])
            python_checks(proofs[:5], vkey)
            js = page.evaluate(BROWSER_CHECKS, [proofs, vkey])
            py = python_checks(proofs, vkey)
            (j50, j99), (p50, p99) = ms(js), ms(py)
            rows.append(("one inclusion proof + signed checkpoint checked",
                         f"{j50:.2f} ms (p99 {j99:.2f})", f"{p50:.2f} ms (p99 {p99:.2f})",
                         f"{j50 / p50:.2f}x"))
            # 2. the event page, navigation to verified
            nav = []
            for i in indexes[: min(len(indexes), 60)]:
                t1 = time.perf_counter()
                page.goto(f"{url}/ui/logs/default/events/{i}")
                page.wait_for_selector("[data-proof-status=verified], "
                                       "[data-proof-status=failed]", timeout=30000)
                nav.append(time.perf_counter() - t1)
                status = page.get_attribute("[data-proof-status]", "data-proof-status")
                if status != "verified":
                    sys.exit(f"console_bench: event {i} did not verify: {status}")
            n50, n99 = ms(nav)
            rows.append(("event page: navigation to data-proof-status=verified",
                         f"{n50:.0f} ms (p99 {n99:.0f})", "—", "—"))
            browser.close()
            # 3. the overview's refresh, against the explorer's first page
            with httpx.Client(base_url=url, timeout=120, headers=auth) as client:
                refresh, search = [], []
                with AuditLog.open(data, "default", create=False) as alog:
                    for _ in range(min(args.samples, 50)):
                        alog.append_many([{"actor": {"id": "bench"}, "action": "bench.tick",
                                           "outcome": "success"}] * 10)
                        t1 = time.perf_counter()
                        client.get("/v1/logs/default/overview").raise_for_status()
                        refresh.append(time.perf_counter() - t1)
                        t1 = time.perf_counter()
                        client.get("/v1/logs/default/events",
                                   params={"limit": 100}).raise_for_status()
                        search.append(time.perf_counter() - t1)
            (r50, r99), (s50, s99) = ms(refresh), ms(search)
            rows.append((f"overview API, first answer ({scanned} entries counted)",
                         f"{first_s * 1000:.0f} ms", "—", "—"))
            rows.append(("overview API, refresh after 10 new entries",
                         f"{r50:.1f} ms (p99 {r99:.1f})",
                         f"search, newest 100: {s50:.1f} ms (p99 {s99:.1f})",
                         f"{r50 / s50:.2f}x"))
        lines = [f"Console benchmark: {args.entries} entries, {args.samples} samples "
                 f"(python {sys.version.split()[0]}, {os.cpu_count()} cores)", "",
                 "| measurement | sealtrail | alternative | ratio |", "|---|---:|---:|---:|"]
        lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
        text = "\n".join(lines) + "\n"
        print(text)
        if args.out is not None:
            args.out.write_text(text)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
