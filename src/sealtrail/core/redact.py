"""Redaction at ingest: secrets are replaced before an event is sequenced, so none is stored.

A log that nobody can change is the worst place for a leaked password: it could never be
removed. :class:`Redactor` replaces every secret it finds with a marker and says what it found
(:class:`Finding`: a field path and a kind). In ``mask`` mode the marker is
``[redacted:<kind>]``; in ``hash`` mode it is ``[redacted:<kind>:hmac-sha256:<64 hex>]``, the
HMAC-SHA256 of the secret's UTF-8 bytes under the log's redaction key, so that equal secrets
give equal markers and an investigator can still see that two events carried the same token
(as Vault's audit devices do) without anyone learning it.

What is scanned: every string of the event except ``id``, ``time``, ``received_at``,
``action``, ``outcome`` and ``category`` (validated formats that cannot hold free text),
``actor.ip`` and ``source.ip`` (validated IP addresses) and ``sealed`` (ciphertext written by
the log). Strings in ``metadata`` and ``changes`` are scanned at any depth; object keys are
names, never redacted, but decide whether their value is a secret. A field added to the event
model later is scanned unless it is named here (the walk follows the model, not a list).

What is a secret, and why:

- **a value under a secret field name** (kind ``password``). The key, ASCII-lowercased with
  ``_ - .`` and spaces removed, *contains* ``password passwd passphrase secret token apikey
  authorization cookie privatekey credential cvv cvc cardnumber creditcard`` or *is* ``pwd pin
  auth session sessionid sid pan otp`` (short words are secrets only as whole names: ``pin`` is,
  ``shipping`` is not). Keys that only count or describe a secret are not secret names: those
  ending in ``count``, ``type``, ``kind``, ``format``, ``length``, ``size``, ``expiry``,
  ``expires``/``expiresat``/``expiresin``/``expiration``, ``ttl``, ``policy``, ``strength``,
  ``enabled``, ``required``, ``changed`` and ``changedat``/``createdat``/``updatedat``/
  ``rotatedat``/``lastused``/``lastusedat`` (``password_changed_at`` is audit data, not a
  password; ``password_reset`` stays secret, as reset tokens travel under that name), and two
  whole names of other systems' audit records that describe a check, not a secret
  (``authorizationInfo``, Google Cloud's permission checks; ``token_scopes``, GitHub's). The whole
  value is replaced, whatever it is: a string, number or bool becomes the marker (hashed over
  its JSON text when not a string), and so does an object or array. ``null`` stays ``null``.
- **``name=value`` / ``name: value`` in free text** where ``name`` is a secret field name by the
  rule above (kind ``password``, or ``api_key`` when the name contains ``apikey``): only the
  value is replaced (``password=[redacted:password]``). Quoted values end at the closing quote
  (or the end of the line); bare ones at whitespace, a quote, ``&``, ``,`` or ``;`` (query
  strings, log lines, JSON in text). An auth scheme after the name (``Authorization: Bearer x``)
  is kept in clear.
- **card numbers** (``card``): 13-19 digits, in groups separated by single spaces or dashes,
  that pass the Luhn check and are not glued to other letters or digits. Luhn rejects nine in
  ten random digit runs, so order numbers and compact timestamps usually stay; one in ten does
  not, which is the price of never storing a card number. No card starts right after ``+``
  (international phone numbers), and none lies inside a UUID. Every Luhn-valid window of a longer
  space-grouped run is replaced, so a card next to another number is still caught.
- **``Bearer <token>``** (``bearer``, any case): the token, unless it is a word of fewer than
  16 letters and nothing else (``missing bearer token`` is prose; real tokens are longer or
  hold digits and punctuation).
- **``Basic <base64>``** (``basic``): the credentials, when they decode to ``user:password``
  (so ``basic plan`` is not one).
- **JWTs** (``jwt``): three base64url parts, the first two starting ``eyJ`` (``{"``).
- **PEM private keys** (``private_key``): ``-----BEGIN ... PRIVATE KEY-----`` through the
  matching END line, or to the end of the string when it was cut off.
- **API keys of known shapes** (``api_key``): AWS key ids (``AKIA``/``ASIA`` + 16), GitHub
  (``ghp_``/``gho_``/``ghu_``/``ghs_``/``ghr_`` + 36, ``github_pat_``), Slack (``xoxb-``...),
  Stripe (``sk_live_``/``sk_test_``/``rk_live_``...), Google (``AIza`` + 35) and OpenAI-style
  (``sk-`` + 20). Vendors chose these prefixes so that scanners can find leaked keys.
- **passwords in URLs** (``url_password``): ``scheme://user:pass@host`` loses ``pass`` only.

Each marker is one :class:`Finding`. Overlapping finds in one string become one marker, of the
most specific kind (``token=<jwt>`` is a ``jwt``). Markers are never redacted again: running the
redactor twice changes nothing.

Limits: a string that would outgrow its field's maximum length once markers are in (an
``actor.id`` holds 256 characters) becomes a single marker, hashed over the whole string. If the
redacted event would exceed ``MAX_EVENT_BYTES`` and be larger than the original, every string
with a secret becomes a single marker; if even that does not fit, :class:`ValidationError` is
raised and nothing is stored.

The fast path (most events carry no secret): the event is encoded once, folded (ASCII
lowercase, ``_ - .`` and spaces deleted, digits turned into ``0``) by one ``bytes.translate``,
and checked by one precompiled regex and one substring test (``0`` * 13: a card's digits).
Together they are a superset of every detector above, so when neither hits the event is
returned as it is, the same object. The regex starts every alternative with a rare *anchor*
byte and checks the rest of the word behind it (folding makes the lookbehinds fixed-width), so
the regex engine tries a match at a few bytes of an event instead of at all of them; the digit
test is a substring search because digits are the commonest bytes of an event. The same check
runs on each string of the structured walk before the detectors do. No detector can backtrack
catastrophically: each starts at a boundary (a literal or a lookbehind), so a match is never
retried inside a run it has already scanned, and where one repetition is nested in another
(digit groups, key bodies) a run splits into rounds in only one way.
"""

from __future__ import annotations

import binascii
import functools
import hmac
import re
from dataclasses import dataclass
from typing import Any, Final, Literal

import msgspec
import msgspec.inspect as mi

from sealtrail.core.canonical import encode_json
from sealtrail.core.errors import ValidationError
from sealtrail.core.event import MAX_EVENT_BYTES, MAX_KEY_CHARS, Actor, Event, Source

__all__ = ["KINDS", "Finding", "Mode", "Redactor"]

Mode = Literal["mask", "hash"]

# Most specific first: when finds overlap, the merged marker takes the earliest kind here.
KINDS: Final = ("private_key", "bearer", "basic", "jwt", "api_key", "url_password", "card",
                "password")
_PRIVATE_KEY, _BEARER, _BASIC, _JWT, _API_KEY, _URL_PASSWORD, _CARD, _PASSWORD = range(8)

_MIN_HASH_KEY_BYTES: Final = 32


@dataclass(frozen=True, slots=True)
class Finding:
    """One secret replaced: where (``metadata.password``, ``actor.user_agent``) and what kind."""

    path: str
    kind: str


# -- secret field names ----------------------------------------------------------------------

_CONTAINS: Final = ("password", "passwd", "passphrase", "secret", "token", "apikey",
                    "authorization", "cookie", "privatekey", "credential", "cvv", "cvc",
                    "cardnumber", "creditcard")
_EQUALS: Final = frozenset({"pwd", "pin", "auth", "session", "sessionid", "sid", "pan", "otp"})
_DESCRIBES: Final = ("count", "counts", "type", "types", "kind", "format", "length", "len",
                     "size", "expiry", "expires", "expiresat", "expiresin", "expiration", "ttl",
                     "policy", "strength", "enabled", "required", "changed", "changedat",
                     "createdat", "updatedat", "rotatedat", "lastused", "lastusedat")
# Whole names that contain a secret word but name what was checked or granted, not a secret:
# Google Cloud audit records' list of permission checks, GitHub's scopes of a token.
_NOT_SECRETS: Final = frozenset({"authorizationinfo", "tokenscopes"})
_UPPER: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
# ASCII only, like the fold of the fast path: str.lower() would turn the Kelvin sign into "k".
_KEY_FOLD: Final = str.maketrans(_UPPER, _UPPER.lower(), "_-. ")


def _names_a_secret(key: str) -> bool:
    name = key.translate(_KEY_FOLD)
    if name in _EQUALS:
        return True
    if name in _NOT_SECRETS:
        return False
    return any(word in name for word in _CONTAINS) and not name.endswith(_DESCRIBES)


_names_a_secret_cached = functools.lru_cache(maxsize=4096)(_names_a_secret)


def _is_secret_name(key: str) -> bool:
    """True when ``key`` names a secret (rules in the module docstring).

    Keys recur, so answers are cached, but only for names as long as a key may be: a name
    found in free text can be 32 KiB long, and 4096 of those would pin 128 MiB.
    """
    if len(key) <= MAX_KEY_CHARS:
        return _names_a_secret_cached(key)
    return _names_a_secret(key)


# -- the fast check ----------------------------------------------------------------------------

_FOLD: Final = bytes.maketrans(_UPPER.encode() + b"0123456789",
                               _UPPER.lower().encode() + b"0" * 10)
_SEPARATORS: Final = b"-_. "
_CARD_DIGITS: Final = b"0" * 13

# Over folded bytes. Each alternative starts with an anchor byte (the rarest letter of its words,
# most frequent anchors first), then checks the rest with literals and character classes first
# (the regex engine skips a failing branch on its first byte) and lookbehinds last. A whole-name
# word (pin, sid...) must be followed by what ends a name: a quote, a backslash (an escaped quote
# or tab in JSON), a tab, ':' or '='. The category value "authorization" is not a name.
_TRIGGER: Final = re.compile(rb"""
      s (?: ecret | ession (?:id)? [\t\\"':=] | id [\t\\"':=]   # secret; session, sid
          | ia (?<=asia) [0a-z]{16} )                            # ASIA key id
    | d (?: e (?<=crede) ntial | i (?<=credi) tcard )            # credential, creditcard
    | p (?: [ia] n [\t\\"':=] | [\t\\"':=] (?<=otp.) )          # pin, pan; otp
    | b (?: earer | asic | er (?<=cardnumber) )
    | // (?<=://) [^/?\#"]* @                                    # user:password@ in a URL
    | v [cv] (?<=cv.)                                            # cvv, cvc
    | h (?: r (?<=passphr) | [\t\\"':=] (?<=auth.)              # passphrase; auth
          | [pousr] (?<=gh.) [0a-z]{36} | ubpat (?<=githubpat) )     # GitHub
    | x [abprs] (?<=xox.)                                        # Slack
    | k (?: en (?<=token) | ey (?: (?<=apikey) | (?<=privatekey) ) | ie (?<=cookie)
          | ia (?<=akia) [0a-z]{16} | (?:live|test) (?<=[rs]klive|[rs]ktest)
          | (?<=sk) [0a-z]{20} )
    | z (?: a (?<=aiza) | (?<=authoriz) ation (?!"[],}]) )       # Google key; authorization
    | w (?: (?<=passw) | d [\t\\"':=] (?<=pwd.) )                # password, passwd; pwd
    | j (?<=eyj)                                                 # JWT
    """, re.VERBOSE)


def _may_hold_secret(raw: bytes) -> tuple[bool, bool]:
    """(any detector but cards may match, the card detector may match) for UTF-8 or JSON bytes."""
    folded = raw.translate(_FOLD, _SEPARATORS)
    return _TRIGGER.search(folded) is not None, _CARD_DIGITS in folded


# -- detectors (over str) ------------------------------------------------------------------------

_A = re.ASCII
_PEM_RX: Final = re.compile(
    r"-----BEGIN ([A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?)-----(?:.*?-----END \1-----|.*)",
    re.DOTALL)
_JWT_RX: Final = re.compile(
    r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*", _A)
_BEARER_RX: Final = re.compile(
    r"(?<![A-Za-z0-9])bearer[ \t]+([A-Za-z0-9._~+/-]+=*)", _A | re.IGNORECASE)
_BASIC_RX: Final = re.compile(
    r"(?<![A-Za-z0-9])basic[ \t]+([A-Za-z0-9+/]+={0,2})(?![A-Za-z0-9+/=])", _A | re.IGNORECASE)
_API_KEY_RX: Final = re.compile(r"""
    (?<![A-Za-z0-9]) (?:
        (?:AKIA|ASIA) [0-9A-Z]{16} (?![0-9A-Za-z])
      | gh[pousr]_ [A-Za-z0-9]{36,}
      | github_pat_ [A-Za-z0-9_]{22,}
      | xox[abprs]- [A-Za-z0-9-]{10,}
      | [rs]k_(?:live|test)_ [A-Za-z0-9]{10,}
      | AIza [0-9A-Za-z_-]{35}
      | sk- (?:[A-Za-z0-9][_-]?){20,}
    )""", _A | re.VERBOSE)
# No whitespace, control character, quote or backslash in userinfo: a URL cannot hold them raw.
_URL_RX: Final = re.compile(
    r'://[^\x00-\x20\x7f:/?#@"\\]*:([^\x00-\x20\x7f/?#"\\]+)@', _A)
# A run of digit groups joined by single spaces or dashes, not glued to letters or digits.
_DIGIT_RUN: Final = re.compile(r"(?<![0-9A-Za-z])[0-9]+(?:[ -][0-9]+)*(?![0-9A-Za-z])", _A)
_DIGIT_GROUP: Final = re.compile(r"[0-9]+", _A)
_UUID: Final = re.compile(
    r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}", _A)
# A name, an optional closing quote, then ':' or '='. The value is matched only after a secret
# name: matching one after every name would rescan a long value once per name inside it.
_KV_NAME: Final = re.compile(
    r"""(?<![A-Za-z0-9_.-])([A-Za-z0-9_.-]+)(?:\\?["'])?[ \t]*[:=][ \t]*""", _A)
# An optional auth scheme (kept in clear), then a quoted value (to the closing quote or the end
# of the line) or a bare one.
_KV_VALUE: Final = re.compile(r"""
    (?:(?:bearer|basic|token|digest|negotiate)[ \t]+)?
    (?: (?P<q>\\?["']) (?P<quoted>(?:(?!(?P=q))[^\r\n])*) | (?P<bare>[^\s"'&,;]+) )
    """, _A | re.VERBOSE | re.IGNORECASE)
_MARKER: Final = re.compile(
    r"\[redacted:(?:" + "|".join(KINDS) + r")(?::hmac-sha256:[0-9a-f]{64})?\]", _A)

_DOUBLED: Final = tuple((2 * d) - 9 if d > 4 else 2 * d for d in range(10))

Span = tuple[int, int, int]  # start, end, index into KINDS


def _cards(text: str, out: list[Span]) -> None:
    """Luhn-valid windows of 13-19 digits, aligned on the groups of each digit run."""
    windows: list[Span] = []
    for run in _DIGIT_RUN.finditer(text):
        start = run.start()
        if run.end() - start < 13:
            continue
        phone = start > 0 and text[start - 1] == "+"  # "+44 20 ...": no card starts there
        groups = [(g.start() + start, g.end() + start) for g in _DIGIT_GROUP.finditer(run[0])]
        digits = [int(c) for c in run[0].replace(" ", "").replace("-", "")]
        if len(digits) < 13:
            continue
        # Prefix sums by index parity, plain and doubled: any window's Luhn sum in O(1), so a
        # long run of one-digit groups costs linear time, not quadratic.
        plain = [[0], [0]]
        doubled = [[0], [0]]
        for i, d in enumerate(digits):
            for p in (0, 1):
                plain[p].append(plain[p][-1] + (d if i % 2 == p else 0))
                doubled[p].append(doubled[p][-1] + (_DOUBLED[d] if i % 2 == p else 0))
        first = 0  # index in ``digits`` of group i's first digit
        for i, (g_start, g_end) in enumerate(groups):
            last = first
            if i == 0 and phone:
                first += g_end - g_start
                continue
            for j in range(i, len(groups)):
                last += groups[j][1] - groups[j][0]
                count = last - first
                if count > 19:
                    break
                if count >= 13:
                    keep = (last - 1) % 2  # the check digit's parity: not doubled
                    total = (plain[keep][last] - plain[keep][first]
                             + doubled[1 - keep][last] - doubled[1 - keep][first])
                    if total % 10 == 0:
                        windows.append((g_start, groups[j][1], _CARD))
            first += g_end - g_start
    if windows:
        uuids = [m.span() for m in _UUID.finditer(text)]
        out.extend(w for w in windows if not any(s < w[1] and w[0] < e for s, e in uuids))


def _is_basic_credential(b64: str) -> bool:
    try:
        return b":" in binascii.a2b_base64(b64, strict_mode=True)
    except binascii.Error:
        return False


def _find(text: str, prefilter: bool = True) -> list[Span]:
    """The secrets in ``text``: merged, non-overlapping spans, markers left out; [] if none."""
    if prefilter:
        others, digits = _may_hold_secret(text.encode("utf-8", "surrogatepass"))
    else:
        others = digits = True
    spans: list[Span] = []
    if digits:
        _cards(text, spans)
    if others:
        spans.extend((*m.span(), _PRIVATE_KEY) for m in _PEM_RX.finditer(text))
        spans.extend((*m.span(), _JWT) for m in _JWT_RX.finditer(text))
        spans.extend((*m.span(), _API_KEY) for m in _API_KEY_RX.finditer(text))
        spans.extend((*m.span(1), _URL_PASSWORD) for m in _URL_RX.finditer(text))
        for m in _BEARER_RX.finditer(text):
            if len(m[1]) >= 16 or not m[1].isalpha():
                spans.append((*m.span(1), _BEARER))
        for m in _BASIC_RX.finditer(text):
            if len(m[1]) % 4 == 0 and _is_basic_credential(m[1]):
                spans.append((*m.span(1), _BASIC))
        _values(text, spans)
    if not spans:
        return spans
    if "[redacted:" in text:
        spans = _outside_markers(text, spans)
    return _merge(spans)


def _values(text: str, out: list[Span]) -> None:
    """The values of ``name=value`` / ``name: value`` pairs whose name is a secret name."""
    covered = 0  # the end of the last bare value replaced: names inside it are replaced too
    for name in _KV_NAME.finditer(text):
        if name.end() < covered or not _is_secret_name(name[1]):
            continue
        value = _KV_VALUE.match(text, name.end())
        if value is None:
            continue
        group = "quoted" if value["q"] is not None else "bare"
        if value[group]:
            kind = _API_KEY if "apikey" in name[1].translate(_KEY_FOLD) else _PASSWORD
            out.append((*value.span(group), kind))
            if group == "bare":
                covered = value.end()


def _outside_markers(text: str, spans: list[Span]) -> list[Span]:
    """The parts of ``spans`` outside earlier markers: redacting twice changes nothing."""
    out = spans
    for marker in _MARKER.finditer(text):
        m_start, m_end = marker.span()
        cut: list[Span] = []
        for start, end, kind in out:
            if end <= m_start or start >= m_end:
                cut.append((start, end, kind))
                continue
            if start < m_start:
                cut.append((start, m_start, kind))
            if end > m_end:
                cut.append((m_end, end, kind))
        out = cut
    return out


def _merge(spans: list[Span]) -> list[Span]:
    """Overlapping spans as one, of the most specific kind; touching spans stay apart."""
    spans.sort()
    merged: list[Span] = []
    for start, end, kind in spans:
        if merged and start < merged[-1][1]:
            m_start, m_end, m_kind = merged[-1]
            merged[-1] = (m_start, max(m_end, end), min(m_kind, kind))
        else:
            merged.append((start, end, kind))
    return merged


# -- walking the event -------------------------------------------------------------------------

_encoder: Final = msgspec.json.Encoder()

# Fields never scanned: validated formats (ids, times, enums), IP addresses, the log's ciphertext.
_NOT_SCANNED: Final = {Event: frozenset({"id", "time", "received_at", "action", "outcome",
                                         "category", "sealed"}),
                       Actor: frozenset({"ip"}),
                       Source: frozenset({"ip"})}

# A plan step: field name, the struct class to walk into (or None: a JSON value), and the
# maximum length of its strings (or None).
_Step = tuple[str, type[msgspec.Struct] | None, int | None]


def _unwrap(t: mi.Type) -> mi.Type:
    if isinstance(t, mi.UnionType):
        others = [u for u in t.types if not isinstance(u, mi.NoneType)]
        if len(others) == 1:
            return others[0]
    return t


@functools.cache
def _plan(cls: type[msgspec.Struct]) -> tuple[_Step, ...]:
    """What to scan in a struct of type ``cls``: every field but those in ``_NOT_SCANNED``."""
    skip = frozenset().union(*(v for k, v in _NOT_SCANNED.items() if issubclass(cls, k)))
    info = mi.type_info(cls)
    if not isinstance(info, mi.StructType):  # pragma: no cover - only structs are planned
        raise TypeError(f"{cls.__name__} is not a struct")
    steps: list[_Step] = []
    for f in info.fields:
        if f.name in skip:
            continue
        t = _unwrap(f.type)
        if isinstance(t, mi.StructType):
            steps.append((f.name, t.cls, None))
            continue
        if isinstance(t, mi.ListType):
            t = _unwrap(t.item_type)
        steps.append((f.name, None, t.max_length if isinstance(t, mi.StrType) else None))
    return tuple(steps)


class _Pass:
    """One walk over an event, collecting findings; ``collapse`` makes each string one marker."""

    __slots__ = ("collapse", "found", "prefilter", "redactor")

    def __init__(self, redactor: Redactor, *, collapse: bool, prefilter: bool) -> None:
        self.redactor = redactor
        self.collapse = collapse
        self.prefilter = prefilter
        self.found: list[Finding] = []

    def part(self, part: msgspec.Struct, prefix: str) -> msgspec.Struct:
        changed: dict[str, Any] = {}
        for name, cls, limit in _plan(type(part)):
            value = getattr(part, name)
            if value is None:
                continue
            if cls is not None:
                new: Any = self.part(value, f"{prefix}{name}.")
            else:
                new = self.json(value, prefix + name, limit)
            if new is not value:
                changed[name] = new
        return msgspec.structs.replace(part, **changed) if changed else part

    def json(self, value: Any, path: str, limit: int | None) -> Any:
        if type(value) is str:
            return self.text(value, path, limit)
        if self.prefilter and type(value) in (dict, list) and not _may_hold(value):
            # The event's fast check, on this subtree: a record with one secret somewhere
            # (another system's audit record, say) is walked only where the secret may be.
            return value
        if type(value) is dict:
            out: dict[str, Any] | None = None
            for key, item in value.items():
                where = f"{path}.{key}"
                if item is None:
                    continue
                if type(key) is str and _is_secret_name(key):
                    if type(item) is str and _MARKER.fullmatch(item):
                        continue
                    self.found.append(Finding(where, KINDS[_PASSWORD]))
                    secret = item if type(item) is str else encode_json(item).decode()
                    new = self.redactor._marker(_PASSWORD, secret)
                else:
                    new = self.json(item, where, limit)
                if new is not item:
                    if out is None:
                        out = dict(value)
                    out[key] = new
            return value if out is None else out
        if type(value) is list:
            items: list[Any] | None = None
            for i, item in enumerate(value):
                new = self.json(item, f"{path}[{i}]", limit)
                if new is not item:
                    if items is None:
                        items = list(value)
                    items[i] = new
            return value if items is None else items
        return value

    def text(self, text: str, path: str, limit: int | None) -> str:
        spans = _find(text, self.prefilter)
        if not spans:
            return text
        self.found.extend(Finding(path, KINDS[kind]) for _, _, kind in spans)
        if not self.collapse:
            pieces: list[str] = []
            at = 0
            for start, end, kind in spans:
                pieces.append(text[at:start])
                pieces.append(self.redactor._marker(kind, text[start:end]))
                at = end
            pieces.append(text[at:])
            out = "".join(pieces)
            if limit is None or len(out) <= limit:
                return out
        # Too long for its field (or the event too large): one marker for the whole string.
        return self.redactor._marker(spans[0][2], text)


class Redactor:
    """Replaces secrets in events: ``mask`` (``[redacted:kind]``) or keyed ``hash`` markers.

    ``hash`` needs a key of at least 32 bytes (the log's redaction key); the key is never
    shown in ``repr``.
    """

    __slots__ = ("_key", "mode")

    def __init__(self, mode: Mode = "mask", hash_key: bytes | None = None) -> None:
        if mode not in ("mask", "hash"):
            raise ValueError(f"redaction mode {mode!r}: use 'mask' or 'hash'")
        self._key: bytes | None = None
        if mode == "hash":
            if hash_key is None or len(hash_key) < _MIN_HASH_KEY_BYTES:
                raise ValueError(f"hash mode needs a hash_key of at least "
                                 f"{_MIN_HASH_KEY_BYTES} bytes")
            self._key = bytes(hash_key)
        self.mode: Mode = mode

    def __repr__(self) -> str:
        return f"Redactor(mode={self.mode!r})"

    def _marker(self, kind: int, secret: str) -> str:
        if self._key is None:
            return f"[redacted:{KINDS[kind]}]"
        # By name, so that hmac takes OpenSSL's one-shot path rather than the Python one.
        digest = hmac.digest(self._key, secret.encode("utf-8", "surrogatepass"), "sha256")
        return f"[redacted:{KINDS[kind]}:hmac-sha256:{digest.hex()}]"

    def redact(self, event: Event) -> tuple[Event, tuple[Finding, ...]]:
        """The event with every secret replaced, and what was found.

        An event without secrets comes back as the same object, with ``()``.
        """
        try:
            others, digits = _may_hold_secret(_encoder.encode(event))
        except UnicodeEncodeError:  # a lone surrogate: msgspec cannot encode it; look closer
            others = digits = True
        if not (others or digits):
            return event, ()
        return self._redact_walk(event)

    def _redact_walk(self, event: Event, *, prefilter: bool = True
                     ) -> tuple[Event, tuple[Finding, ...]]:
        """The structured walk; ``prefilter=False`` runs every detector on every string."""
        walk = _Pass(self, collapse=False, prefilter=prefilter)
        out = walk.part(event, "")
        if not walk.found:
            return event, ()
        size, before = _size(out), _size(event)
        if size > MAX_EVENT_BYTES and size > before:
            walk = _Pass(self, collapse=True, prefilter=prefilter)
            out = walk.part(event, "")
            size = _size(out)
            if size > MAX_EVENT_BYTES and size > before:
                raise ValidationError("event", f"larger than {MAX_EVENT_BYTES} bytes once "
                                      "its secrets are redacted")
        if not isinstance(out, Event):  # pragma: no cover - replace keeps the type
            raise TypeError("redaction changed the event's type")
        return out, tuple(walk.found)


def _may_hold(value: Any) -> bool:
    """Whether any detector may match in a JSON value (keys included), from its encoding."""
    try:
        others, digits = _may_hold_secret(_encoder.encode(value))
    except (UnicodeEncodeError, TypeError):  # lone surrogates, odd keys: look closer
        return True
    return others or digits


def _size(event: msgspec.Struct) -> int:
    try:
        return len(_encoder.encode(event))
    except UnicodeEncodeError:
        return 0
