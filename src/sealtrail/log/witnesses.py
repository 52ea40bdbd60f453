"""A log's witnesses: who cosigns its checkpoints, and the rounds that collect cosignatures.

**Configuration.** The witnesses (cosigner vkey and URL each) and the quorum are a
:class:`~sealtrail.core.witness_policy.WitnessPolicy`, stored in its text form in ``meta``
and set by an entry of the log's own (``sealtrail.witnesses.set``, naming the text's digest)
in the same transaction, like the retention policy: removing a witness by editing the
settings table is caught by :func:`load` and by ``verify`` (log/settings.py ``DIGESTED``).

**Rounds.** :func:`run_round` takes the log's latest checkpoint and submits it to every
witness (c2sp.org/tlog-witness ``add-checkpoint``) with a consistency proof from the size
that witness last cosigned. On 409 (the witness holds another size: our record of it was
lost in a crash, or it was restored) it catches the witness up once from the size it names.
Cosignature lines are verified with the configured key before they are kept. A witness that
is down is retried with a backoff (1, 2, 4 … 60 s); ingest never waits on a witness: the
round runs beside it (the service's job, at most once a second) and only reads the log.

A 409 naming a size *above* ours, or our own size (another root at that size), and a 422
(the witness rejects our proof) mean the witness saw a different history of this log: a
fork or a rollback. The round reports them (:attr:`Round.refusals`) for the service to alert.

**State** (``meta`` row ``witnessing``, JSON, written by the round only): the round's
checkpoint with the lines gathered for it (what ``/tlog/{log}/checkpoint`` serves), each
witness's last known size and status, the latest checkpoint that met the quorum, and since
when a newer checkpoint has waited for the quorum. It is not trusted: every line it holds is
checked again against a policy by whoever reads it (``verify --witness-policy``).
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Final
from weakref import WeakKeyDictionary

import httpx

from sealtrail.core import canonical
from sealtrail.core.checkpoint import SignedCheckpoint, open_checkpoint
from sealtrail.core.cosignature import add_lines, cosignatures
from sealtrail.core.errors import (
    ConfigError,
    FormatError,
    SealtrailError,
    TamperError,
    ValidationError,
)
from sealtrail.core.proofs import InclusionProof
from sealtrail.core.receipt import Receipt
from sealtrail.core.timefmt import format_time, parse_time
from sealtrail.core.witness_policy import Witness, WitnessPolicy
from sealtrail.core.witness_protocol import SIZE_TYPE, format_request
from sealtrail.log.auditlog import AuditLog
from sealtrail.log.changes import SetSettings
from sealtrail.log.settings import (
    WITNESSES_AT_META,
    WITNESSES_META,
    SettingRecord,
    digest,
    policy_target,
)
from sealtrail.log.verify import setting_records

STATE_META: Final = "witnessing"
ACTION: Final = "sealtrail.witnesses.set"
TIMEOUT_S: Final = 5.0
MAX_ANSWER: Final = 64 * 1024
MAX_BACKOFF_S: Final = 60.0
MAX_URL: Final = 512
REFRESH_S: Final = 5.0   # a quiet round rewrites the state at most this often
DEADLINE_S: Final = 10.0  # a witness's whole answer, and a round's wait for its witnesses

# POST url/add-checkpoint with a body; returns (status, content type, text). Injected so the
# service can share a client and tests can count calls; the default is httpx.
Post = Callable[[str, bytes], tuple[int, str, str]]


# -- configuration --------------------------------------------------------------------------

@dataclass(slots=True)
class _Seen:
    """The latest ``sealtrail.witnesses.set`` entry of one open log, read incrementally."""

    scanned: int = 0
    latest: SettingRecord | None = None
    # The stored rows (text, index) last found to be what ``latest`` set, and their policy:
    # rows unchanged since need no new scan (a change by the engine writes a new entry and
    # new rows together; an edit of the rows changes them, and is then scanned and caught).
    verified: tuple[str | None, str | None] | None = None
    policy: WitnessPolicy | None = None


# Per open log: entries are append-only, so each is read once (a byte search skips every
# chunk without a setting entry), not the whole log each second.
_seen: WeakKeyDictionary[AuditLog, _Seen] = WeakKeyDictionary()


def _latest_set(alog: AuditLog) -> SettingRecord | None:
    """The log's latest entry that set its witnesses (None: never set)."""
    seen = _seen.setdefault(alog, _Seen())
    size = alog.size
    if size < seen.scanned:
        raise TamperError("truncated", size, f"the log has {size} entries, fewer than the "
                          f"{seen.scanned} already read")
    for record in setting_records(alog.store, size, start=seen.scanned):
        if record.action == ACTION:
            seen.latest = record
    seen.scanned = size
    return seen.latest


def load(alog: AuditLog) -> WitnessPolicy | None:
    """The log's witnesses, or None when it has none.

    The stored text is used only when it is what the log's *latest* ``sealtrail.witnesses.set``
    entry set (its index kept beside it, its digest named by the entry): a witness list
    edited into the settings table, rolled back to an older genuine one, or deleted would
    make the log report "witnessed" by witnesses nobody configured, or stop witnessing
    unnoticed. All three are TamperError.
    """
    meta = alog.store.meta()
    text = meta.get(WITNESSES_META)
    at = meta.get(WITNESSES_AT_META)
    seen = _seen.get(alog)
    if seen is not None and seen.verified == (text, at):
        return seen.policy
    last = _latest_set(alog)
    seen = _seen[alog]
    if last is None:
        if text is None and at is None:
            seen.verified, seen.policy = (text, at), None
            return None
        raise TamperError("settings", 0, "a witness configuration is stored but no entry of "
                          "the log set it (the settings table was edited): refusing to use "
                          "it; run sealtrail verify")
    if text is None or at != str(last.index) or not hmac.compare_digest(
            last.target_id.rpartition("@")[2], digest(text)):
        raise TamperError("settings", last.index, "the stored witness configuration is not "
                          f"the one entry {last.index}, the latest that set one, recorded "
                          "(the settings table was edited, or a row deleted): refusing to "
                          "use it; run sealtrail verify")
    policy = WitnessPolicy.parse(text) if text else None
    seen.verified, seen.policy = (text, at), policy
    return policy


def save(alog: AuditLog, policy: WitnessPolicy | None, *, actor: Mapping[str, Any],
         reason: str) -> Receipt:
    """Store the witnesses (None: none); the change is an entry in the same commit.

    The entry's target (the digest ``verify`` and :func:`load` read) stays clear whatever
    the log's field policy seals (:data:`sealtrail.core.reserved.OWN_CLEAR_FIELDS`)."""
    text = policy.format() if policy is not None else ""
    if policy is not None and WitnessPolicy.parse(text) != policy:
        raise ValidationError("witness", "the configuration does not read back as written")
    event = {"actor": dict(actor), "action": ACTION, "outcome": "success",
             "category": "configuration",
             "target": {"type": "witnesses", "id": policy_target("witnesses", text)},
             "reason": reason[:4096]}
    return alog.commit_change(event, SetSettings({WITNESSES_META: text},
                                                 index_key=WITNESSES_AT_META))


def check_url(url: str) -> str:
    """A witness URL (its ``add-checkpoint`` is under it): http(s), a host, a valid port, no
    credentials, query, fragment or white space, bounded (it is recorded in the log)."""
    rule = (f"a witness URL is http:// or https://, with a host and a valid port, no "
            f"credentials, query or spaces, at most {MAX_URL} characters (it is recorded in "
            "the log)")
    if len(url) > MAX_URL or not url.isprintable() or any(c.isspace() for c in url):
        raise ValidationError("url", rule)
    try:
        parsed = httpx.URL(url)
        port = parsed.port
    except (httpx.InvalidURL, ValueError) as exc:
        raise ValidationError("url", f"{rule}: {exc}") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host or (
            parsed.query or parsed.fragment or parsed.userinfo) or (
            port is not None and not 0 < port < 65536):
        raise ValidationError("url", rule)
    return url.rstrip("/")


def add(alog: AuditLog, url: str, vkey: str, *, actor: Mapping[str, Any]) -> WitnessPolicy:
    """Add a witness (the quorum stays; a first witness makes it 1)."""
    from sealtrail.core.cosignature import CosignerKey  # noqa: PLC0415

    try:
        key = CosignerKey.parse(vkey)
    except FormatError as exc:
        raise ValidationError("vkey", str(exc)) from exc
    old = load(alog)
    witnesses = list(old.witnesses) if old else []
    if any(w.name == key.name for w in witnesses):
        raise ValidationError("vkey", f"a witness named {key.name!r} is already configured "
                              "(remove it first)")
    witnesses.append(Witness(key, check_url(url)))
    policy = WitnessPolicy(tuple(witnesses), old.quorum if old else 1)
    save(alog, policy, actor=actor, reason=f"witness {key.name} added at {url}")
    return policy


def remove(alog: AuditLog, name: str, *, actor: Mapping[str, Any]) -> WitnessPolicy | None:
    """Remove a witness by name (the quorum shrinks if it would exceed the witnesses left)."""
    old = load(alog)
    kept = tuple(w for w in (old.witnesses if old else ()) if w.name != name)
    if old is None or len(kept) == len(old.witnesses):
        raise ValidationError("name", f"no witness named {name!r}")
    policy = WitnessPolicy(kept, min(old.quorum, len(kept))) if kept else None
    save(alog, policy, actor=actor, reason=f"witness {name} removed")
    return policy


def set_quorum(alog: AuditLog, quorum: int, *, actor: Mapping[str, Any]) -> WitnessPolicy:
    """Require ``quorum`` cosignatures (1..number of witnesses)."""
    old = load(alog)
    if old is None:
        raise ValidationError("quorum", "the log has no witnesses: add some first")
    policy = WitnessPolicy(old.witnesses, quorum)
    save(alog, policy, actor=actor, reason=f"witness quorum set to {quorum} of "
         f"{len(old.witnesses)}")
    return policy


# -- state ----------------------------------------------------------------------------------

@dataclass(slots=True)
class WitnessStatus:
    """One witness as the last round saw it."""

    size: int = 0              # the size it last cosigned (what we send as ``old``)
    ok: bool = True
    at: str = ""
    problem: str = ""
    fails: int = 0


@dataclass(slots=True)
class State:
    """The witnessing state of one log (``meta`` row :data:`STATE_META`)."""

    size: int = -1              # the round's checkpoint size
    root: str = ""
    note: str = ""              # the round's checkpoint with the lines gathered for it
    at: str = ""                # when the round's note was last written
    lines: dict[str, str] = field(default_factory=dict)
    witnesses: dict[str, WitnessStatus] = field(default_factory=dict)
    witnessed_size: int = -1    # the latest checkpoint that met the quorum
    witnessed_note: str = ""
    witnessed_at: str = ""
    pending_since: str = ""     # since when a checkpoint newer than that has waited
    extra: list[str] = field(default_factory=list)   # local lines (the seal) on ``note``

    @classmethod
    def load(cls, alog: AuditLog) -> State:
        """The stored state (a fresh one when there is none or it is unreadable)."""
        return cls.from_meta(alog.store.meta())

    @classmethod
    def from_meta(cls, meta: Mapping[str, str]) -> State:
        """The state in a log's ``meta`` rows (a copy being verified has no AuditLog)."""
        text = meta.get(STATE_META)
        if not text:
            return cls()
        try:
            doc = json.loads(text)
            state = cls(**{k: v for k, v in doc.items() if k != "witnesses"})
            state.witnesses = {n: WitnessStatus(**s) for n, s in doc["witnesses"].items()}
            state.check()
        except (ValueError, TypeError, KeyError, AttributeError):
            return cls()  # an unreadable row is a fresh start: witnesses' 409s catch us up
        return state

    def check(self) -> None:
        """Raise ValueError unless every field has its type (the row is not trusted)."""
        ints = (self.size, self.witnessed_size)
        texts = (self.root, self.note, self.at, self.witnessed_note, self.witnessed_at,
                 self.pending_since)
        if not all(type(v) is int for v in ints) or not all(type(v) is str for v in texts):
            raise ValueError("witnessing state: a field of the wrong type")
        if not all(type(v) is str for v in (*self.lines.values(), *self.extra)):
            raise ValueError("witnessing state: a line that is not text")
        for at in (self.at, self.witnessed_at, self.pending_since):
            if at:
                parse_time(at)
        for status in self.witnesses.values():
            if (type(status.size) is not int or status.size < 0 or type(status.ok) is not bool
                    or type(status.fails) is not int or status.fails < 0
                    or type(status.at) is not str or type(status.problem) is not str):
                raise ValueError("witnessing state: a witness status of the wrong type")
            if status.at:
                parse_time(status.at)

    def save(self, alog: AuditLog) -> None:
        """Write the state (one meta row)."""
        doc = {name: getattr(self, name) for name in self.__slots__ if name != "witnesses"}
        doc["witnesses"] = {n: {k: getattr(s, k) for k in s.__slots__}
                            for n, s in self.witnesses.items()}
        with alog.store.transaction():
            alog.store.set_meta({STATE_META: canonical.compact_json(doc, ascii=True)})


@dataclass(frozen=True, slots=True)
class Refusal:
    """A witness that saw another history of this log (fork, rollback, bad proof)."""

    witness: str
    size: int
    problem: str


@dataclass(frozen=True, slots=True)
class Round:
    """What one round did."""

    size: int
    cosigned: tuple[str, ...]
    met: bool
    refusals: tuple[Refusal, ...] = ()
    problems: dict[str, str] = field(default_factory=dict)
    unmet_for: float = 0.0      # seconds a checkpoint newer than the witnessed one has waited
    pending_since: str = ""


def httpx_post(client: httpx.Client) -> Post:
    """A :data:`Post` over ``client``: the answer read up to :data:`MAX_ANSWER` bytes and
    within :data:`DEADLINE_S` in all (httpx's timeouts bound each read, not the whole: a
    witness that trickles its answer a byte at a time would hold the round for hours)."""
    def post(url: str, body: bytes) -> tuple[int, str, str]:
        deadline = time.monotonic() + DEADLINE_S
        with client.stream("POST", f"{url}/add-checkpoint", content=body) as answer:
            data = b""
            for chunk in answer.iter_bytes():
                data += chunk
                if len(data) > MAX_ANSWER:
                    raise ConfigError(f"the witness at {url} answered more than "
                                      f"{MAX_ANSWER} bytes")
                if time.monotonic() > deadline:
                    raise ConfigError(f"the witness at {url} took more than {DEADLINE_S:.0f} "
                                      "s to answer")
            ctype = answer.headers.get("content-type", "")
            return answer.status_code, ctype, data.decode("utf-8", "replace")
    return post


def run_round(alog: AuditLog, policy: WitnessPolicy | None, now: datetime, post: Post, *,
              signed: SignedCheckpoint | None = None, extra: list[str] | None = None
              ) -> Round:
    """Submit ``signed`` (default: the latest checkpoint) to every witness due, keep the
    cosignatures, save.

    ``extra`` are local signature lines on that checkpoint (the forward-secure seal), put
    before the witnesses' lines.
    """
    state = State.load(alog)
    signed = signed if signed is not None else alog.checkpoint()
    cp = signed.checkpoint
    root = cp.root.hex()
    before = (state.size, state.root, state.extra, state.at)
    if (cp.size, root) != (state.size, state.root):
        state.size, state.root, state.lines = cp.size, root, {}
    state.extra = list(extra or [])
    witnesses = list(policy.witnesses) if policy else []
    names = {w.name for w in witnesses}
    state.witnesses = {n: s for n, s in state.witnesses.items() if n in names}
    state.lines = {n: line for n, line in state.lines.items() if n in names}
    due = [w for w in witnesses if w.name not in state.lines and _due(
        state.witnesses.get(w.name), now)]
    results: list[tuple[Witness, str | None, str, Refusal | None, int]] = []
    if due:
        # The round waits at most DEADLINE_S for its witnesses; one still answering then is
        # left to finish on its own (its answer is dropped: the next round's 409 tells us
        # where it stands) so a slow witness never holds the others, or the other logs.
        pool = ThreadPoolExecutor(max_workers=min(8, len(due)),
                                  thread_name_prefix="sealtrail-witness")
        futures = {pool.submit(_submit, alog, signed, w, state.witnesses.get(
            w.name, WitnessStatus()).size, post): w for w in due}
        done, late = wait(futures, timeout=DEADLINE_S)
        pool.shutdown(wait=False, cancel_futures=True)
        results = [f.result() for f in done]
        results += [(futures[f], None, f"no answer within {DEADLINE_S:.0f} s", None,
                     state.witnesses.get(futures[f].name, WitnessStatus()).size)
                    for f in late]
    problems: dict[str, str] = {}
    refusals: list[Refusal] = []
    for witness, line, problem, refusal, size in results:
        status = state.witnesses.setdefault(witness.name, WitnessStatus())
        status.at, status.size = format_time(now), size
        if line is not None:
            state.lines[witness.name] = line
            status.ok, status.problem, status.fails = True, "", 0
        else:
            status.ok, status.problem, status.fails = False, problem, status.fails + 1
            problems[witness.name] = problem
        if refusal is not None:
            refusals.append(refusal)
    ordered = [state.lines[w.name] for w in witnesses if w.name in state.lines]
    state.note = add_lines(signed.note, [*state.extra, *ordered])
    state.at = format_time(now)
    met = policy is not None and len(ordered) >= policy.quorum
    if met:
        state.witnessed_size, state.witnessed_note = cp.size, state.note
        state.witnessed_at, state.pending_since = format_time(now), ""
    elif policy is not None and cp.size > state.witnessed_size and not state.pending_since:
        state.pending_since = format_time(now)
    if policy is None:
        state.pending_since = ""
    # A quiet round (same checkpoint and lines, no witness asked) rewrites the row only to
    # keep it fresh for serving (FRESH is 10 s): every 5 s, not every second.
    quiet = not due and before[:3] == (cp.size, root, state.extra) and _younger(
        before[3], now, REFRESH_S)
    if not quiet:
        state.save(alog)
    unmet_for = ((now - parse_time(state.pending_since)).total_seconds()
                 if state.pending_since else 0.0)
    return Round(cp.size, tuple(w.name for w in witnesses if w.name in state.lines), met,
                 tuple(refusals), problems, unmet_for, state.pending_since)


def _younger(at: str, now: datetime, seconds: float) -> bool:
    """Whether the time ``at`` (RFC 3339; empty: never) is less than ``seconds`` ago."""
    try:
        return bool(at) and now - parse_time(at) < timedelta(seconds=seconds)
    except ValueError:
        return False


def _due(status: WitnessStatus | None, now: datetime) -> bool:
    """A witness that failed waits 1, 2, 4 … 60 s before the next try."""
    if status is None or status.ok or not status.at:
        return True
    wait = min(MAX_BACKOFF_S, 2.0 ** max(0, status.fails - 1))
    return now >= parse_time(status.at) + timedelta(seconds=wait)


def _submit(alog: AuditLog, signed: SignedCheckpoint, witness: Witness, old: int, post: Post
            ) -> tuple[Witness, str | None, str, Refusal | None, int]:
    """One witness: (witness, its verified line or None, problem, refusal, its size now)."""
    size = signed.checkpoint.size
    caught_up = False
    while True:
        if old > size:
            return (witness, None, f"holds size {old}, above ours ({size})", Refusal(
                witness.name, old, f"the witness cosigned size {old} of this log, which now "
                f"has {size} entries: the log was rolled back, or another view of it was "
                "shown"), old)
        try:
            proof = (alog.prove_consistency(old, size).consistency if 0 < old < size
                     else ())
            status, ctype, text = post(witness.url, format_request(old, proof, signed.note))
        except (httpx.HTTPError, OSError, SealtrailError) as exc:
            return witness, None, f"unreachable: {exc}"[:300], None, old
        if status == 200:
            lines = [ln for ln in text.split("\n") if ln]
            try:
                found = cosignatures(add_lines(signed.note, lines), [witness.key])
            except SealtrailError as exc:
                return witness, None, f"a bad cosignature: {exc}"[:300], None, old
            if witness.name not in found:
                return (witness, None, "answered 200 without a cosignature by its key",
                        None, old)
            if found[witness.name] == 0:  # c2sp.org/tlog-cosignature: the time is not zero
                return witness, None, "cosigned with the time 0", None, old
            line = next(ln for ln in lines if ln.split(" ", 2)[1:2] == [witness.name]
                        and _verifies(signed.note, ln, witness))
            return witness, line, "", None, size
        if status == 409 and ctype.split(";")[0].strip() == SIZE_TYPE:
            told = text.strip()
            theirs = int(told) if told.isdigit() and len(told) <= 20 else -1
            if theirs == old == size:   # it holds another root at our very size
                return (witness, None, f"holds another checkpoint at size {size}",
                        Refusal(witness.name, size, f"the witness cosigned a different "
                                f"root at size {size}: another view of this log exists"),
                        theirs)
            if theirs >= 0 and theirs != old and not caught_up:
                # Our record of it was lost (a crash between its answer and our save) or
                # it was restored: catch it up from the size it holds, once.
                old, caught_up = theirs, True
                continue
        if status == 422:
            return (witness, None, "rejected the consistency proof", Refusal(
                witness.name, old, f"the witness rejected the proof from size {old} to "
                f"{size}: what it cosigned at {old} is not a prefix of this log"), old)
        if status == 404:
            return (witness, None, "does not know this log (run 'sealtrail witness add-log' "
                    "with the log's vkey on the witness)", None, old)
        if status == 403:
            return witness, None, "does not trust this log's key", None, old
        return witness, None, f"answered {status}: {text[:200].strip()}", None, old


def _verifies(note: str, line: str, witness: Witness) -> bool:
    try:
        return witness.name in cosignatures(add_lines(note, [line]), [witness.key])
    except SealtrailError:
        return False


# The last round note each open log checked (signed by its key, root equal to the tree's at
# that size): tile clients poll the checkpoint, and each round's note is checked once.
_checked: WeakKeyDictionary[AuditLog, str] = WeakKeyDictionary()


def served_note(alog: AuditLog, max_age: timedelta, now: datetime) -> str:
    """The checkpoint ``/tlog/{log}/checkpoint`` serves: the latest round's note (with its
    seal and cosignature lines) while it is fresh, else the latest signed checkpoint.

    The state row is not trusted: the round's note is served only if the log's key signed
    it and the tree has its root at its size (an edited row could otherwise hand clients an
    old genuine checkpoint, a rollback view)."""
    state = State.load(alog)
    latest = alog.checkpoint()
    if state.note and state.at:
        try:
            fresh = now - parse_time(state.at) <= max_age
        except ValueError:
            fresh = False
        if fresh and state.size <= latest.checkpoint.size and _genuine(alog, state.note):
            return state.note
    return latest.note


def _genuine(alog: AuditLog, note: str) -> bool:
    """Whether ``note`` is a checkpoint of this log's tree (signed, root at its size)."""
    if _checked.get(alog) == note:
        return True
    try:
        cp = open_checkpoint(note, alog.verifier, alog.origin)
        ok = cp.size > 0 and alog.prove_consistency(cp.size).first_root == cp.root
    except SealtrailError:
        return False
    if ok:
        _checked[alog] = note
    return ok


def witnessed_inclusion(alog: AuditLog, index: int) -> InclusionProof:
    """An inclusion proof of entry ``index`` in the tree of the latest checkpoint that met
    the witness quorum, carrying that checkpoint with its cosignature lines (so a verifier
    with a witness policy checks it offline: ``verify-proof --witness-policy``).

    ConfigError when no checkpoint has been witnessed yet, or not one that covers ``index``.
    The stored note is checked against the log's key and tree before it is handed out.
    """
    state = State.load(alog)
    if state.witnessed_size <= 0 or not state.witnessed_note:
        raise ConfigError("no checkpoint of this log has been witnessed yet")
    if index >= state.witnessed_size:
        raise ConfigError(f"entry {index} is not covered yet by the latest witnessed "
                          f"checkpoint (size {state.witnessed_size}): try again shortly")
    cp = open_checkpoint(state.witnessed_note, alog.verifier, alog.origin)
    proof = alog.prove_inclusion(index, cp.size)
    if proof.root_hash != cp.root:
        raise TamperError("checkpoint", cp.size, "the witnessed checkpoint's root is not the "
                          "log's root at that size")
    return replace(proof, checkpoint=state.witnessed_note)


def status(alog: AuditLog, now: datetime) -> dict[str, Any]:
    """The witnessing of a log as JSON (the API, the console, ``witnesses list``)."""
    policy = load(alog)
    state = State.load(alog)
    return {
        "quorum": policy.quorum if policy else 0,
        "witnesses": [{"name": w.name, "url": w.url, "vkey": w.key.format(),
                       "size": state.witnesses.get(w.name, WitnessStatus()).size,
                       "ok": state.witnesses.get(w.name, WitnessStatus()).ok,
                       "problem": state.witnesses.get(w.name, WitnessStatus()).problem,
                       "checked_at": state.witnesses.get(w.name, WitnessStatus()).at or None,
                       "cosigned_latest": w.name in state.lines}
                      for w in (policy.witnesses if policy else ())],
        "size": alog.size,
        "round_size": state.size if state.size >= 0 else None,
        "witnessed_size": state.witnessed_size if state.witnessed_size >= 0 else None,
        "witnessed_at": state.witnessed_at or None,
        "witnessed_checkpoint": state.witnessed_note or None,
        "pending_since": state.pending_since or None,
        "policy": policy.format() if policy else None,
    }


__all__ = ["ACTION", "STATE_META", "Post", "Refusal", "Round", "State", "WitnessStatus", "add",
           "check_url", "httpx_post", "load", "remove", "run_round", "save", "served_note",
           "set_quorum", "status", "witnessed_inclusion"]
