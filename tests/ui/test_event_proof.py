"""The event page checks its entry's inclusion proof in the browser, against the pinned key.

A real service with data, a real sign-in, headless Chromium. The page must say ``verified``
for an honest server, and ``failed`` with the right reason when the proof, the checkpoint or the
leaf is altered in flight (Playwright route interception), when the checkpoint is signed by
another key than the pinned one, and when a server rolls its log back to an older copy behind a
browser that saw a newer checkpoint.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from sealtrail.core import note
from sealtrail.core.merkle.hashing import leaf_hash
from sealtrail.log.auditlog import AuditLog
from tests.ports import free_port
from tests.ui.conftest import (
    USERS,
    Console,
    make_console_data,
    sample_events,
    sign_in,
    watch_errors,
)
from tests.ui.proof_fixtures import serve_console

pytestmark = pytest.mark.browser

INDEX = 3
SETTLED = '#proof-status:not([data-proof-status="checking"])'


def _event_url(base_url: str, index: int = INDEX, log: str = "default") -> str:
    return f"{base_url}/ui/logs/{log}/events/{index}"


def _settle(page: Any) -> tuple[str, str | None]:
    """Wait for the check to end; (status, reason)."""
    node = page.wait_for_selector(SETTLED, timeout=30_000)
    return node.get_attribute("data-proof-status"), node.get_attribute("data-proof-reason")


def _open(page: Any, base_url: str, index: int = INDEX) -> tuple[str, str | None]:
    page.goto(_event_url(base_url, index))
    return _settle(page)


def _leaf(data_dir: Path, index: int = INDEX) -> bytes:
    with AuditLog.open(data_dir, "default", create=False) as alog:
        return next(iter(alog.entries(index, index + 1))).leaf


def _vkey(data_dir: Path) -> str:
    with AuditLog.open(data_dir, "default", create=False) as alog:
        return alog.vkey()


@pytest.fixture
def auditor_page(signed_in_page: Callable[[str], Any]) -> Any:
    """A page signed in as the auditor (a role that reads events and opens sealed fields)."""
    return signed_in_page("auditor")


def test_event_page_verifies_and_shows_the_verified_leaf(
        auditor_page: Any, console: Console, screenshot_dir: Path) -> None:
    """An honest server: verified; the page names the pinned key, the checkpoint, the leaf
    hash it computed and the path length; the fields are the leaf's; sealed fields are shown
    sealed, with the server-opened value labelled as such; the raw leaf is the exact bytes."""
    page = auditor_page
    assert _open(page, console.base_url) == ("verified", None)
    leaf = _leaf(console.data_dir)
    checked = page.locator("#proof-checked").inner_text()
    assert base64.b64encode(leaf_hash(leaf)).decode() in checked
    assert "Ed25519 signature verified with the pinned key" in checked
    assert "hashes, from the leaf at index 3" in checked
    assert page.locator("#checked-leaf-hash").inner_text() == \
        base64.b64encode(leaf_hash(leaf)).decode()
    assert page.locator("#raw-leaf").inner_text() == leaf.decode()
    assert page.get_attribute("#raw-leaf-section", "data-leaf-state") == "verified"
    assert page.locator("#raw-leaf-badge").inner_text() == "verified"
    assert page.locator("#pinned-vkey").inner_text() == _vkey(console.data_dir)
    # The fields come from the leaf: each top-level key of the leaf (but `sealed`) is a dt.
    obj = json.loads(leaf)
    terms = page.locator("#event-fields > dt").all_inner_texts()
    assert terms == [k for k in obj if k != "sealed"]
    assert obj["action"] in page.locator("#event-fields").inner_text()
    # actor.ip and actor.name are sealed in the leaf: shown sealed, opened by the server.
    sealed = page.locator("#sealed-fields").inner_text()
    assert set(obj["sealed"]["fields"]) <= set(page.locator("#sealed-fields > dt")
                                                .all_inner_texts())
    assert "opened by the server" in sealed
    # index 0 is the seed event of tests/server's make_data_dir, then the samples
    assert sample_events()[INDEX - 1]["actor"]["ip"] in sealed
    assert "198.51.100" not in leaf.decode()  # ...and it was never in the verified bytes
    page.screenshot(path=str(screenshot_dir / "event.png"), full_page=True)
    assert page.console_errors == []
    # A second visit: the remembered checkpoint is older (the first visit's read was
    # recorded), and the new one is proven consistent with it.
    assert _open(page, console.base_url, INDEX + 1) == ("verified", None)
    assert "consistent with the checkpoint of size" in \
        page.locator("#proof-checked").inner_text()
    assert page.console_errors == []


def _tamper_json(mutate: Callable[[dict[str, Any]], None]) -> Callable[[Any], None]:
    def handler(route: Any) -> None:
        response = route.fetch()
        doc = response.json()
        mutate(doc)
        route.fulfill(response=response, body=json.dumps(doc))
    return handler


def _tamper_text(mutate: Callable[[str], str]) -> Callable[[Any], None]:
    def handler(route: Any) -> None:
        response = route.fetch()
        route.fulfill(response=response, body=mutate(response.text()))
    return handler


def _flip_b64(text: str) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[0] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def _path_flip(doc: dict[str, Any]) -> None:
    doc["audit_path"][0] = _flip_b64(doc["audit_path"][0])


def _path_cut(doc: dict[str, Any]) -> None:
    doc["audit_path"].pop()


def _leaf_hash_flip(doc: dict[str, Any]) -> None:
    doc["leaf_hash"] = _flip_b64(doc["leaf_hash"])


def _consistency_flip(doc: dict[str, Any]) -> None:
    doc["consistency"][-1] = _flip_b64(doc["consistency"][-1])


def _proof_root_and_note(doc: dict[str, Any]) -> None:
    # What the page must not rely on: the proof's own root and checkpoint.
    doc["root_hash"] = _flip_b64(doc["root_hash"])
    doc["checkpoint"] = "not a note"


def _note_root(text: str) -> str:
    lines = text.split("\n")
    lines[2] = base64.b64encode(bytes(32)).decode()
    return "\n".join(lines)


def _note_size(text: str) -> str:
    lines = text.split("\n")
    lines[1] = str(int(lines[1]) - 1)
    return "\n".join(lines)


def _entry_leaf(text: str) -> str:
    line = json.loads(text.split("\n", maxsplit=1)[0])
    leaf = base64.b64decode(line["leaf"]).replace(b'"outcome":"', b'"outcome":"x', 1)
    line["leaf"] = base64.b64encode(leaf).decode()
    return json.dumps(line) + "\n"


def _entry_retired(text: str) -> str:
    line = json.loads(text.split("\n", maxsplit=1)[0])
    line["leaf"] = ""  # as the API answers for an entry whose body retention removed
    return json.dumps(line) + "\n"


@pytest.mark.parametrize(("where", "handler", "expected"), [
    ("**/proof/inclusion?*", _tamper_json(_path_flip), ("failed", "inclusion")),
    ("**/proof/inclusion?*", _tamper_json(_path_cut), ("failed", "inclusion")),
    ("**/proof/inclusion?*", _tamper_json(_leaf_hash_flip), ("failed", "leaf-hash")),
    ("**/proof/inclusion?*", _tamper_json(_proof_root_and_note), ("verified", None)),
    ("**/checkpoint", _tamper_text(_note_root), ("failed", "signature")),
    ("**/checkpoint", _tamper_text(_note_size), ("failed", "signature")),
    ("**/entries?*", _tamper_text(_entry_leaf), ("failed", "leaf-hash")),
    ("**/entries?*", _tamper_text(_entry_retired), ("failed", "retired")),
    # The second visit's checkpoint is newer (the first visit's read was recorded): the
    # consistency proof from the remembered one is what gets altered.
    ("**/proof/consistency?*", _tamper_json(_consistency_flip), ("failed", "consistency")),
], ids=["path-bit", "path-cut", "proof-leaf-hash", "proof-root-ignored", "checkpoint-root",
        "checkpoint-size", "entry-leaf", "entry-retired",
        "consistency-bit"])
def test_altered_in_flight_fails_with_its_reason(
        auditor_page: Any, console: Console, where: str, handler: Callable[[Any], None],
        expected: tuple[str, str | None]) -> None:
    """The proof, the checkpoint or the leaf altered between the server and the page: failed,
    with the check that caught it (and the proof's own root and note are never relied on)."""
    page = auditor_page
    assert _open(page, console.base_url) == ("verified", None)  # pinned, memory set
    page.route(where, handler)
    assert _open(page, console.base_url) == expected
    if expected[0] == "failed":
        assert page.locator("#proof-alert [role=alert]").count() == 1
        assert page.locator("#event-fields").count() == 0  # nothing shown as verified
        # The raw leaf is still shown as the server sent it, marked and greyed out.
        assert page.get_attribute("#raw-leaf-section", "data-leaf-state") == "failed"
        assert page.locator("#raw-leaf-badge").inner_text() == "not verified"
        assert "Not verified" in page.locator("#raw-leaf-state").inner_text()
        assert "muted" in (page.get_attribute("#raw-leaf", "class") or "").split()
    else:
        assert page.get_attribute("#raw-leaf-section", "data-leaf-state") == "verified"
        assert "muted" not in (page.get_attribute("#raw-leaf", "class") or "").split()


def _erased_by_the_server(text: str) -> str:
    """The entry as a server that says its sealed fields' key was destroyed sends it (the
    opened event without the sealed values, listing them under ``erased``)."""
    line = json.loads(text.split("\n", maxsplit=1)[0])
    fields = json.loads(base64.b64decode(line["leaf"]))["sealed"]["fields"]
    event = line["event"]
    for path in fields:
        parent = event
        *head, last = path.split(".")
        for part in head:
            parent = parent.get(part, {})
        parent.pop(last, None)
    event.pop("sealed", None)
    event["erased"] = fields
    return json.dumps(line) + "\n"


def test_erased_is_shown_as_the_servers_statement(auditor_page: Any, console: Console) -> None:
    """Whether a sealed field's key was destroyed is the server's word (the leaf holds only
    the ciphertext): the page labels it so, as it labels a value the server opened."""
    page = auditor_page
    page.route("**/entries?*", _tamper_text(_erased_by_the_server))
    assert _open(page, console.base_url) == ("verified", None)
    fields = json.loads(_leaf(console.data_dir))["sealed"]["fields"]
    claims = page.locator("#sealed-fields [data-claim=erased]")
    assert claims.count() == len(fields) > 0
    assert claims.all_inner_texts() == ["erased (key destroyed), says the server"] * len(fields)
    assert "opened by the server" not in page.locator("#sealed-fields").inner_text()
    assert "statement" in page.locator("#fields").inner_text()
    assert page.console_errors == []


def test_key_changed_is_loud_and_never_adopted(auditor_page: Any, console: Console,
                                               screenshot_dir: Path) -> None:
    """A checkpoint signed by another key (same name) than the pinned one: failed with
    key-changed and a role=alert warning, however often the page is opened; pasting the right
    key again verifies; a malformed pasted key is refused and changes nothing."""
    page = auditor_page
    assert _open(page, console.base_url) == ("verified", None)
    real = _vkey(console.data_dir)
    origin = real.split("+")[0]
    impostor = note.Signer.from_seed(origin, bytes([7]) * 32)

    def resign(text: str) -> str:
        body = text[: text.rfind("\n\n") + 1]
        return impostor.sign(body)

    page.route("**/checkpoint", _tamper_text(resign))
    for _ in range(2):
        assert _open(page, console.base_url) == ("failed", "key-changed")
        warning = page.locator("#key-changed[role=alert]")
        assert warning.count() == 1
        assert impostor.key_id.hex() in warning.inner_text()
        assert page.locator("#pinned-vkey").inner_text() == real
    page.screenshot(path=str(screenshot_dir / "event-key-changed.png"), full_page=True)
    page.unroute("**/checkpoint")

    # The user pins a key they were given: the impostor's. Now the real server fails.
    page.fill("#trusted-vkey", impostor.verifier().format())
    page.click("#pin-submit")
    page.wait_for_function(
        "(want) => document.querySelector('#pinned-vkey')?.textContent.startsWith(want)",
        arg=impostor.verifier().format()[:20])
    assert _settle(page) == ("failed", "key-changed")
    # A malformed key is refused, naming why; the pin stays.
    page.fill("#trusted-vkey", real[:-4])
    page.click("#pin-submit")
    page.wait_for_selector("#pin-form-status [role=alert]")
    assert page.locator("#pinned-vkey").inner_text() == impostor.verifier().format()
    # The real key pasted back: verified.
    page.fill("#trusted-vkey", real)
    page.click("#pin-submit")
    page.wait_for_function(
        "(want) => document.querySelector('#pinned-vkey')?.textContent === want", arg=real)
    assert _settle(page) == ("verified", None)
    # Forget: the next check pins the server's key again.
    page.click("#pin-forget")
    page.wait_for_selector("#proof-status[data-proof-status=verified]", timeout=30_000)
    assert "on first use" in page.locator("#pin-info").inner_text()


@pytest.fixture
def two_copies(tmp_path: Path) -> tuple[Path, Path]:
    """A data directory and an older copy of it (the copy stops at an earlier size)."""
    newer = tmp_path / "newer"
    newer.mkdir()
    make_console_data(newer, events=12)
    older = tmp_path / "older"
    shutil.copytree(newer, older)
    with AuditLog.open(newer, "default", create=False) as alog:
        alog.append_many(sample_events(10))
    return newer, older


def test_rollback_is_caught_by_a_browser_that_saw_a_newer_checkpoint(
        browser: Any, two_copies: tuple[Path, Path], screenshot_dir: Path) -> None:
    """The browser verifies an event on the newer log; the same address then serves an older
    copy of the data (same key, fewer entries): its checkpoint is older than the remembered
    one, and the page says failed/rollback."""
    newer, older = two_copies
    port = free_port()
    context = browser.new_context()
    try:
        page = context.new_page()
        errors = watch_errors(page)
        with serve_console(newer, port) as url:
            sign_in(page, url, USERS["reader"])
            assert _open(page, url) == ("verified", None)
        with serve_console(older, port) as url:
            sign_in(page, url, USERS["reader"])
            assert _open(page, url) == ("failed", "rollback")
            assert "rolled back" in page.locator("#proof-alert").inner_text()
            page.screenshot(path=str(screenshot_dir / "event-rollback.png"), full_page=True)
        # (The overview's requests, cut short by leaving it straight after sign-in, aside.)
        assert [e for e in errors if not e.endswith("/v1/logs/default/overview")] == []
    finally:
        context.close()


def test_fork_is_caught_when_the_same_size_has_another_root(
        browser: Any, tmp_path: Path) -> None:
    """Two copies of a log grow apart by the same number of entries (a server showing one
    browser one history and then another): at the same size the roots differ, and the page
    says failed/fork instead of accepting the second tree."""
    first = tmp_path / "first"
    first.mkdir()
    make_console_data(first, events=12)
    second = tmp_path / "second"
    shutil.copytree(first, second)
    for where, marker in ((first, "a"), (second, "b")):
        with AuditLog.open(where, "default", create=False) as alog:
            alog.append_many([{**ev, "reason": f"history {marker}"}
                              for ev in sample_events(5)])
    port = free_port()
    context = browser.new_context()
    try:
        page = context.new_page()
        sizes = []
        for where, expected in ((first, ("verified", None)), (second, ("failed", "fork"))):
            with serve_console(where, port) as url:
                # The same requests in the same order on both: sign-in, the overview loaded
                # in full, the event; so both logs record the same number of entries.
                sign_in(page, url, USERS["reader"])
                page.wait_for_selector("#integrity dt")
                assert _open(page, url) == expected
                sizes.append(page.evaluate(
                    "() => Object.entries(localStorage).filter(([k]) => "
                    "k.includes(' checkpoint ')).map(([, v]) => JSON.parse(v).size)"))
        assert sizes[0] == sizes[1]  # the remembered checkpoint was kept, not replaced
        assert "forked" in page.locator("#proof-alert").inner_text()
    finally:
        context.close()


# -- two tabs of one browser share the checkpoint memory ----------------------------------------

MEMORY_SIZE = ("() => Object.entries(localStorage).filter(([k]) => k.includes(' checkpoint '))"
               ".map(([, v]) => Number(JSON.parse(v).size))")
LOCKS_PENDING = "async () => (await navigator.locks.query()).pending.length"


def _memory_size(page: Any) -> int:
    sizes: list[int] = page.evaluate(MEMORY_SIZE)
    assert len(sizes) == 1, sizes
    return sizes[0]


def _hold_first(page: Any, pattern: str) -> list[Any]:
    """Hold the page's first request matching ``pattern`` (the test releases it with
    ``continue_()``, as a slow network would, late); later ones pass."""
    held: list[Any] = []
    seen = [0]

    def handler(route: Any) -> None:
        seen[0] += 1
        if seen[0] == 1:
            held.append(route)
        else:
            route.continue_()
    page.route(pattern, handler)
    return held


def _wait_until(page: Any, done: Callable[[], bool], what: str, timeout: float = 20) -> None:
    """Poll ``done`` (letting the browser's events through meanwhile)."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        page.wait_for_timeout(50)


def _grow(console: Console, n: int = 3) -> None:
    """Append events through the API, so the next checkpoint is larger."""
    response = httpx.post(f"{console.base_url}/v1/logs/default/events", json=sample_events(n),
                          headers=console.auth("ingest_ui"), timeout=30)
    assert response.status_code == 201, response.text


def _query_int(url: str, name: str) -> int:
    return int(parse_qs(urlparse(url).query)[name][0])


def _checked_size(page: Any) -> int:
    found = re.search(r"tree size (\d+)", page.locator("#proof-checked").inner_text())
    assert found is not None
    return int(found.group(1))


Tabs = tuple[Any, Any, Callable[[], list[str]]]


@pytest.fixture
def two_tabs(browser: Any, console: Console) -> Iterator[Tabs]:
    """Two pages of one browser context (one localStorage, one session), signed in as the
    auditor, the event already verified once (key pinned, memory set); and a function giving
    both pages' errors (the overview's requests, cut short by leaving it, aside)."""
    context = browser.new_context()
    try:
        first, second = context.new_page(), context.new_page()
        watched = [watch_errors(first), watch_errors(second)]
        sign_in(first, console.base_url, USERS["auditor"])
        assert _open(first, console.base_url) == ("verified", None)
        yield first, second, lambda: [e for errors in watched for e in errors
                                      if not e.endswith("/v1/logs/default/overview")]
    finally:
        context.close()


def test_a_slow_tab_never_replaces_a_newer_memory_with_an_older_checkpoint(
        two_tabs: Tabs, console: Console) -> None:
    """Tab A verifies a checkpoint and its consistency proof is slow; meanwhile tab B
    verifies a newer one and remembers it. When A's proof arrives, the memory must not go
    back to A's smaller size (a later fork at B's size would then go unnoticed): the memory
    step is serialized across tabs and only ever stores a larger, proven checkpoint."""
    tab_a, tab_b, errors = two_tabs
    _grow(console)
    held = _hold_first(tab_a, "**/proof/consistency?*")
    tab_a.goto(_event_url(console.base_url))
    _wait_until(tab_a, lambda: bool(held), "tab A's consistency request")
    size_a = _query_int(held[0].request.url, "second")
    _grow(console)
    tab_b.goto(_event_url(console.base_url, INDEX + 1))
    # B either finishes (no lock) or waits for the lock A holds during its memory step.
    _wait_until(tab_b, lambda: tab_b.locator(SETTLED).count() == 1
                or tab_b.evaluate(LOCKS_PENDING) > 0, "tab B to finish or wait for the lock")
    held[0].continue_()
    assert _settle(tab_a) == ("verified", None)
    assert _settle(tab_b) == ("verified", None)
    size_b = _checked_size(tab_b)
    assert size_b > size_a
    assert _memory_size(tab_a) == size_b
    assert errors() == []


def test_a_tab_whose_proof_is_slow_does_not_call_an_honest_server_rolled_back(
        two_tabs: Tabs, console: Console) -> None:
    """Tab A fetched a checkpoint and its inclusion proof is slow; meanwhile tab B stores a
    newer checkpoint. A finds the memory newer than its own checkpoint: it fetches the latest
    checkpoint again and proves both consistent with it instead of reporting a rollback."""
    tab_a, tab_b, errors = two_tabs
    held = _hold_first(tab_a, "**/proof/inclusion?*")
    tab_a.goto(_event_url(console.base_url))
    _wait_until(tab_a, lambda: bool(held), "tab A's inclusion request")
    size_a = _query_int(held[0].request.url, "size")
    _grow(console)
    assert _open(tab_b, console.base_url, INDEX + 1) == ("verified", None)
    size_b = _memory_size(tab_b)
    assert size_b > size_a
    held[0].continue_()
    assert _settle(tab_a) == ("verified", None)
    assert "already verified a newer checkpoint" in tab_a.locator("#proof-checked").inner_text()
    assert _memory_size(tab_a) >= size_b
    assert errors() == []
