"""Redaction at ingest: every kind of secret is replaced, everything else is left alone.

Sample secrets are assembled from pieces so that no real-looking key sits in the source. The
fast path (one fold, one regex, one substring test) is checked against the slow walk with every
detector run on every string: the fast path may only ever say "look closer" too often.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import string
import uuid
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sealtrail.core.errors import ValidationError
from sealtrail.core.event import MAX_EVENT_BYTES, Event, validate_event
from sealtrail.core.redact import KINDS, Finding, Redactor, _find

BASE: dict[str, Any] = {"actor": {"id": "u-1"}, "action": "doc.read", "outcome": "success"}
KEY = bytes(range(32))
MASK = Redactor()
HASH = Redactor("hash", KEY)

PEM = ("-----BEGIN RSA PRIVATE KEY-----\n"
       "MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n"
       "-----END RSA PRIVATE KEY-----")
JWT = ".".join(["eyJhbGciOiJIUzI1NiJ9", "eyJzdWIiOiIxMjM0NTY3ODkwIn0",
                "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"])
BASIC = base64.b64encode(b"alice:" + b"s3cret-pw").decode()

# (kind, text with {} where the secret goes, the secret)
SAMPLES: list[tuple[str, str, str]] = [
    ("card", "charged card {} today", "4111 1111 1111 1111"),
    ("card", "card={} ok", "5555-5555-5555-4444"),
    ("card", "pan {}.", "378282246310005"),
    ("bearer", "Authorization: Bearer {}", "mF_9.B5f-4.1JqM" + "abcdef0123"),
    ("bearer", "sent bearer {} again", "0123456789abcdef"),
    ("basic", "Authorization: Basic {}", BASIC),
    ("jwt", "session started with {} by alice", JWT),
    ("private_key", "{}\nend of paste", PEM),
    ("private_key", "truncated: {}",
     "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA"),
    ("api_key", "aws key {} leaked", "AKIA" + "IOSFODNN7EXAMPLE"),
    ("api_key", "github {} leaked", "ghp_" + "A1b2C3d4E5" * 4),
    ("api_key", "slack {} leaked", "xoxb-" + "1234567890-abcdefghijkl"),
    ("api_key", "stripe {} leaked", "sk_" + "live_" + "4eC39HqLyjWDarjtT1zdp7dc"),
    ("api_key", "google {} leaked", "AIza" + "SyD-" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P"),
    ("api_key", "openai {} leaked", "sk-" + "proj-" + "a1B2c3D4e5F6g7H8i9J0k1L2"),
    ("api_key", "GET /v1?api_key={}&page=2", "k3y-0123456789"),
    ("url_password", "dsn postgres://bob:{}@db.internal:5432/app", "hunter2"),
    ("url_password", "redis://:{}@cache:6379/0", "p@ss:w0rd"),
    ("password", "login failed password={} for bob", "hunter2"),
    ("password", "retry with passwd: '{}' later", "correct horse battery"),
    ("password", '{{"client_secret": "{}", "user": "bob"}}', "s3cr3t value"),
    ("password", "pin={}", "1234"),
    ("password", "sid={}; theme=dark", "abc123def"),
    ("password", "Cookie: {}; theme=dark", "session=abc123def"),
]


def event(**fields: Any) -> Event:
    """A valid event: the base fields plus ``fields``."""
    return validate_event({**BASE, **fields})


def mask(kind: str) -> str:
    return f"[redacted:{kind}]"


def hashed(kind: str, secret: str, key: bytes = KEY) -> str:
    digest = hmac.new(key, secret.encode(), hashlib.sha256).hexdigest()
    return f"[redacted:{kind}:hmac-sha256:{digest}]"


def luhn(digits: str) -> bool:
    """A plain reference Luhn check, independent of the module's prefix sums."""
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def redacted(ev: Event, redactor: Redactor = MASK) -> tuple[Event, tuple[Finding, ...]]:
    """Redact and check that the result is still a valid event."""
    out, found = redactor.redact(ev)
    assert validate_event(out.to_dict()) == out
    return out, found


# -- each kind, in each place -------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "template", "secret"), SAMPLES)
def test_each_kind_in_metadata_keeps_the_surrounding_text(kind: str, template: str,
                                                          secret: str) -> None:
    """Only the secret inside a longer string is replaced, by a marker naming its kind."""
    out, found = redacted(event(metadata={"note": template.format(secret)}))
    assert out.metadata == {"note": template.format(mask(kind))}
    assert found == (Finding("metadata.note", kind),)


@pytest.mark.parametrize(("kind", "template", "secret"), SAMPLES)
def test_hash_mode_marker_is_the_hmac_of_the_secret(kind: str, template: str,
                                                    secret: str) -> None:
    """In hash mode the marker carries HMAC-SHA256(key, secret) in lowercase hex."""
    out, _ = redacted(event(reason=template.format(secret)), HASH)
    assert out.reason == template.format(hashed(kind, secret))


@pytest.mark.parametrize(("kind", "template", "secret"), SAMPLES)
def test_each_kind_in_nested_lists_and_changes(kind: str, template: str, secret: str) -> None:
    """Strings at any depth of metadata and changes are scanned, with their paths reported."""
    text = template.format(secret)
    out, found = redacted(event(
        metadata={"items": [{"x": ["plain", text]}]},
        changes={"before": [text], "after": {"a": {"b": text}}}))
    want = template.format(mask(kind))
    assert out.metadata == {"items": [{"x": ["plain", want]}]}
    assert out.changes is not None
    assert out.changes.before == [want]
    assert out.changes.after == {"a": {"b": want}}
    assert found == (Finding("changes.after.a.b", kind), Finding("changes.before[0]", kind),
                     Finding("metadata.items[0].x[1]", kind))


@pytest.mark.parametrize(("where", "path"), [
    ({"reason": "{}"}, "reason"),
    ({"purpose": "{}"}, "purpose"),
    ({"actor": {"id": "u-1", "user_agent": "{}"}}, "actor.user_agent"),
    ({"actor": {"id": "{}", "ip": "203.0.113.7"}}, "actor.id"),
    ({"actor": {"id": "u-1", "name": "{}", "on_behalf_of": "x", "type": "user"}}, "actor.name"),
    ({"target": {"type": "doc", "name": "{}"}}, "target.name"),
    ({"source": {"service": "api", "host": "{}", "ip": "10.0.0.1"}}, "source.host"),
    ({"request_id": "{}"}, "request_id"),
    ({"trace_id": "{}"}, "trace_id"),
    ({"subjects": ["alice", "{}"]}, "subjects[1]"),
    ({"changes": {"after": "{}"}}, "changes.after"),
])
def test_every_free_text_field_is_scanned(where: dict[str, Any], path: str) -> None:
    """Actor, target, source, reason, purpose, ids, subjects and changes are all scanned."""
    text = "ran curl -H 'Authorization: Bearer 0123456789abcdefXYZ'"
    raw = json.loads(json.dumps({**BASE, **where}).replace("{}", text))
    out, found = redacted(validate_event(raw))
    assert found == (Finding(path, "bearer"),)
    assert "0123456789abcdefXYZ" not in msgspec.json.encode(out).decode()
    assert "Authorization: Bearer [redacted:bearer]" in msgspec.json.encode(out).decode()


# -- secret field names ---------------------------------------------------------------------------


def test_values_under_secret_names_are_replaced_whole() -> None:
    """Any value under a secret-looking key becomes the marker; null stays null."""
    out, found = redacted(event(metadata={
        "password": "hunter2", "API-Key": 42, "Private Key": {"pem": "x"},
        "session_id": True, "pin": [1, 2], "Set-Cookie": "a=b", "user": {"otp": 123456},
        "client_secret": None, "x-auth-token": "t0k"}))
    assert out.metadata == {
        "password": mask("password"), "API-Key": mask("password"),
        "Private Key": mask("password"), "session_id": mask("password"),
        "pin": mask("password"), "Set-Cookie": mask("password"),
        "user": {"otp": mask("password")}, "client_secret": None,
        "x-auth-token": mask("password")}
    assert {f.path for f in found} == {
        "metadata.password", "metadata.API-Key", "metadata.Private Key", "metadata.session_id",
        "metadata.pin", "metadata.Set-Cookie", "metadata.user.otp", "metadata.x-auth-token"}
    assert {f.kind for f in found} == {"password"}


def test_non_string_secret_values_hash_over_their_json() -> None:
    """A number, bool or object under a secret name is hashed over its (sorted) JSON text."""
    out, _ = redacted(event(metadata={"pin": 1234, "otp": True,
                                      "credentials": {"b": 1, "a": [2]}}), HASH)
    assert out.metadata == {"pin": hashed("password", "1234"),
                            "otp": hashed("password", "true"),
                            "credentials": hashed("password", '{"a":[2],"b":1}')}


def test_names_that_only_count_or_describe_are_not_secret() -> None:
    """token_count, password_changed_at, cookie_expires, pin-like words... are kept."""
    meta = {"token_count": 3, "password_changed_at": "2026-11-28T08:21:16Z",
            "cookie_expires": "2026-12-01", "secret_type": "api", "password_length": 12,
            "shipping": "express", "spin": 3, "pinned": True, "session_count": 2,
            "authentication": "mfa", "sidebar": "left", "panel": "x", "topt": 1}
    ev = event(metadata=meta)
    assert MASK.redact(ev) == (ev, ())


def test_keys_are_never_redacted() -> None:
    """A key is a name: it decides about its value but is itself kept as it is."""
    out, _ = redacted(event(metadata={"Bearer 0123456789abcdefXYZ": "plain",
                                      "4111 1111 1111 1111": "x"}))
    assert out.metadata is not None
    assert set(out.metadata) == {"Bearer 0123456789abcdefXYZ", "4111 1111 1111 1111"}


def test_validated_fields_are_not_scanned() -> None:
    """id, time, action, outcome and category are validated formats, never redacted."""
    ev = event(id=str(uuid.uuid4()), time="2026-11-28T08:21:16Z", action="token.refresh",
               category="authorization", actor={"id": "u-1", "ip": "2001:db8::1"})
    assert MASK.redact(ev) == (ev, ())


# -- what is not a secret -----------------------------------------------------------------------


@pytest.mark.parametrize("number", [
    "4111 1111 1111 1112", "order 20261128082115", "1732780876123", "9780306406157",
    "100000000000001", "5555-5555-5555-4445"])
def test_luhn_invalid_digit_runs_are_kept(number: str) -> None:
    """Order numbers, timestamps and ISBNs that fail the Luhn check stay as they are."""
    assert not luhn(re.sub(r"\D", "", number))
    ev = event(reason=f"ref {number}")
    assert MASK.redact(ev) == (ev, ())


def test_cards_glued_to_other_text_are_not_cards() -> None:
    """A Luhn-valid run inside a longer token (letters or more digits) is not a card."""
    ev = event(metadata={"a": "INV4111111111111111", "b": "41111111111111110000",
                         "c": "x4111 1111 1111 1111"})
    assert luhn("4111111111111111")
    assert MASK.redact(ev) == (ev, ())


def test_timestamps_uuids_ips_and_phone_numbers_are_kept() -> None:
    """Common identifiers with many digits are not mistaken for secrets."""
    digit_uuid = "68387380-6956-0423-0411-442694208093"
    assert luhn("683873806956" + "0423")  # a Luhn-valid window: only the UUID rule keeps it
    ev = event(
        time="2026-11-28T08:21:16.123456Z",
        actor={"id": "u-1", "ip": "203.0.113.7"},
        metadata={"at": "2026-11-28T08:21:16.123456Z", "uuid": digit_uuid,
                  "request": str(uuid.UUID(int=0x0190A1B2C3D47E5F8A9B0C1D2E3F4A5B)),
                  "ip4": "203.0.113.7", "ip6": "2001:db8:85a3::8a2e:370:7334",
                  "phone": "+1 (555) 123-4567", "intl": "+44 20 7946 0958",
                  "intl_mobile": "+49 151 23456789", "amount": 1234.5, "big": 9007199254740991,
                  "version": "126.0.6478.126", "path": "/api/v1/invoices/42?page=2"})
    assert MASK.redact(ev) == (ev, ())


def test_prose_is_not_a_credential() -> None:
    """'missing bearer token', 'basic plan' and a bare ':' are words, not secrets."""
    ev = event(reason="missing bearer token; basic plan; note: ok; at 10:02",
               metadata={"why": "Bearer credentials expired", "tier": "Basic tier",
                         "url": "https://example.com/login?next=/home",
                         "mail": "bob@example.com"})
    assert MASK.redact(ev) == (ev, ())


def test_event_without_secrets_is_returned_by_identity() -> None:
    """Nothing found: the very same object comes back, with no findings."""
    ev = event(reason="nothing to see", metadata={"n": 1, "s": "text", "l": [1, "a", None]})
    out, found = MASK.redact(ev)
    assert out is ev
    assert found == ()


# -- markers, modes, keys -----------------------------------------------------------------------


def test_equal_secrets_give_equal_hashes_and_keys_differ() -> None:
    """Hash mode: one key maps equal secrets to equal markers; another key to other markers."""
    ev = event(reason="password=hunter2", metadata={"password": "hunter2"})
    out, _ = redacted(ev, HASH)
    assert out.metadata is not None
    assert out.reason == "password=" + out.metadata["password"]
    assert redacted(ev, HASH)[0] == out
    other, _ = redacted(ev, Redactor("hash", b"\x01" * 32))
    assert other.reason != out.reason
    assert re.fullmatch(r"password=\[redacted:password:hmac-sha256:[0-9a-f]{64}\]",
                        other.reason or "")


@pytest.mark.parametrize(("mode", "key"), [
    ("hash", None), ("hash", b"short"), ("hash", b"x" * 31), ("plain", None)])
def test_bad_mode_or_key_is_refused(mode: Any, key: bytes | None) -> None:
    """Hash mode needs a key of at least 32 bytes; only 'mask' and 'hash' exist."""
    with pytest.raises(ValueError, match=r"hash_key|mode"):
        Redactor(mode, key)


def test_repr_does_not_show_the_key() -> None:
    """The hash key never appears in the redactor's repr."""
    assert repr(HASH) == "Redactor(mode='hash')"


@pytest.mark.parametrize("redactor", [MASK, HASH])
def test_redacting_twice_changes_nothing(redactor: Redactor) -> None:
    """Markers are not secrets: a redacted event passes through again untouched."""
    text = " | ".join(t.format(s) for _, t, s in SAMPLES)
    once, found = redacted(event(reason=text[:4000], metadata={"all": text, "pin": "1"}),
                           redactor)
    assert found
    assert redactor.redact(once) == (once, ())


def test_overlapping_finds_become_one_marker_of_the_most_specific_kind() -> None:
    """'token=<jwt>' is one JWT, not a password and a JWT."""
    out, found = redacted(event(reason=f"token={JWT} and card=4111111111111111"))
    assert out.reason == "token=[redacted:jwt] and card=[redacted:card]"
    assert found == (Finding("reason", "jwt"), Finding("reason", "card"))


def test_card_next_to_other_numbers_is_still_caught() -> None:
    """A card in a longer space-grouped run (after '+7 ', before ' 5') is replaced alone."""
    assert not luhn("41111111111111115")
    assert not luhn("7" + "4111111111111111")
    out, _ = redacted(event(reason="call +7 4111 1111 1111 1111 5 times"))
    assert out.reason == "call +7 [redacted:card] 5 times"


def test_kinds_are_the_documented_ones() -> None:
    """Findings use exactly the eight documented kinds."""
    assert set(KINDS) == {"password", "card", "bearer", "basic", "jwt", "private_key",
                          "api_key", "url_password"}
    assert {k for k, _, _ in SAMPLES} == set(KINDS)


# -- limits -------------------------------------------------------------------------------------


def test_string_outgrowing_its_field_becomes_one_marker() -> None:
    """A user agent near 1024 characters whose markers would not fit is replaced whole."""
    ua = "a" * 1000 + " token=x pin=1"
    out, found = redacted(event(actor={"id": "u-1", "user_agent": ua}), HASH)
    assert out.actor.user_agent == hashed("password", ua)
    assert found == (Finding("actor.user_agent", "password"),) * 2


def test_event_outgrowing_the_size_limit_is_collapsed_or_refused() -> None:
    """Markers that would push the event past 32 KiB collapse; if that cannot fit, it fails."""
    line = "x=1 token=abc pin=2 sid=3 otp=4 " * 6
    count = MAX_EVENT_BYTES // (len(line) + 3)
    out, _ = redacted(event(metadata={"l": [line] * count}), HASH)
    assert out.metadata == {"l": [hashed("password", line)] * count}
    assert len(msgspec.json.encode(out)) <= MAX_EVENT_BYTES
    tiny = event(metadata={"l": ["pin=1"] * (MAX_EVENT_BYTES // 8)})
    with pytest.raises(ValidationError, match="once its secrets are redacted"):
        MASK.redact(tiny)


# -- the fast path against the slow walk ----------------------------------------------------------

# Random text is built from three kinds of pieces, a third of the time each: fragments of the
# detectors' words and shapes, secret names with what may surround them, and whole secret shapes
# (with near misses), so that short texts reach every detector and every edge of the quick check.
_ATOMS = ["pass", "word", "wd", "phrase", "secret", "tok", "en", "api", "key", "auth",
          "orization", "cookie", "private", "cred", "ential", "cvv", "cvc", "card", "number",
          "credit", "pwd", "pin", "pan", "sid", "session", "id", "otp", "count", "_", "-", ".",
          " ", "=", ":", '"', "'", "\t", "\\", "@", "://", "/", "?", "Bearer ", "BASIC ",
          "eyJ", "AKIA", "ASIA", "ghp_", "github_pat_", "xoxb-", "sk_live_", "sk-", "AIza",
          "-----BEGIN ", "PRIVATE KEY-----", "-----END ", "4111", "1111", "0", "5", "7",
          "ABCDEFGHIJ", "abcdefghij0123456789", BASIC, "+", "\u03a9", "\u212a",
          "[redacted:card]"]
# Names: secret only as a whole (pin) or when contained (password), and near misses.
_NAMES = ["pwd", "PIN", "p-a-n", "Auth", "session", "Session_ID", "s.i.d", "OTP", "otp_",
          " pin ", "pinned", "spin", "token_count", "x", "Pass_Word", "client-secret",
          "x-api-key", "authorization", "Private.Key", "cvv2", "card number", "credit_card",
          "credentials", "set-cookie", "passphrase", "access_token", "secret_type"]
_HEADS = [f"{lead}{name}{end}" for name in _NAMES
          for lead, end in [(" ", "="), ("", ": "), ('"', '": "'), ("\t", "\t=\t"),
                            ("&", "='"), ('\\"', '\\": \\"')]]
_SHAPES = ["://u:p@", "://:pw@h", "://u@h", "http://h/p?u:p@", "eyJa.eyJb.c", "eyJa.eyJb.",
           "eyJa.e", "Bearer abcdefgh1234", "bearer tok", "Basic " + BASIC, "basic plan",
           "-----BEGIN EC PRIVATE KEY-----", "-----BEGIN PUBLIC KEY-----",
           "AKIA" + "ABCDEFGHIJ012345", "ASIA" + "0" * 16, "ghp_" + "a1" * 18,
           "github_pat_" + "b2" * 11, "xoxp-" + "c3" * 5, "rk_test_" + "d4" * 5,
           "AIza" + "e5" * 17 + "f", "sk-" + "g6-" * 10, "4111111111111111",
           "4111 1111 1111 1111", "5555-5555-5555-4444", "4111 1111 1111 1112", "+1 4111"]
_piece = (st.sampled_from(_ATOMS) | st.sampled_from(_HEADS) | st.sampled_from(_SHAPES))
_texts = st.lists(_piece, max_size=12).map("".join)
_keys = st.sampled_from(_NAMES) | _texts.filter(lambda t: 0 < len(t) <= 128)
_json = st.recursive(st.none() | st.integers(-9, 9) | _texts,
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(_keys, inner, max_size=3),
                     max_leaves=8)


_short = st.lists(_piece, min_size=1, max_size=4).map("".join)


@settings(max_examples=1000, deadline=None)
@given(text=_short)
def test_string_check_never_skips_a_secret(text: str) -> None:
    """The quick check on one string never hides what the detectors would find in it."""
    assert _find(text) == _find(text, prefilter=False)


@settings(max_examples=1000, deadline=None)
@given(key=_keys, text=_short, where=st.sampled_from(["metadata", "reason", "user_agent"]))
def test_event_check_never_skips_a_secret(key: str, text: str, where: str) -> None:
    """On a one-field event, the fast path agrees with the walk that runs every detector."""
    if where == "metadata":
        ev = event(metadata={key: text})
    elif where == "reason":
        ev = event(reason=text)
    else:
        ev = event(actor={"id": "u-1", "user_agent": text})
    assert MASK.redact(ev) == MASK._redact_walk(ev, prefilter=False)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reason=_texts, agent=_texts, meta=st.dictionaries(_keys, _json, max_size=4))
def test_fast_path_never_skips_a_secret(reason: str, agent: str, meta: dict[str, Any]) -> None:
    """On busy events too, redact finds whatever the walk with every detector finds."""
    ev = event(reason=reason, actor={"id": "u-1", "user_agent": agent}, metadata=meta)
    slow = MASK._redact_walk(ev, prefilter=False)
    assert MASK.redact(ev) == slow
    validate_event(slow[0].to_dict())


@st.composite
def _cards(draw: st.DrawFn) -> str:
    """A random Luhn-valid 16-digit number, written plain, in groups of 4, or with dashes."""
    body = draw(st.text("0123456789", min_size=15, max_size=15))
    check = next(c for c in "0123456789" if luhn(body + c))
    digits = body + check
    sep = draw(st.sampled_from(["", " ", "-"]))
    return sep.join(digits[i:i + 4] for i in range(0, 16, 4))


@settings(max_examples=300, deadline=None)
@given(card=_cards(), before=st.text(max_size=40), after=st.text(max_size=40),
       field=st.sampled_from(["reason", "user_agent", "metadata"]),
       redactor=st.sampled_from([MASK, HASH]))
def test_a_card_in_random_text_is_never_stored(card: str, before: str, after: str,
                                               field: str, redactor: Redactor) -> None:
    """A Luhn-valid card set apart by spaces anywhere in random text never reaches the log."""
    text = f"{before} {card} {after}"
    if field == "reason":
        ev = event(reason=text)
    elif field == "user_agent":
        ev = event(actor={"id": "u-1", "user_agent": text})
    else:
        ev = event(metadata={"note": {"deep": [text]}})
    out, found = redacted(ev, redactor)
    stored = msgspec.json.encode(out)
    assert card.encode() not in stored
    assert re.sub(r"\D", "", card).encode() not in stored
    assert any(f.kind == "card" for f in found)


# -- pathological input ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    " ".join("1234567890" * 3300)[:32768],
    ("aa=a==a=" * 4096)[:32768],
    "eyJ" * 10000,
    "eyJa.eyJ" + "b" * 30000,
    "-----BEGIN RSA PRIVATE KEY-----" * 1000,
    "://:" * 8000,
    "://a:" + "b" * 30000,
    "ghp_" * 8000,
    "Bearer " * 4000,
    "password=" * 3500,
    "sk-" + "a-" * 15000,
    "1-" * 16000,
    "a" * 32768,
    "4111 " * 6000,
])
def test_pathological_strings_finish(text: str) -> None:
    """Inputs built to make regexes backtrack still finish (the suite's time is the bound)."""
    _find(text, prefilter=False)
    _find(text)


def test_lone_surrogates_take_the_walk() -> None:
    """An event msgspec cannot encode (a lone surrogate) is still scanned, not skipped."""
    ev = Event(actor=validate_event(BASE).actor, action="a.b", outcome="success",
               reason="\ud800 password=hunter2")
    out, found = MASK.redact(ev)
    assert out.reason == "\ud800 password=[redacted:password]"
    assert found == (Finding("reason", "password"),)


def test_unicode_case_tricks_are_consistent() -> None:
    """Only ASCII letters fold: the Kelvin sign does not make 'toKen' a secret name anywhere."""
    ev = event(metadata={"to\u212aen": "x", "note": "to\u212aen=abc"},
               reason="".join(string.ascii_letters))
    assert MASK.redact(ev) == (ev, ()) == MASK._redact_walk(ev, prefilter=False)


def test_names_that_describe_a_check_are_not_secret_names() -> None:
    """Google Cloud's ``authorizationInfo`` (which permissions were checked) and GitHub's
    ``token_scopes`` are what audit rules read; the credentials beside them still go."""
    checks = [{"permission": "iam.serviceAccountKeys.create", "granted": True,
               "resource": "projects/p"}]
    out, found = redacted(event(metadata={
        "authorizationInfo": checks, "token_scopes": "repo,admin:org",
        "authorization": "Bearer abc", "credentials": {"sessionToken": "x"}}))
    assert out.metadata is not None
    assert out.metadata["authorizationInfo"] == checks
    assert out.metadata["token_scopes"] == "repo,admin:org"
    assert {f.path for f in found} == {"metadata.authorization", "metadata.credentials"}
