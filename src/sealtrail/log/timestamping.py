"""RFC 3161 trusted timestamps on a log's checkpoints: the TSA setting, stamping, checking.

**Why.** A checkpoint signed by the log's own key says nothing about *when*: whoever holds the
key can sign any state with any date. A time-stamp authority (a third party) signs the digest of
a checkpoint body with its own time, so an auditor can show that the log had this size and root
no later than ``genTime`` (:mod:`sealtrail.core.tsp` says what is stamped and checked).

**The setting** (URL, the CA certificates that anchor the TSA's chain, how often to stamp) is
stored as :mod:`sealtrail.log.retention` stores its policy: ``commit_change`` writes the
``meta`` copy (:data:`CONFIG_META`, compact JSON; empty once removed) and appends
``sealtrail.timestamps.set`` naming the copy's digest in ``target.id``, in one transaction, with
the entry's index beside it (:data:`CONFIG_AT_META`). Removing is the same action with the
empty text, so one action and one digest describe every change (the shape of
``log/settings.py``'s ``DIGESTED`` settings, which ``verify`` checks). :func:`load_config` uses
the stored copy only when that entry names its digest and no later timestamp-setting entry
exists; anything else is a TamperError (a TSA URL or CA edited into the table would send
checkpoints elsewhere or make stamps look trusted).

**A stamp** is one or more entries ``sealtrail.timestamp`` (reserved: only the engine writes
them) appended with ``append_own`` after the token verified. Everything verify needs stays in
clear in an encrypted log, whatever its field policy seals (``OWN_CLEAR_FIELDS`` in
core/reserved.py):

- ``target.type`` ``checkpoint``; ``target.id`` ``<size> <base64 root> <k>/<n> sha256:<hex>``:
  the stamped tree head, which part of the token this entry holds, and the token's digest;
- ``reason``: part *k* of the token, base64 DER. A token with its certificates is one to a few
  kilobytes (an entry's ``reason`` holds 4096 characters), so a large one is split over
  entries appended together, atomically; the digest ties them together;
- ``time``: the TSA's ``genTime``.

**Failure.** A TSA that is down, slow, answers junk or refuses is a :class:`TsaError`: nothing
is recorded, and the service's job tries again at its next run (a checkpoint not stamped now
is covered by the next stamp, of a later state that contains it). Retention may purge a stamp's
entries (their leaf hashes stay): :func:`verify_timestamps` then reports the stamp as purged.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, ClassVar, Final

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from sealtrail.core import canonical
from sealtrail.core.checkpoint import Checkpoint
from sealtrail.core.errors import (
    ConfigError,
    SealtrailError,
    TamperError,
    ValidationError,
)
from sealtrail.core.timefmt import format_time
from sealtrail.core.tsp import (
    TimestampError,
    TimestampInfo,
    build_request,
    checkpoint_imprint,
    load_anchors,
    parse_response,
    verify_token,
)
from sealtrail.log.auditlog import AuditLog, Entry, Receipt
from sealtrail.log.changes import SetSettings
from sealtrail.log.proving import root_at
from sealtrail.log.settings import digest

CONFIG_META: Final = "tsa_config"        # the stored setting (compact JSON; "" once removed)
CONFIG_AT_META: Final = "tsa_config_at"  # the index of the entry that set it
ACTION_SET: Final = "sealtrail.timestamps.set"
ACTION_STAMP: Final = "sealtrail.timestamp"
DEFAULT_EVERY: Final = 3600
PART_CHARS: Final = 4000            # base64 characters of token per entry (reason: 4096 at most)
MAX_PARTS: Final = 8
MAX_RESPONSE: Final = 64 * 1024     # bytes read from a TSA at most (a token is a few KiB)
TIMEOUT: Final = 10.0               # seconds, for each of connect / read / write
MAX_SKEW: Final = timedelta(hours=1)
_MARK: Final = b"sealtrail.timestamp"  # in every timestamp entry's leaf (action is clear)
_TARGET = re.compile(r"(0|[1-9]\d{0,19}) ([A-Za-z0-9+/]{43}=) ([1-9])/([1-9]) "
                     r"sha256:([0-9a-f]{64})\Z")
ACTOR: Final = {"id": "sealtrail-service", "type": "service", "name": "timestamp job"}


class TsaError(SealtrailError):
    """The TSA could not be asked or did not answer with a token that verifies; nothing was
    recorded (the job asks again at its next run)."""

    exit_code: ClassVar[int] = 1
    http_status: ClassVar[int] = 502

    def public_message(self) -> str:
        return str(self)


# -- the setting ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class TsaConfig:
    """Where to ask (``url``), which CAs anchor the TSA's chain (``ca_pem``), how often
    (``every`` seconds at most once, and only when the log grew)."""

    url: str
    ca_pem: str
    every: int = DEFAULT_EVERY

    def __post_init__(self) -> None:
        if not re.fullmatch(r"https?://[^\s/?#]+[^\s]*", self.url) or len(self.url) > 2048:
            raise ValidationError("url", f"{self.url!r} is not an http:// or https:// URL")
        # The URL is recorded in the log and shown: credentials have no place in it.
        if "@" in self.url.split("://", 1)[1].split("/", 1)[0]:
            raise ValidationError("url", "a TSA URL must not carry credentials (user:password@): "
                                  "it is recorded in the log")
        if not isinstance(self.every, int) or not 1 <= self.every <= 366 * 86400:
            raise ValidationError("every", "seconds between stamps: 1 to 31622400")
        try:
            load_anchors(self.ca_pem.encode())
        except TimestampError as exc:
            raise ValidationError("ca_cert", str(exc)) from exc

    def anchors(self) -> list[x509.Certificate]:
        """The configured trust anchors."""
        return load_anchors(self.ca_pem.encode())

    def to_json(self) -> dict[str, Any]:
        """The setting as stored (and shown by ``timestamps show``)."""
        return {"url": self.url, "every": self.every, "ca_pem": self.ca_pem}

    @classmethod
    def parse(cls, doc: Mapping[str, Any]) -> TsaConfig:
        """The setting from its stored JSON; errors name the field."""
        if not isinstance(doc, Mapping):
            raise ValidationError("tsa_config", "a JSON object")
        url, pem, every = doc.get("url"), doc.get("ca_pem"), doc.get("every", DEFAULT_EVERY)
        if not isinstance(url, str):
            raise ValidationError("url", "missing")
        if not isinstance(pem, str):
            raise ValidationError("ca_pem", "missing")
        if not isinstance(every, int) or isinstance(every, bool):
            raise ValidationError("every", "an integer number of seconds")
        return cls(url, pem, every)

    def describe_anchors(self) -> list[str]:
        """Each anchor's subject and SHA-256 fingerprint (what an auditor compares)."""
        return [f"{c.subject.rfc4514_string()} sha256:{c.fingerprint(hashes.SHA256()).hex()}"
                for c in self.anchors()]


def set_config(alog: AuditLog, config: TsaConfig, *, actor: Mapping[str, Any]) -> Receipt:
    """Store the TSA setting; the change is an entry (``sealtrail.timestamps.set``) in the same
    commit, naming the stored text's digest (:func:`load_config` checks it)."""
    text = canonical.compact_json(config.to_json(), ascii=True)
    event = {"actor": dict(actor), "action": ACTION_SET, "outcome": "success",
             "category": "configuration",
             "target": {"type": "tsa_config", "id": f"tsa@{digest(text)}"},
             "reason": (f"trusted timestamps from {config.url} every {config.every}s; trust "
                        f"anchors: {'; '.join(config.describe_anchors())}")[:4096]}
    return alog.commit_change(event, SetSettings({CONFIG_META: text}, index_key=CONFIG_AT_META))


def remove_config(alog: AuditLog, *, actor: Mapping[str, Any]) -> Receipt:
    """Stop stamping: the stored setting becomes empty, by a ``sealtrail.timestamps.set`` entry
    naming the empty text's digest. Recorded stamps stay."""
    if load_config(alog) is None:
        raise ConfigError("this log has no timestamp authority configured")
    event = {"actor": dict(actor), "action": ACTION_SET, "outcome": "success",
             "category": "configuration",
             "target": {"type": "tsa_config", "id": f"none@{digest('')}"},
             "reason": "trusted timestamps turned off"}
    return alog.commit_change(event, SetSettings({CONFIG_META: ""}, index_key=CONFIG_AT_META))


# -- reading what the log recorded ----------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Stamp:
    """One recorded timestamp: the stamped head (``size``, ``root``), the token, where."""

    index: int            # the entry holding the token's first part
    last: int             # the entry holding its last part
    size: int
    root: bytes
    token: bytes | None   # None when a part was purged or is missing
    problem: str = ""     # why the token could not be put together


@dataclass
class Tracker:
    """What the log's own timestamp entries say, read incrementally: the latest setting entry,
    the stamps. Entries are append-only, so a tracker kept between runs (the service's job
    keeps one per log) reads each entry once."""

    scanned: int = 0
    config_at: int | None = None
    config_target: str = ""
    stamps: list[Stamp] = field(default_factory=list)
    _parts: dict[str, dict[int, tuple[int, str, int, bytes, int]]] = field(default_factory=dict)

    def follow(self, alog: AuditLog) -> None:
        """Read the entries appended since the last call."""
        size = alog.size
        if size < self.scanned:
            raise TamperError("truncated", size, f"the log has {size} entries, fewer than the "
                              f"{self.scanned} already read")
        for entry in alog.entries(self.scanned, size):
            if _MARK in entry.leaf:
                self._take(entry)
        self.scanned = size

    def _take(self, entry: Entry) -> None:
        event = entry.event()
        action = event.get("action")
        target = event.get("target") or {}
        if action == ACTION_SET:
            self.config_at = entry.index
            self.config_target = str(target.get("id", ""))
        elif action == ACTION_STAMP:
            self._take_part(entry.index, str(target.get("id", "")), event.get("reason"))

    def _take_part(self, index: int, target: str, reason: object) -> None:
        m = _TARGET.match(target)
        if m is None:
            self.stamps.append(Stamp(index, index, 0, b"\0" * 32, None,
                                     f"entry {index}: target.id {target[:80]!r} is not "
                                     "'<size> <root> <k>/<n> sha256:<hex>'"))
            return
        size, root, k, n, hexdigest = (int(m[1]), base64.b64decode(m[2]), int(m[3]),
                                       int(m[4]), m[5])
        if k > n or not isinstance(reason, str):
            self.stamps.append(Stamp(index, index, size, root, None, f"entry {index}: "
                                     "part number or token text malformed"))
            return
        parts = self._parts.setdefault(hexdigest, {})
        parts[k] = (index, reason, size, root, n)
        if len(parts) < n:
            return
        del self._parts[hexdigest]
        ordered = [parts[i] for i in range(1, n + 1)]
        first, last = ordered[0][0], ordered[-1][0]
        if any(p[2] != size or p[3] != root or p[4] != n for p in ordered):
            self.stamps.append(Stamp(first, last, size, root, None, f"entries {first}..{last}: "
                                     "the token's parts name different heads"))
            return
        try:
            token = base64.b64decode("".join(p[1] for p in ordered), validate=True)
        except ValueError:
            token = b""
        if hashlib.sha256(token).hexdigest() != hexdigest:
            self.stamps.append(Stamp(first, last, size, root, None, f"entries {first}..{last}: "
                                     "the token does not have the digest its entries name"))
            return
        self.stamps.append(Stamp(first, last, size, root, token))

    def incomplete(self) -> list[Stamp]:
        """Stamps some part of which is missing (purged by retention, or removed)."""
        out = []
        for parts in self._parts.values():
            some = sorted(parts.values())
            index, _, size, root, n = some[0]
            out.append(Stamp(index, some[-1][0], size, root, None,
                             f"entries from {index}: {len(parts)} of the token's {n} parts "
                             "are in the log (the rest were purged or removed)"))
        return out

    def last_stamp(self) -> Stamp | None:
        """The latest complete stamp read so far."""
        return self.stamps[-1] if self.stamps else None


def load_config(alog: AuditLog, tracker: Tracker | None = None) -> TsaConfig | None:
    """The log's TSA setting (None: not configured, or removed).

    The stored copy is used only if the latest ``sealtrail.timestamps.set`` entry of the log is
    the one whose index is stored beside it and names its digest; otherwise TamperError (the
    settings table was edited). ``tracker`` (kept between calls) saves reading the whole log.
    """
    tracker = tracker if tracker is not None else Tracker()
    tracker.follow(alog)
    meta = alog.store.meta()
    text = meta.get(CONFIG_META)
    at = meta.get(CONFIG_AT_META)
    if tracker.config_at is None:
        if text is None and at is None:
            return None
        raise TamperError("settings", 0, "a timestamp authority setting is stored but no entry "
                          "of the log set it (the settings table was edited): refusing to use "
                          "it; run sealtrail verify")
    where = tracker.config_at
    if text is None or at != str(where):
        raise TamperError("settings", where, "the stored timestamp authority setting does not "
                          f"point at entry {where}, the latest that set one (the settings "
                          "table was edited)")
    if tracker.config_target.rpartition("@")[2] != digest(text):
        raise TamperError("settings", where, "the stored timestamp authority setting differs "
                          f"from the one entry {where} set (the settings table was edited)")
    if text == "":
        return None  # removed
    return TsaConfig.parse(json.loads(text))


# -- stamping -------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Stamped:
    """A stamp just recorded: its entries, the head it stamps and what the TSA said."""

    index: int
    parts: int
    size: int
    root: bytes
    info: TimestampInfo


def fetch(url: str, request: bytes, *, timeout: float = TIMEOUT,
          limit: int = MAX_RESPONSE) -> bytes:
    """POST a DER TimeStampReq (``application/timestamp-query``, RFC 3161 3.4) and return the
    DER answer; TsaError names the URL and what went wrong. No redirects are followed (a
    TSA URL is configured, not discovered), and no more than ``limit`` bytes are read."""
    headers = {"Content-Type": "application/timestamp-query",
               "Accept": "application/timestamp-reply"}
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False) as client, \
                client.stream("POST", url, content=request, headers=headers) as resp:
            if resp.status_code != 200:
                raise TsaError(f"TSA {url}: HTTP {resp.status_code}")
            kind = resp.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind not in ("application/timestamp-reply", "application/timestamp-response"):
                raise TsaError(f"TSA {url}: answered {kind or 'no content type'}, not "
                               "application/timestamp-reply")
            data = bytearray()
            # httpx's timeout bounds each read, not the whole answer: a TSA trickling a byte
            # at a time would hold the job for hours.
            deadline = time.monotonic() + 2 * timeout
            for chunk in resp.iter_bytes():
                data += chunk
                if len(data) > limit:
                    raise TsaError(f"TSA {url}: the answer is larger than {limit} bytes")
                if time.monotonic() > deadline:
                    raise TsaError(f"TSA {url}: no whole answer within {2 * timeout:.0f} s")
            return bytes(data)
    except httpx.HTTPError as exc:
        raise TsaError(f"TSA {url}: unreachable ({type(exc).__name__}: {exc})") from exc


def head_body(origin: str, size: int, root: bytes) -> str:
    """The checkpoint body a stamp's imprint is the SHA-256 of (origin, size, root lines)."""
    return Checkpoint(origin, size, root).format()


def stamp(alog: AuditLog, now: datetime, *, config: TsaConfig | None = None,
          actor: Mapping[str, Any] = ACTOR) -> Stamped:
    """Ask the configured TSA for a token over the log's current checkpoint, verify it fully
    (nonce included), and record it (module docstring); TsaError when nothing was recorded.

    ``now`` is this host's clock: a genTime more than :data:`MAX_SKEW` away from it means one
    of the two clocks is wrong, and such a stamp would be misleading evidence, so it is refused.
    """
    config = config if config is not None else load_config(alog)
    if config is None:
        raise ConfigError("this log has no timestamp authority: set one with 'sealtrail "
                          "timestamps set URL --ca-cert FILE'")
    cp = alog.checkpoint().checkpoint
    imprint = checkpoint_imprint(head_body(cp.origin, cp.size, cp.root))
    nonce = secrets.randbits(64) | 1 << 63  # 64 random bits, never 0
    answer = fetch(config.url, build_request(imprint, nonce))
    try:
        token = parse_response(answer)
        info = verify_token(token, imprint, config.anchors(), nonce=nonce)
    except TimestampError as exc:
        raise TsaError(f"TSA {config.url}: {exc}") from exc
    if abs(info.gen_time - now) > MAX_SKEW:
        raise TsaError(f"TSA {config.url}: genTime {info.gen_time.isoformat()} is more than "
                       f"{MAX_SKEW} away from this host's clock ({now.isoformat()}): one of "
                       "the clocks is wrong; not recorded")
    events = stamp_events(cp.size, cp.root, token, info.gen_time, actor)
    for event in events:
        shown, _ = alog.redact_preview(event)
        if shown.get("reason") != event["reason"]:
            raise TsaError("the log's redaction would alter this token's text (it happens to "
                           "look like a secret); not recorded: the next stamp asks again")
    receipts = alog.append_own(events)
    return Stamped(receipts[0].index, len(receipts), cp.size, cp.root, info)


def stamp_events(size: int, root: bytes, token: bytes, gen_time: datetime,
                 actor: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The entries that record one token (module docstring)."""
    text = base64.b64encode(token).decode()
    parts = [text[i:i + PART_CHARS] for i in range(0, len(text), PART_CHARS)]
    if len(parts) > MAX_PARTS:
        raise TsaError(f"the token is {len(token)} bytes, more than {MAX_PARTS} entries hold")
    token_digest = hashlib.sha256(token).hexdigest()
    root_text = base64.b64encode(root).decode()
    return [{"actor": dict(actor), "action": ACTION_STAMP, "outcome": "success",
             "category": "system", "time": format_time(gen_time),
             "target": {"type": "checkpoint",
                        "id": f"{size} {root_text} {k}/{len(parts)} sha256:{token_digest}"},
             "reason": part} for k, part in enumerate(parts, 1)]


def recorded(alog: AuditLog, tracker: Tracker | None = None) -> list[Stamp]:
    """Every stamp the log records, in log order (incomplete ones with their problem)."""
    tracker = tracker if tracker is not None else Tracker()
    tracker.follow(alog)
    return sorted([*tracker.stamps, *tracker.incomplete()], key=lambda s: s.index)


# -- verifying ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Checked:
    """One recorded stamp, checked: the head it stamps, when, by whom, or what is wrong."""

    index: int
    size: int
    root: bytes
    gen_time: datetime | None = None
    tsa: str = ""
    serial: int | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        """Whether the stamp verified."""
        return not self.problem

    def to_json(self) -> dict[str, Any]:
        """For ``timestamps list`` / ``verify`` (JSON Lines)."""
        return {"index": self.index, "size": self.size,
                "root": base64.b64encode(self.root).decode(),
                "gen_time": format_time(self.gen_time) if self.gen_time else None,
                "tsa": self.tsa or None, "serial": self.serial, "ok": self.ok,
                **({"problem": self.problem} if self.problem else {})}


def check_stamp(alog: AuditLog, item: Stamp, anchors: Iterable[x509.Certificate],
                crls: Sequence[x509.CertificateRevocationList] | None = None) -> Checked:
    """One stamp against the trust anchors and the log's tree (see :func:`verify_timestamps`)."""
    base = Checked(item.index, item.size, item.root)
    if item.token is None:
        return replace(base, problem=item.problem)
    try:
        info = verify_token(item.token, checkpoint_imprint(
            head_body(alog.origin, item.size, item.root)), list(anchors), crls=crls)
    except TimestampError as exc:
        return replace(base, problem=f"entry {item.index}: {exc}")
    done = replace(base, gen_time=info.gen_time, tsa=info.tsa, serial=info.serial)
    if item.index < item.size:
        return replace(done, problem=f"entry {item.index}: records a stamp of size {item.size}, "
                     "which it is part of (a stamp is recorded after the head it stamps)")
    if item.size > alog.size:
        return replace(done, problem=f"the TSA stamped size {item.size} at "
                     f"{info.gen_time.isoformat()} but the log now has {alog.size} entries "
                     "(it was truncated)")
    have = root_at(alog.store, item.size)
    if have != item.root:
        return replace(done, problem=f"the tree at size {item.size} has root "
                     f"{base64.b64encode(have).decode()}, but the TSA stamped root "
                     f"{base64.b64encode(item.root).decode()} at {info.gen_time.isoformat()}: "
                     "the log was rewritten")
    return done


def verify_timestamps(alog: AuditLog, anchors: Iterable[x509.Certificate],
                      crls: Sequence[x509.CertificateRevocationList] | None = None
                      ) -> list[Checked]:
    """Check every recorded stamp: the token verifies fully (:func:`sealtrail.core.tsp.
    verify_token`) against ``anchors`` (the auditor's, never the log's stored setting) over
    the body of (origin, size, root) it records, and the log's tree at that size still has
    that root. One result per stamp, in log order; none raises for a bad stamp.

    ``crls``: the auditor's certificate revocation lists; each token's chain must then be
    covered by them and not revoked in a way that reaches it (step 8 of
    :mod:`sealtrail.core.tsp`).

    The tree is read from its stored nodes: ``sealtrail verify`` checks that the entries
    match them, so run both.
    """
    trusted = list(anchors)
    return [check_stamp(alog, item, trusted, crls) for item in recorded(alog)]


__all__ = ["ACTION_SET", "ACTION_STAMP", "CONFIG_AT_META", "CONFIG_META",
           "Checked", "Stamp", "Stamped", "Tracker", "TsaConfig", "TsaError",
           "fetch", "load_config", "recorded", "remove_config",
           "set_config", "stamp", "stamp_events", "verify_timestamps"]
