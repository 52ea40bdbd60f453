"""The console and witnesses: ``static/tlog.js``'s cosignature/v1 and witness-policy code against
the Python core, the event page's in-browser check of the witnessed proof against a pinned
policy, and the overview's Witnesses card.

A real witness (``WitnessState`` + ``create_witness_app`` on uvicorn, on loopback) cosigns the
console's log: the log is configured with it before the service starts, one round runs here
first, and the service's leader job (server/witnessing_job.py) runs the next ones every second.
A second witness key that the log never submits to stands for a policy whose witness never
cosigned. Tampering happens in flight (Playwright route interception).
"""

from __future__ import annotations

import base64
import json
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from sealtrail.core.cosignature import Cosigner, CosignerKey, add_lines
from sealtrail.core.errors import FormatError, SealtrailError, SignatureError, ValidationError
from sealtrail.core.witness_policy import WitnessPolicy
from sealtrail.core.witness_protocol import format_request
from sealtrail.log import witnesses
from sealtrail.log.auditlog import AuditLog
from sealtrail.log.witness import WitnessState
from sealtrail.server.app import ServiceConfig
from sealtrail.server.witness_app import create_witness_app
from tests.ports import free_port
from tests.server.conftest import running
from tests.ui.conftest import (
    USERS,
    Console,
    axe_violations,
    make_console_data,
    sample_events,
    sideways_at_200_percent,
    sign_in,
    watch_errors,
)
from tests.ui.proof_fixtures import static_url, tlog_page

__all__ = ["static_url", "tlog_page"]  # fixtures used by name

pytestmark = pytest.mark.browser

ACTOR = {"id": "test-operator", "type": "os_user"}
WITNESS = "example.org/witness-a"
STRANGER = "example.org/witness-never"
INDEX = 3
SETTLED = '#witness-status:not([data-witness-status="checking"])'
PROOF_SETTLED = '#proof-status:not([data-proof-status="checking"])'


# -- a real witness on loopback ---------------------------------------------------------------

class WitnessServer:
    """A witness directory served by ``create_witness_app`` on uvicorn in a thread."""

    def __init__(self, directory: Path, name: str) -> None:
        self.state = WitnessState(directory)
        self.vkey = self.state.init(name).format()
        self.url = f"http://127.0.0.1:{free_port()}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        port = int(self.url.rsplit(":", 1)[1])
        server = uvicorn.Server(uvicorn.Config(create_witness_app(self.state), host="127.0.0.1",
                                               port=port, log_level="warning", lifespan="off"))
        thread = threading.Thread(target=server.run, daemon=True, name="ui-witness")
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive(), "the witness stopped before it started"
            assert time.monotonic() < deadline, "the witness did not start in 20 s"
            time.sleep(0.01)
        self._server, self._thread = server, thread

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(20)
            assert not self._thread.is_alive()
        self._server = self._thread = None


@dataclass
class Setup:
    """The witness, a key the log never submits to, and the policy texts of each."""

    witness: WitnessServer
    stranger_vkey: str
    policy: str = ""        # what `sealtrail witnesses list --policy` prints for the log

    def stranger_policy(self) -> str:
        return f"# a witness this log never submits to\nwitness {self.stranger_vkey}\n"

    def both_policy(self) -> str:
        return f"witness {self.witness.vkey} {self.witness.url}\nwitness {self.stranger_vkey}\n"


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    witness = WitnessServer(tmp_path / "witness", WITNESS)
    stranger = WitnessState(tmp_path / "stranger").init(STRANGER).format()
    witness.start()
    try:
        yield Setup(witness, stranger)
    finally:
        witness.stop()


@pytest.fixture
def console(tmp_path: Path, setup: Setup) -> Iterator[Console]:
    """tests/ui's console (same data), its log ``default`` witnessed by the real witness: one
    round run here before the service starts, then the service's own job every second."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    tokens = make_console_data(data_dir)
    with AuditLog.open(data_dir, "default", create=False) as alog:
        setup.witness.state.add_log(alog.vkey())
        policy = witnesses.add(alog, setup.witness.url, setup.witness.vkey, actor=ACTOR)
        setup.policy = policy.format()
        with httpx.Client(timeout=10) as client:
            first = witnesses.run_round(alog, policy, datetime.now(UTC),
                                        witnesses.httpx_post(client))
        assert first.met, first
    config = ServiceConfig(data_dir, verify_delay=0.5, retention_interval=0)
    with running(config) as url:
        yield Console(url, data_dir, config, tokens)


# -- helpers ------------------------------------------------------------------------------------

def _open_event(page: Any, base_url: str, index: int = INDEX) -> tuple[str, str | None]:
    page.goto(f"{base_url}/ui/logs/default/events/{index}")
    page.wait_for_selector(PROOF_SETTLED, timeout=30_000)
    return _witness_state(page)


def _witness_state(page: Any) -> tuple[str, str | None]:
    node = page.wait_for_selector(SETTLED, timeout=30_000)
    return node.get_attribute("data-witness-status"), node.get_attribute("data-witness-reason")


def _pin_policy(page: Any, text: str) -> tuple[str, str | None]:
    """Paste a policy into the event page's form; the witnessed check's outcome."""
    page.evaluate("() => { const n = document.querySelector('#witness-status');"
                  " n.dataset.witnessStatus = 'checking'; }")
    page.fill("#trusted-policy", text)
    page.click("#policy-submit")
    page.wait_for_selector("#policy-form-status > span", timeout=30_000)
    return _witness_state(page)


def _witnessing(console: Console) -> dict[str, Any]:
    answer = httpx.get(f"{console.base_url}/v1/logs/default/witnessing",
                       headers=console.auth("auditor"), timeout=10)
    assert answer.status_code == 200, answer.text
    doc: dict[str, Any] = answer.json()
    return doc


def _wait(what: str, ok: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not ok():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _errors(page: Any, console: Console) -> list[str]:
    """The page's console errors and failed requests."""
    errors: list[str] = page.console_errors
    return errors


@pytest.fixture
def page_as(browser: Any, console: Console) -> Iterator[Callable[..., Any]]:
    """``page_as(role, bypass_csp=False)``: a new context and page signed in as that role
    (errors collected on ``page.console_errors``). Only the axe scan bypasses the CSP (it
    injects axe-core); every other check runs under the console's real policy."""
    contexts: list[Any] = []

    def make(role: str, *, bypass_csp: bool = False) -> Any:
        context = browser.new_context(viewport={"width": 1280, "height": 900},
                                      bypass_csp=bypass_csp)
        contexts.append(context)
        page = context.new_page()
        page.console_errors = watch_errors(page)
        sign_in(page, console.base_url, USERS[role])
        assert page.locator("input[name=password]").count() == 0
        return page

    yield make
    for context in contexts:
        context.close()


def _assert_axe_clean(page: Any) -> None:
    found = axe_violations(page)
    if found is None:
        pytest.skip("axe-core is not installed (scripts/test fetches it)")
    assert found == [], json.dumps(found, indent=1)


def _axe_event_page(page_as: Callable[..., Any], console: Console, policy: str,
                    expected: tuple[str, str | None]) -> None:
    """The event page with ``policy`` pinned, in a context that lets axe-core in: clean, and
    no sideways scroll at 200 % zoom."""
    page = page_as("auditor", bypass_csp=True)
    _open_event(page, console.base_url)
    assert _pin_policy(page, policy) == expected
    _assert_axe_clean(page)
    assert sideways_at_200_percent(page) <= 1


def test_overview_api_answers_with_witnesses_configured(console: Console) -> None:
    """The overview of a log with witnesses (its retention check replays setting entries,
    the witness configuration's among them)."""
    answer = httpx.get(f"{console.base_url}/v1/logs/default/overview",
                       headers=console.auth("auditor"), timeout=10)
    assert answer.status_code == 200, answer.text


# -- tlog.js against the Python core -------------------------------------------------------------

RUNNER = """
async (cases) => {
  const t = await import("/tlog.js");
  async function one(c) {
    switch (c.kind) {
      case "cosigner_vkey": {
        const k = await t.parseCosignerVkey(c.text);
        return [k.name, t.hex(k.keyId), t.b64encode(k.publicKey), t.formatCosignerVkey(k)];
      }
      case "policy": {
        const p = await t.parseWitnessPolicy(c.text);
        return [t.formatWitnessPolicy(p), p.quorum];
      }
      case "witnessed": {
        const r = await t.checkWitnessed(c.note, await t.parseWitnessPolicy(c.policy));
        return [r.met, Object.fromEntries(Object.entries(r.cosigned)
          .map(([k, v]) => [k, String(v)])), r.missing, r.quorum];
      }
      default: throw new Error(`unknown case ${c.kind}`);
    }
  }
  const out = [];
  for (const c of cases) {
    try {
      out.push({ ok: true, value: await one(c) });
    } catch (err) {
      out.push({ ok: false, reason: err.name === "TlogError" ? err.reason : `js:${err.name}`,
                 message: String(err.message) });
    }
  }
  return out;
}
"""


def _python(case: dict[str, Any]) -> dict[str, Any]:
    """The Python core's outcome of one case, shaped as RUNNER's."""
    try:
        if case["kind"] == "cosigner_vkey":
            k = CosignerKey.parse(case["text"])
            value: Any = [k.name, k.key_id.hex(), base64.b64encode(k.public_key).decode(),
                          k.format()]
        elif case["kind"] == "policy":
            p = WitnessPolicy.parse(case["text"])
            value = [p.format(), p.quorum]
        else:
            found = WitnessPolicy.parse(case["policy"]).check(case["note"])
            value = [found.met, {k: str(v) for k, v in found.cosigned.items()},
                     list(found.missing), found.quorum]
    except SignatureError as exc:
        return {"ok": False, "reason": "cosignature", "message": str(exc)}
    except (FormatError, ValidationError) as exc:
        return {"ok": False, "reason": "format", "message": str(exc)}
    except SealtrailError as exc:  # pragma: no cover - an unexpected refusal fails the test
        return {"ok": False, "reason": f"py:{type(exc).__name__}", "message": str(exc)}
    return {"ok": True, "value": value}


def _compare(page: Any, cases: list[dict[str, Any]]) -> None:
    got = page.evaluate(RUNNER, cases)
    for case, js in zip(cases, got, strict=True):
        py = _python(case)
        label = case.get("label", case.get("text", ""))
        assert js["ok"] == py["ok"], (label, py, js)
        if py["ok"]:
            assert js["value"] == py["value"], (label, py, js)
        else:
            assert js["reason"] == py["reason"], (label, py, js)
            if case["kind"] == "policy":  # names the same line (or field) in both
                assert js["message"].split(":")[0] == py["message"].split(":")[0], (label, py, js)


def _line_data(line: str) -> tuple[str, bytes]:
    name, data = line.removeprefix("\u2014 ").split(" ")
    return name, base64.b64decode(data)


def _line(name: str, data: bytes) -> str:
    return f"\u2014 {name} {base64.b64encode(data).decode()}"


def test_tlog_js_cosignatures_and_policies_match_python(tlog_page: Any, tmp_path: Path) -> None:
    """Cosigner keys, policy texts and cosignature lines (real ones, from a witness that
    checked the checkpoint, and tampered ones) give the same result, or the same refusal
    naming the same line, in tlog.js and in the Python core."""
    with AuditLog.open(tmp_path / "log", origin="example.org/ui-compare") as alog:
        alog.append_many(sample_events(5))
        note = alog.checkpoint().note
        vkey = alog.vkey()
        alog.append_many(sample_events(2))
        other_note = alog.checkpoint().note
    states = []
    for i, name in enumerate(["example.org/w0", "example.org/w1", "example.org/w2"]):
        state = WitnessState(tmp_path / f"w{i}")
        state.init(name)
        state.add_log(vkey)
        states.append(state)
    keys = [s.cosigner().key.format() for s in states]
    real: list[str] = []
    for state in states:
        answer = state.add_checkpoint(format_request(0, (), note), datetime.now(UTC))
        assert answer.status == 200, answer.body
        real += [ln for ln in answer.body.split("\n") if ln]
    body = note[: note.rfind("\n\n") + 1]
    other_body = other_note[: other_note.rfind("\n\n") + 1]
    w0 = states[0].cosigner()
    name0, data0 = _line_data(real[0])

    def flipped(index: int) -> str:
        raw = bytearray(data0)
        raw[index] ^= 1
        return _line(name0, bytes(raw))

    impostor = Cosigner("example.org/w0", bytes([9]) * 32)   # same name, another key (id)
    stranger = Cosigner("example.org/stranger", bytes([5]) * 32)
    big_time = (1 << 53) + 1
    policy = "\n".join(f"witness {k} https://w{i}.example.org" for i, k in enumerate(keys))
    policy += "\nquorum 2\n"
    notes: dict[str, str] = {
        "two-of-three": add_lines(note, real[:2]),
        "all": add_lines(note, real),
        "one": add_lines(note, real[2:]),
        "none": note,
        "dup-line": add_lines(note, [real[0], real[0], real[1]]),
        "reordered": add_lines(note, [real[1], real[0]]),
        "sig-bit": add_lines(note, [flipped(20), real[1]]),
        "time-bit": add_lines(note, [flipped(11), real[1]]),
        "keyid-bit": add_lines(note, [flipped(0), real[1]]),        # another key: ignored
        "short": add_lines(note, [_line(name0, data0[:-1]), real[1]]),
        "other-body": add_lines(note, [w0.line(other_body, 1_700_000_000), real[1]]),
        "impostor": add_lines(note, [impostor.line(body, 1_700_000_000), real[1]]),
        "stranger": add_lines(note, [stranger.line(body, 1_700_000_000), *real[:2]]),
        "big-time": add_lines(note, [w0.line(body, big_time), real[1]]),
        "time-zero": add_lines(note, [w0.line(body, 0), real[1]]),
        "time-2^63": add_lines(note, [_line(name0, data0[:4] + struct.pack(">Q", 1 << 63)
                                            + data0[12:]), real[1]]),
        "no-blank-line": note.replace("\n\n", "\n"),
    }
    # Every bit position of a real line flipped, and the line cut or lengthened.
    for i in range(len(data0) * 8):
        raw = bytearray(data0)
        raw[i // 8] ^= 1 << (i % 8)
        notes[f"bit-{i}"] = add_lines(note, [_line(name0, bytes(raw)), real[1]])
    for n in (4, 5, 12, 75, 77, 100):
        notes[f"length-{n}"] = add_lines(note, [_line(name0, (data0 + data0)[:n]), real[1]])
    cases: list[dict[str, Any]] = [
        {"kind": "witnessed", "label": label, "note": text, "policy": policy}
        for label, text in notes.items()]
    cases += [{"kind": "witnessed", "label": "quorum-1", "note": notes["one"],
               "policy": f"witness {keys[2]}\n"}]
    good = keys[0]
    name, kid, key64 = good.split("+", 2)
    raw_key = base64.b64decode(key64)
    vkeys = [good, f"  {good}\n", f"{name}+{kid.upper()}+{key64}", vkey,
             f"{name}+{kid[:-1]}0+{key64}" if kid[-1] != "0" else f"{name}+{kid[:-1]}1+{key64}",
             f"{name}+{kid}+{base64.b64encode(raw_key[:-1]).decode()}",
             f"{name}+{kid}", f"a b+{kid}+{key64}", f"+{kid}+{key64}", f"{name}+{kid}+{key64}=",
             f"{name}+{kid}0+{key64}"]
    cases += [{"kind": "cosigner_vkey", "text": v} for v in vkeys]
    texts = [
        policy,
        f"witness {keys[0]}\nwitness {keys[1]}\n",                    # quorum defaults to 2
        f"# comment\n\n  witness {keys[0]}   # trailing\n\tquorum 1\r\n",
        f"witness {keys[0]}\nquorum 0\n",
        f"witness {keys[0]}\nquorum 2\n",
        f"witness {keys[0]}\nwitness {keys[0]}\n",                    # a name twice
        f"witness {keys[0]} ftp://w.example.org\n",
        f"witness {vkey}\n",                                          # a log key, not 0x04
        f"witness {keys[0]}\nquorum two\n",
        f"witness {keys[0]}\nquorum 1000\n",
        f"witness {keys[0]}\nquorum 1 2\n",
        f"witness {keys[0]} https://a https://b\n",
        f"witness {keys[0]}\nwitnesses {keys[1]}\n",
        "quorum 1\n",
        "",
        "# nothing but comments\n",
        f"witness {keys[0]}#comment-glued\n",
        f"witness\u00a0{keys[0]}\n",                                   # NBSP is white space
        f"witness {keys[0]}\nwitness {keys[1]}\nquorum \u0662\n",       # Arabic-Indic 2
        f"witness {keys[0]}\nquorum \U0001d7d9\n",                      # mathematical 1
        f"witness {keys[0]}\nquorum \uff11\n",                          # fullwidth 1
        f"witness {keys[0]}\nquorum 01\n",
    ]
    cases += [{"kind": "policy", "text": t} for t in texts]
    _compare(tlog_page, cases)


# -- the event page ------------------------------------------------------------------------------

@pytest.fixture
def auditor_page(page_as: Callable[..., Any]) -> Any:
    return page_as("auditor")


def test_event_page_reports_witnessed_under_a_pinned_policy(
        auditor_page: Any, console: Console, setup: Setup, screenshot_dir: Path,
        page_as: Callable[..., Any]) -> None:
    """No policy: nothing claimed. The log's own policy pasted: witnessed by the witness, with
    the cosignature's time; it stays pinned across visits; the same tlog.js result as the
    Python core on the note the server serves; the page passes axe."""
    page = auditor_page
    assert _open_event(page, console.base_url) == ("none", None)
    assert page.get_attribute("#proof-status", "data-proof-status") == "verified"
    assert _pin_policy(page, setup.policy) == ("witnessed", None), \
        page.locator("#witness-status").inner_text()
    status = page.locator("#witness-status").inner_text()
    assert f"Witnessed: cosigned by {WITNESS} (1 of quorum 1)" in status
    row = page.locator(f"#witness-cosigners li[data-witness='{WITNESS}']")
    assert row.get_attribute("data-cosigned") == "yes"
    assert "cosignature verified, signed at 20" in row.inner_text()
    assert "Same history" in page.locator("#witness-checked").inner_text()
    assert page.locator("#pinned-policy").inner_text().strip() == setup.policy.strip()
    page.screenshot(path=str(screenshot_dir / "event-witnessed.png"), full_page=True)
    page.locator("#witness-section").screenshot(path=str(screenshot_dir /
                                                         "event-witnessed-section.png"))
    # Pinned in this browser: a later visit checks it again by itself.
    assert _open_event(page, console.base_url, INDEX + 1) == ("witnessed", None)
    # The console's tlog.js on the server's witnessed note agrees with the Python core.
    note = _witnessing(console)["witnessed_checkpoint"]
    js = page.evaluate("""async ([note, policy]) => {
        const t = await import("/ui/static/tlog.js");
        const r = await t.checkWitnessed(note, await t.parseWitnessPolicy(policy));
        return [r.met, Object.keys(r.cosigned), r.missing, r.quorum]; }""",
                       [note, setup.policy])
    py = WitnessPolicy.parse(setup.policy).check(note)
    assert js == [py.met, list(py.cosigned), list(py.missing), py.quorum] == \
        [True, [WITNESS], [], 1]
    # Cleared: back to no claim.
    page.click("#policy-forget")
    page.wait_for_selector("#witness-status[data-witness-status=none]", timeout=30_000)
    assert _errors(page, console) == []
    _axe_event_page(page_as, console, setup.policy, ("witnessed", None))


def test_event_page_not_witnessed_for_a_policy_whose_witness_never_cosigned(
        auditor_page: Any, console: Console, setup: Setup,
        page_as: Callable[..., Any]) -> None:
    """A policy naming only a witness the log never submits to: not witnessed (quorum), by
    no witness of the policy; both witnesses with quorum 2: one of two, the other missing. A
    malformed policy is refused naming its line, and the pinned one stays."""
    page = auditor_page
    _open_event(page, console.base_url)
    assert _pin_policy(page, setup.stranger_policy()) == ("not-witnessed", "quorum")
    status = page.locator("#witness-status").inner_text()
    assert "no witness of your policy (0 of quorum 1)" in status
    assert f"missing {STRANGER}" in status
    assert page.locator(f"#witness-cosigners li[data-witness='{STRANGER}']") \
        .get_attribute("data-cosigned") == "no"
    assert _pin_policy(page, setup.both_policy()) == ("not-witnessed", "quorum")
    status = page.locator("#witness-status").inner_text()
    assert f"cosigned by {WITNESS} (1 of quorum 2); missing {STRANGER}" in status
    # Malformed: refused with the line, nothing changes.
    page.fill("#trusted-policy", f"witness {setup.witness.vkey}\nquorum many\n")
    page.click("#policy-submit")
    page.wait_for_selector("#policy-form-status [role=alert]")
    assert "line 2" in page.locator("#policy-form-status").inner_text()
    assert STRANGER in page.locator("#policy-witnesses").inner_text()
    assert _errors(page, console) == []
    _axe_event_page(page_as, console, setup.both_policy(), ("not-witnessed", "quorum"))


def _tamper_witnessed(mutate: Callable[[dict[str, Any]], None]) -> Callable[[Any], None]:
    """Alter only the witnessed proof (the page's other proofs pass untouched)."""
    def handler(route: Any) -> None:
        if "witnessed=true" not in route.request.url:
            route.continue_()
            return
        response = route.fetch()
        doc = response.json()
        mutate(doc)
        route.fulfill(response=response, body=json.dumps(doc))
    return handler


def _cosig_flip(doc: dict[str, Any]) -> None:
    body, sigs = doc["checkpoint"].split("\n\n")
    lines = sigs[:-1].split("\n")
    for i, line in enumerate(lines):
        name, data = _line_data(line)
        if name == WITNESS:
            raw = bytearray(data)
            raw[-1] ^= 1
            lines[i] = _line(name, bytes(raw))
    doc["checkpoint"] = body + "\n\n" + "\n".join(lines) + "\n"


def _cosig_dropped(doc: dict[str, Any]) -> None:
    body, sigs = doc["checkpoint"].split("\n\n")
    kept = [ln for ln in sigs[:-1].split("\n") if _line_data(ln)[0] != WITNESS]
    doc["checkpoint"] = body + "\n\n" + "\n".join(kept) + "\n"


def _log_sig_flip(doc: dict[str, Any]) -> None:
    lines = doc["checkpoint"].split("\n")
    lines[2] = base64.b64encode(bytes(32)).decode()   # another root: the log's signature fails
    doc["checkpoint"] = "\n".join(lines)


def _path_flip(doc: dict[str, Any]) -> None:
    raw = bytearray(base64.b64decode(doc["audit_path"][0]))
    raw[0] ^= 1
    doc["audit_path"][0] = base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize(("mutate", "expected"), [
    (_cosig_flip, ("failed", "cosignature")),
    (_cosig_dropped, ("not-witnessed", "quorum")),
    (_log_sig_flip, ("failed", "signature")),
    (_path_flip, ("failed", "inclusion")),
], ids=["cosignature-bit", "cosignature-dropped", "log-signature", "audit-path"])
def test_event_page_catches_a_tampered_witnessed_proof(
        auditor_page: Any, console: Console, setup: Setup, screenshot_dir: Path,
        mutate: Callable[[dict[str, Any]], None], expected: tuple[str, str | None]) -> None:
    """The witnessed proof altered in flight: a cosignature that does not verify, the log's
    signature, the audit path each fail with their reason; a withheld cosignature is not
    witnessed. The entry's own check is unaffected."""
    page = auditor_page
    _open_event(page, console.base_url)
    assert _pin_policy(page, setup.policy) == ("witnessed", None)
    page.route("**/proof/inclusion?*", _tamper_witnessed(mutate))
    assert _open_event(page, console.base_url) == expected
    assert page.get_attribute("#proof-status", "data-proof-status") == "verified"
    if expected[0] == "failed":
        assert page.locator("#witness-alert [role=alert]").count() == 1
    if expected[1] == "cosignature":
        assert f"cosignature by {WITNESS} does not verify" in \
            page.locator("#witness-status").inner_text()
        page.screenshot(path=str(screenshot_dir / "event-witness-tampered.png"),
                        full_page=True)
    assert _errors(page, console) == []


def test_pending_while_the_witness_is_down_on_event_page_and_overview(
        page_as: Callable[..., Any], console: Console, setup: Setup,
        screenshot_dir: Path) -> None:
    """The overview's card: the witness, ok, the latest witnessed size; then the witness goes
    down and new events come: the event page says the new entry is past the latest witnessed
    checkpoint, the card shows the witness failing and the quorum pending since."""
    page = page_as("auditor", bypass_csp=True)  # (for the axe scans; the CSP: below)
    _wait("the service's first round", lambda: _witnessing(console)["witnesses"][0]["checked_at"]
          is not None and _witnessing(console)["witnessed_size"] is not None)
    page.goto(f"{console.base_url}/ui/?log=default")
    page.wait_for_selector("#witness-table")
    card = page.locator("#witnesses").inner_text()
    assert "1 of 1" in card
    row = page.locator(f"#witness-table tr[data-witness='{WITNESS}']")
    assert row.get_attribute("data-ok") == "true"
    assert "ok" in row.inner_text()
    assert page.locator("#witnessed-size").count() == 1
    assert "Pending since" not in card
    page.locator("#witnesses-card").screenshot(path=str(screenshot_dir /
                                                        "overview-witnesses.png"))
    _assert_axe_clean(page)

    setup.witness.stop()
    posted = httpx.post(f"{console.base_url}/v1/logs/default/events", json=sample_events(2),
                        headers=console.auth("ingest_ui"), timeout=30)
    assert posted.status_code == 201, posted.text
    newest = _witnessing(console)["size"] - 1
    _wait("the quorum to be pending", lambda: _witnessing(console)["pending_since"] is not None
          and not _witnessing(console)["witnesses"][0]["ok"])
    witnessed = _witnessing(console)["witnessed_size"]
    assert witnessed <= newest

    event = page_as("reader")
    event.goto(f"{console.base_url}/ui/logs/default/events/{newest}")
    event.wait_for_selector(PROOF_SETTLED, timeout=30_000)
    assert _pin_policy(event, setup.policy) == ("not-witnessed", "pending")
    assert (f"Not witnessed yet: entry {newest} is past the latest witnessed checkpoint "
            f"(size {witnessed})") in event.locator("#witness-status").inner_text()
    assert _errors(event, console) == []

    page.reload()
    page.wait_for_selector("#witness-table tr[data-ok=false]", timeout=30_000)
    page.locator("#witnesses-card").screenshot(path=str(screenshot_dir /
                                                        "overview-witnesses-pending.png"))
    card = page.locator("#witnesses").inner_text()
    assert "Pending since" in card
    assert "quorum not met" in card
    assert "failing" in card
    assert "unreachable" in card
    _assert_axe_clean(page)
    assert sideways_at_200_percent(page) <= 1
    assert _errors(page, console) == []


def test_a_log_without_witnesses(page_as: Callable[..., Any], console: Console,
                                 setup: Setup) -> None:
    """A log with no witnesses: the overview's card says so, and nothing else; an event page
    with a policy pinned says nothing of it was witnessed yet. (And the card of a witnessed
    log renders under the console's real CSP with no error.)"""
    strict = page_as("reader")
    strict.goto(f"{console.base_url}/ui/?log=default")
    strict.wait_for_selector(f"#witness-table tr[data-witness='{WITNESS}']")
    assert _errors(strict, console) == []
    page = page_as("auditor")
    page.goto(f"{console.base_url}/ui/?log=other")
    page.wait_for_selector("#no-witnesses")
    assert page.locator("#witness-table").count() == 0
    assert "No witnesses configured" in page.locator("#witnesses").inner_text()
    assert _errors(page, console) == []
    page.goto(f"{console.base_url}/ui/logs/other/events/0")
    page.wait_for_selector(PROOF_SETTLED, timeout=30_000)
    assert _witness_state(page) == ("none", None)   # (policies are pinned per log)
    assert _pin_policy(page, setup.policy) == ("not-witnessed", "pending")
    assert "Not witnessed yet: no checkpoint of this log has been witnessed yet" in \
        page.locator("#witness-status").inner_text()
    assert _errors(page, console) == []
