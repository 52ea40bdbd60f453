"""Alert sinks: where an alert goes once a rule has raised it (signed webhook, Slack, e-mail,
syslog), and the factory that builds them from configuration.

A sink delivers one alert per :meth:`Sink.send` call, or raises :class:`SinkError` saying
whether trying again may help (``retryable``). Retrying, backoff and durability are the
dispatcher's business (:mod:`sealtrail.monitor.dispatch`), not the sinks'.

The bytes and documents each sink sends are built by pure functions (``webhook_body``,
``signature_header``, ``slack_payload``, ``email_message``, ``syslog_message``); the sink classes
only move them over the wire. Classification of answers is pure too (``http_outcome``).

Webhook signatures follow the Stripe scheme, so receivers can reject replays::

    Sealtrail-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>

Secrets (the webhook secret, the SMTP password, a Slack URL, which is itself a credential) never
appear in ``repr``, in error messages or in logs: sinks show the URL's scheme and host only.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import math
import re
import select
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from enum import Enum
from importlib import metadata
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

from sealtrail.core import syslog
from sealtrail.core.canonical import compact_json
from sealtrail.core.errors import ConfigError, SealtrailError
from sealtrail.core.retry import parse_retry_after
from sealtrail.core.timefmt import format_time, parse_time

__all__ = [
    "SEVERITY_TO_SYSLOG",
    "EmailSink",
    "HttpOutcome",
    "Sink",
    "SinkError",
    "SlackSink",
    "SyslogSink",
    "WebhookSink",
    "build_sinks",
    "checkpoint_email_message",
    "checkpoint_slack_payload",
    "checkpoint_syslog_message",
    "email_message",
    "email_subject",
    "escape_note",
    "http_outcome",
    "signature_header",
    "slack_payload",
    "syslog_message",
    "unescape_note",
    "verify_signature",
    "webhook_body",
]

log = logging.getLogger("sealtrail.monitor")

SIGNATURE_HEADER: Final = "Sealtrail-Signature"
ALERT_ID_HEADER: Final = "Sealtrail-Alert-Id"
ALERT_STATUS_HEADER: Final = "Sealtrail-Alert-Status"
# Published checkpoints (monitor/publish.py) are not alerts: their documents say so in
# ``type`` and webhooks carry this header instead of the alert id and status.
CHECKPOINT_TYPE: Final = "sealtrail.checkpoint"
TYPE_HEADER: Final = "Sealtrail-Type"
# The SD-ID of RFC 5424 §7.2.2: name@<IANA private enterprise number>.
SD_ID: Final = "sealtrail@32473"
SEVERITY_TO_SYSLOG: Final = {
    "critical": "critical", "high": "error", "medium": "warning", "low": "notice",
}
_RETRY_STATUSES: Final = frozenset({408, 429})
_ERROR_BODY_MAX: Final = 512  # bytes of a refusal's body kept for the error message
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_DEFAULT_PORTS: Final = {"udp": 514, "tcp": 514, "tls": 6514}


def _user_agent() -> str:
    try:
        return f"sealtrail/{metadata.version('sealtrail')}"
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "sealtrail/0"


USER_AGENT: Final = _user_agent()


class SinkError(SealtrailError):
    """A sink could not deliver an alert.

    ``retryable`` is False when trying again cannot help (a 4xx other than 408/429, an SMTP 5xx,
    a server without the TLS we require); ``retry_after`` is the receiver's ``Retry-After`` in
    seconds, when it gave one.
    """

    def __init__(self, message: str, *, retryable: bool = True, status: int | None = None,
                 retry_after: float | None = None) -> None:
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after
        super().__init__(message)


class Sink(Protocol):
    """What the dispatcher needs from a sink. ``name`` is unique among configured sinks."""

    @property
    def name(self) -> str: ...

    def send(self, alert: Mapping[str, Any]) -> None:
        """Deliver ``alert`` or raise :class:`SinkError`."""

    def close(self) -> None:
        """Release connections; the sink is not used afterwards."""


# --- pure: the documents each sink sends -------------------------------------------------------


def _text(alert: Mapping[str, Any], key: str, default: str = "") -> str:
    value = alert.get(key)
    return default if value is None else str(value)


def _one_line(text: str, limit: int) -> str:
    """Control characters (CR, LF, ...) become a space: no header or line injection."""
    clean = _CONTROL.sub(" ", text).strip()
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


def _header_value(text: str) -> str:
    """One line of ASCII (HTTP header values are ASCII; anything else is escaped)."""
    return _one_line(text, 200).encode("ascii", "backslashreplace").decode("ascii")


def webhook_body(alert: Mapping[str, Any]) -> bytes:
    """The JSON body POSTed to a webhook: compact, keys sorted, UTF-8 (not ASCII-escaped)."""
    return compact_json(alert).encode()


def _mac(secret: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(secret, f"{timestamp}.".encode("ascii") + body, hashlib.sha256).hexdigest()


def _secret_bytes(secret: str | bytes) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def signature_header(secret: str | bytes, body: bytes, timestamp: int) -> str:
    """``t=<timestamp>,v1=<hex HMAC-SHA256(secret, "<timestamp>." + body)>``."""
    return f"t={timestamp},v1={_mac(_secret_bytes(secret), timestamp, body)}"


_MAX_SIGNATURE_HEADER: Final = 4096   # t= and a few v1= (rotation) fit many times over
_MAX_SIGNATURES: Final = 16
_STAMP: Final = re.compile(r"[0-9]{1,15}")  # unix seconds: anything longer is no time
_HEX_MAC: Final = re.compile(r"[0-9a-f]{64}")


def verify_signature(secret: str | bytes, header: str, body: bytes, now: float,
                     tolerance: float = 300) -> bool:
    """Whether ``header`` is a valid ``Sealtrail-Signature`` of ``body`` made within
    ``tolerance`` seconds of ``now`` (either side).

    Several ``v1=`` entries are allowed (one per secret while a secret is being rotated, at
    most 16); any one matching is enough. Comparison is constant-time. Any malformed header is
    False, never an exception: not text, longer than 4096 characters, not ASCII, a part
    without ``=``, no ``t`` or more than one, a ``t`` that is not 1-15 ASCII digits, no
    ``v1``, too many ``v1``; so is a ``now`` or ``tolerance`` that is not a finite number.
    """
    if not isinstance(header, str) or len(header) > _MAX_SIGNATURE_HEADER \
            or not header.isascii():
        return False
    if not isinstance(now, int | float) or not isinstance(tolerance, int | float) \
            or not math.isfinite(now) or not math.isfinite(tolerance):
        return False
    stamps: list[str] = []
    macs: list[str] = []
    for part in header.split(","):
        label, sep, value = part.strip().partition("=")
        if not sep:
            return False
        if label == "t":
            stamps.append(value)
        elif label == "v1":
            macs.append(value)
    if len(stamps) != 1 or _STAMP.fullmatch(stamps[0]) is None \
            or not macs or len(macs) > _MAX_SIGNATURES:
        return False
    timestamp = int(stamps[0])  # at most 15 digits: exact as a float too
    if abs(now - timestamp) > tolerance:
        return False
    try:
        key = _secret_bytes(secret)
        expected = _mac(key, timestamp, body).encode("ascii")
    except (TypeError, ValueError):  # not a secret or not a body: nothing verifies
        return False
    found = False
    for candidate in macs:
        # compare every candidate (no early exit): the time taken does not say which matched;
        # a candidate that is not 64 lowercase hex digits is compared against nothing valid
        well_formed = _HEX_MAC.fullmatch(candidate) is not None
        found |= hmac.compare_digest(expected, candidate.encode("ascii")) and well_formed
    return found


def _slack_escape(text: str) -> str:
    """Slack's mrkdwn control characters (``<!channel>``, ``<url|label>``) made inert."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(alert: Mapping[str, Any]) -> dict[str, Any]:
    """A Slack incoming-webhook message: ``text`` (the notification) and ``blocks`` (a header,
    then a section with the message and the severity, rule, key, count and clauses fields).

    Values from the alert are escaped, so a user name like ``<!channel>`` pings nobody.
    Lengths are cut to Slack's limits (header 150, section text 3000, field 2000).
    """
    severity = _text(alert, "severity", "unknown").upper()
    title = _text(alert, "title") or _text(alert, "rule", "alert")
    key = _text(alert, "key", "-")
    clauses = alert.get("clauses") or []
    clause_text = ", ".join(str(c) for c in clauses) if isinstance(clauses, list) else ""
    summary = f"[{severity}] {title} ({key})"
    fields = [("Severity", severity), ("Rule", _text(alert, "rule", "-")), ("Key", key),
              ("Count", _text(alert, "count", "-")), ("Clauses", clause_text or "-")]
    return {
        "text": _slack_escape(_one_line(summary, 3000)),
        "blocks": [
            {"type": "header",
             "text": {"type": "plain_text", "text": _one_line(f"[{severity}] {title}", 150)}},
            {"type": "section",
             "text": {"type": "mrkdwn",
                      "text": _slack_escape(_text(alert, "message") or title)[:3000]},
             "fields": [{"type": "mrkdwn",
                         "text": f"*{label}*\n{_slack_escape(value)}"[:2000]}
                        for label, value in fields]},
        ],
    }


def email_subject(alert: Mapping[str, Any]) -> str:
    """``[sealtrail][SEVERITY] title (key)`` on one line."""
    severity = _text(alert, "severity", "unknown").upper()
    title = _text(alert, "title") or _text(alert, "rule", "alert")
    return _one_line(f"[sealtrail][{severity}] {title} ({_text(alert, 'key', '-')})", 250)


def _email_body(alert: Mapping[str, Any]) -> str:
    known = ("title", "severity", "status", "rule", "log", "key", "count", "first_seen",
             "last_seen", "entries", "clauses", "message", "id", "origin")
    lines = [_text(alert, "message") or _text(alert, "title"), ""]
    for key in known[1:]:
        if key == "message" or key not in alert:
            continue
        value = alert[key]
        shown = ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)
        lines.append(f"{key + ':':<12}{shown}")
    extra = {k: v for k, v in alert.items() if k not in known}
    if extra:
        lines += ["", "other fields:", json.dumps(extra, sort_keys=True, indent=2,
                                                  ensure_ascii=False, default=str)]
    return "\n".join(lines) + "\n"


def email_message(alert: Mapping[str, Any], *, sender: str, recipients: Sequence[str],
                  now: datetime) -> EmailMessage:
    """The alert as a plain-text e-mail. The Message-ID is derived from the alert's id and
    status, so a retried send is recognisably the same message."""
    msg = EmailMessage()
    msg["Subject"] = email_subject(alert)
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = format_datetime(now)
    domain = sender.rpartition("@")[2] or "sealtrail.invalid"
    ident = re.sub(r"[^A-Za-z0-9.-]", "", f"{_text(alert, 'id')}.{_text(alert, 'status')}")
    msg["Message-ID"] = f"<{ident or 'alert'}@{re.sub(r'[^A-Za-z0-9.-]', '', domain)}>"
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please
    msg[ALERT_ID_HEADER] = _one_line(_text(alert, "id"), 200)
    msg.set_content(_email_body(alert))
    return msg


def _sd_ascii(value: str) -> str:
    # core.syslog.format_message encodes the header (with SD) as ASCII, although RFC 5424
    # §6.3.3 allows UTF-8 in PARAM-VALUE: until it does, non-ASCII is \\u-escaped here.
    return value.encode("ascii", "backslashreplace").decode("ascii")


def syslog_message(alert: Mapping[str, Any], *, facility: str, hostname: str | None,
                   app_name: str, now: datetime) -> bytes:
    """One RFC 5424 message for the alert (without framing).

    Severity maps critical→critical, high→error, medium→warning, low→notice (anything else:
    warning). TIMESTAMP is the alert's ``last_seen`` (``now`` if it has none); MSGID ``alert``;
    SD ``[sealtrail@32473 rule key count alert severity status]``; MSG a one-line summary.
    """
    sev = SEVERITY_TO_SYSLOG.get(_text(alert, "severity"), "warning")
    try:
        stamp = format_time(parse_time(_text(alert, "last_seen")))
    except ValueError:
        stamp = format_time(now)
    params = [(name, _sd_ascii(_text(alert, field, "-"))) for name, field in
              (("rule", "rule"), ("key", "key"), ("count", "count"), ("alert", "id"),
               ("severity", "severity"), ("status", "status"))]
    title = _text(alert, "title") or _text(alert, "rule", "alert")
    text = f"[{_text(alert, 'severity', 'unknown').upper()}] {title}"
    if alert.get("message"):
        text += f": {alert['message']}"
    return syslog.format_message(timestamp=stamp, message=_one_line(text, 4000),
                                 facility=facility, severity=sev, hostname=hostname,
                                 app_name=app_name, msgid="alert", sd={SD_ID: params})


# --- pure: published checkpoints (not alerts; see monitor/publish.py) ---------------------------

_NOTE_ESCAPE = re.compile(r"[\\\x00-\x1f\x7f]")
_NOTE_UNESCAPE = re.compile(r"\\(?:(\\)|(n)|x([0-9a-f]{2}))")


def escape_note(note: str) -> str:
    """A note on one line: ``\\`` for a backslash, ``\\n`` for a newline, ``\\xHH`` for any
    other control character; :func:`unescape_note` gives the exact note back."""
    def one(m: re.Match[str]) -> str:
        c = m.group(0)
        return "\\\\" if c == "\\" else "\\n" if c == "\n" else f"\\x{ord(c):02x}"
    return _NOTE_ESCAPE.sub(one, note)


def unescape_note(text: str) -> str:
    """The note :func:`escape_note` put on one line."""
    def one(m: re.Match[str]) -> str:
        if m.group(1):
            return "\\"
        if m.group(2):
            return "\n"
        return chr(int(m.group(3), 16))
    return _NOTE_UNESCAPE.sub(one, text)


def _checkpoint_summary(doc: Mapping[str, Any]) -> str:
    return _one_line(f"sealtrail checkpoint of log {_text(doc, 'log', '?')}: "
                     f"{_text(doc, 'size', '?')} entries ({_text(doc, 'origin', '?')})", 250)


def checkpoint_slack_payload(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A published checkpoint as a Slack message: a one-line summary, then the note in a code
    block (escaped like alert values; a copy for people, the webhook and syslog carry it
    byte for byte)."""
    return {"text": _slack_escape(_checkpoint_summary(doc)) + "\n```"
            + _slack_escape(_text(doc, "note")) + "```"}


def checkpoint_email_message(doc: Mapping[str, Any], *, sender: str,
                             recipients: Sequence[str], now: datetime) -> EmailMessage:
    """A published checkpoint as a plain-text e-mail: the note between two marker lines and
    how to check a log against it. The Message-ID is derived from the origin and size."""
    msg = EmailMessage()
    msg["Subject"] = f"[sealtrail] {_checkpoint_summary(doc)}"
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = format_datetime(now)
    domain = re.sub(r"[^A-Za-z0-9.-]", "", sender.rpartition("@")[2]) or "sealtrail.invalid"
    ident = re.sub(r"[^A-Za-z0-9.-]", "", f"checkpoint.{_text(doc, 'origin')}."
                   f"{_text(doc, 'size')}")
    msg["Message-ID"] = f"<{ident}@{domain}>"
    msg["Auto-Submitted"] = "auto-generated"
    msg[TYPE_HEADER] = CHECKPOINT_TYPE
    msg.set_content(
        "The latest signed checkpoint of this audit log, published so that a copy exists\n"
        "outside the machine. Keep it. Save the lines between the markers to a file (the\n"
        "last line ends with a newline) and check the log against it later:\n\n"
        "    sealtrail verify --vkey \"$(cat trusted.vkey)\" --checkpoint FILE\n\n"
        "A log that no longer extends this checkpoint was rolled back or rewritten.\n\n"
        "-----BEGIN SEALTRAIL CHECKPOINT-----\n" + _text(doc, "note")
        + "-----END SEALTRAIL CHECKPOINT-----\n")
    return msg


def checkpoint_syslog_message(doc: Mapping[str, Any], *, facility: str, hostname: str | None,
                              app_name: str, now: datetime) -> bytes:
    """One RFC 5424 message for one log's checkpoint (without framing): severity
    informational, MSGID ``checkpoint``, SD ``[sealtrail@32473 type log origin size]``, MSG
    the note escaped onto one line (:func:`escape_note`; :func:`unescape_note` reverses it)."""
    params = [("type", "checkpoint"), ("log", _sd_ascii(_text(doc, "log", "-"))),
              ("origin", _sd_ascii(_text(doc, "origin", "-"))),
              ("size", _sd_ascii(_text(doc, "size", "-")))]
    return syslog.format_message(timestamp=format_time(now),
                                 message=escape_note(_text(doc, "note")), facility=facility,
                                 severity="informational", hostname=hostname,
                                 app_name=app_name, msgid="checkpoint", sd={SD_ID: params})


class HttpOutcome(Enum):
    """What an HTTP status means for a delivery."""

    DELIVERED = "delivered"
    RETRY = "retry"  # 408, 429, 5xx (and, outside this function, timeouts and connection errors)
    PERMANENT = "permanent"  # any other status: 4xx, and 1xx/3xx (redirects are not followed)


def http_outcome(status: int) -> HttpOutcome:
    """The delivery outcome of an HTTP answer with ``status``."""
    if 200 <= status < 300:
        return HttpOutcome.DELIVERED
    if status >= 500 or status in _RETRY_STATUSES:
        return HttpOutcome.RETRY
    return HttpOutcome.PERMANENT


# --- adapters ----------------------------------------------------------------------------------


def _shown_url(url: str) -> str:
    """Scheme and host only: paths and queries of webhook URLs often carry tokens."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or '?'}{port}/…"


class _HttpSink:
    """POSTs bytes to one URL; shared by the webhook and Slack sinks."""

    def __init__(self, url: str, *, name: str, timeout: float,
                 verify: ssl.SSLContext | bool) -> None:
        import httpx  # noqa: PLC0415 - loaded by a running sink only: every CLI command imports
        #               this module, and httpx (with asyncio) costs each about 100 ms

        self._name = name
        self._url = url
        self._errors = (httpx.TimeoutException, httpx.HTTPError)
        self._client = httpx.Client(timeout=timeout, verify=verify, follow_redirects=False,
                                    headers={"User-Agent": USER_AGENT})

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self._name!r}, url={_shown_url(self._url)!r})"

    def close(self) -> None:
        self._client.close()

    def _post(self, body: bytes, headers: Mapping[str, str]) -> None:
        try:
            with self._client.stream("POST", self._url, content=body,
                                     headers=dict(headers)) as response:
                status = response.status_code
                retry_after = response.headers.get("retry-after")
                detail = b""
                if http_outcome(status) is not HttpOutcome.DELIVERED:
                    for chunk in response.iter_bytes():
                        detail += chunk
                        if len(detail) >= _ERROR_BODY_MAX:
                            break
        except self._errors as exc:
            if isinstance(exc, self._errors[0]):
                raise SinkError(f"sink {self._name}: timed out ({type(exc).__name__})") from exc
            raise SinkError(f"sink {self._name}: {type(exc).__name__}: {exc}") from exc
        outcome = http_outcome(status)
        if outcome is HttpOutcome.DELIVERED:
            return
        text = _one_line(detail[:_ERROR_BODY_MAX].decode("utf-8", "replace"), 200)
        raise SinkError(f"sink {self._name}: HTTP {status}" + (f": {text}" if text else ""),
                        retryable=outcome is HttpOutcome.RETRY, status=status,
                        retry_after=parse_retry_after(retry_after, datetime.now(UTC)))


class WebhookSink(_HttpSink):
    """POSTs the alert as signed JSON (see the module docstring for the signature)."""

    def __init__(self, url: str, secret: str | bytes, *, name: str = "webhook",
                 timeout: float = 5.0, verify: ssl.SSLContext | bool = True,
                 clock: Callable[[], float] = time.time) -> None:
        if not secret:
            raise ConfigError("a webhook sink needs a non-empty secret")
        super().__init__(url, name=name, timeout=timeout, verify=verify)
        self._secret = _secret_bytes(secret)
        self._clock = clock

    def send(self, alert: Mapping[str, Any]) -> None:
        """POST the alert; raises :class:`SinkError` unless the receiver answered 2xx."""
        body = webhook_body(alert)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature_header(self._secret, body, int(self._clock())),
            ALERT_ID_HEADER: _header_value(_text(alert, "id")),
            ALERT_STATUS_HEADER: _header_value(_text(alert, "status")),
        }
        self._post(body, headers)

    def publish_checkpoint(self, doc: Mapping[str, Any]) -> None:
        """POST a published checkpoint (``type: sealtrail.checkpoint``), signed like alerts,
        with ``Sealtrail-Type`` instead of the alert headers."""
        body = webhook_body(doc)
        self._post(body, {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature_header(self._secret, body, int(self._clock())),
            TYPE_HEADER: CHECKPOINT_TYPE,
        })


class SlackSink(_HttpSink):
    """POSTs a Slack-compatible message (``text`` + ``blocks``) to an incoming-webhook URL."""

    def __init__(self, url: str, *, name: str = "slack", timeout: float = 5.0,
                 verify: ssl.SSLContext | bool = True) -> None:
        super().__init__(url, name=name, timeout=timeout, verify=verify)

    def send(self, alert: Mapping[str, Any]) -> None:
        """POST the message; raises :class:`SinkError` unless the receiver answered 2xx."""
        body = json.dumps(slack_payload(alert), separators=(",", ":"),
                          ensure_ascii=False).encode("utf-8")
        self._post(body, {"Content-Type": "application/json"})

    def publish_checkpoint(self, doc: Mapping[str, Any]) -> None:
        """POST a published checkpoint as a short message with the note."""
        body = json.dumps(checkpoint_slack_payload(doc), separators=(",", ":"),
                          ensure_ascii=False).encode("utf-8")
        self._post(body, {"Content-Type": "application/json"})


class EmailSink:
    """Sends the alert as a plain-text e-mail over SMTP.

    TLS is required: with ``starttls`` (the default) the connection is upgraded with STARTTLS,
    and a server that does not offer it is refused (a permanent failure) unless
    ``allow_plaintext`` is set. ``implicit_tls`` connects with TLS from the start (SMTPS, port
    465). The login, when configured, happens only after TLS (or with ``allow_plaintext``).
    """

    def __init__(self, host: str, port: int = 587, *, sender: str, recipients: Sequence[str],
                 username: str | None = None, password: str | None = None,
                 starttls: bool = True, implicit_tls: bool = False,
                 allow_plaintext: bool = False, ssl_context: ssl.SSLContext | None = None,
                 timeout: float = 10.0, name: str = "email") -> None:
        if not recipients:
            raise ConfigError("an e-mail sink needs at least one recipient")
        if (username is None) != (password is None):
            raise ConfigError("an e-mail sink needs both a username and a password, or neither")
        if not (starttls or implicit_tls or allow_plaintext):
            raise ConfigError("an e-mail sink without starttls or implicit_tls needs "
                              "allow_plaintext")
        self._name = name
        self._host, self._port = host, port
        self._sender, self._recipients = sender, list(recipients)
        self._username, self._password = username, password
        self._starttls, self._implicit = starttls, implicit_tls
        self._allow_plaintext = allow_plaintext
        self._context = ssl_context or ssl.create_default_context()
        self._timeout = timeout

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return (f"EmailSink(name={self._name!r}, host={self._host!r}, port={self._port}, "
                f"to={self._recipients!r})")

    def close(self) -> None:
        """Nothing to release: each send uses its own connection."""

    def send(self, alert: Mapping[str, Any]) -> None:
        """Send the e-mail; SMTP 4xx and connection failures are retryable, 5xx are not."""
        self._deliver(email_message(alert, sender=self._sender, recipients=self._recipients,
                                    now=datetime.now(UTC)))

    def publish_checkpoint(self, doc: Mapping[str, Any]) -> None:
        """Send a published checkpoint as a short plain-text e-mail with the note."""
        self._deliver(checkpoint_email_message(doc, sender=self._sender,
                                               recipients=self._recipients,
                                               now=datetime.now(UTC)))

    def _deliver(self, msg: EmailMessage) -> None:
        try:
            if self._implicit:
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(self._host, self._port,
                                                      timeout=self._timeout,
                                                      context=self._context)
            else:
                smtp = smtplib.SMTP(self._host, self._port, timeout=self._timeout)
            with smtp:
                self._transact(smtp, msg)
        except SinkError:
            raise
        except smtplib.SMTPRecipientsRefused as exc:
            raise SinkError(f"sink {self._name}: every recipient was refused",
                            retryable=False) from exc
        except smtplib.SMTPResponseException as exc:
            raise SinkError(f"sink {self._name}: SMTP {exc.smtp_code}: "
                            f"{_one_line(str(exc.smtp_error), 200)}",
                            retryable=exc.smtp_code < 500, status=exc.smtp_code) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise SinkError(f"sink {self._name}: {type(exc).__name__}: {exc}") from exc

    def _transact(self, smtp: smtplib.SMTP, msg: EmailMessage) -> None:
        smtp.ehlo()
        if self._starttls and not self._implicit:
            if smtp.has_extn("starttls"):
                smtp.starttls(context=self._context)
                smtp.ehlo()
            elif not self._allow_plaintext:
                raise SinkError(f"sink {self._name}: the server does not offer STARTTLS; "
                                "refusing to send in clear (set allow_plaintext to allow it)",
                                retryable=False)
        if self._username is not None and self._password is not None:
            smtp.login(self._username, self._password)
        refused = smtp.send_message(msg, from_addr=self._sender, to_addrs=self._recipients)
        if refused:  # delivered to the others: resending would duplicate theirs
            log.warning("sink %s: %d recipient(s) refused the alert", self._name, len(refused))


class SyslogSink:
    """Sends RFC 5424 messages over UDP (one per datagram), TCP or TLS (octet-counted, RFC 6587
    §3.4.1 and RFC 5425). A TCP/TLS connection is kept open; one found closed by the peer, or
    failing on send, is replaced once before the send counts as failed.

    Syslog has no acknowledgement: a message the kernel accepted counts as delivered.
    """

    def __init__(self, host: str, port: int | None = None, *, transport: str = "udp",
                 facility: str = "auth", ssl_context: ssl.SSLContext | None = None,
                 hostname: str | None = None, app_name: str = "sealtrail",
                 timeout: float = 5.0, max_datagram: int = 2048, name: str = "syslog",
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        if transport not in _DEFAULT_PORTS:
            raise ConfigError(f"syslog transport must be udp, tcp or tls, not {transport!r}")
        if facility not in syslog.FACILITIES:
            raise ConfigError(f"unknown syslog facility {facility!r}")
        self._name = name
        self._host, self._port = host, port or _DEFAULT_PORTS[transport]
        self._transport = transport
        self._facility = facility
        self._context = ssl_context or (ssl.create_default_context()
                                        if transport == "tls" else None)
        self._hostname = hostname or socket.gethostname()
        self._app_name = app_name
        self._timeout = timeout
        self._max_datagram = max_datagram
        self._clock = clock
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return (f"SyslogSink(name={self._name!r}, transport={self._transport!r}, "
                f"host={self._host!r}, port={self._port})")

    def close(self) -> None:
        """Close the connection (or UDP socket)."""
        with self._lock:
            self._drop()

    def send(self, alert: Mapping[str, Any]) -> None:
        """Send one message; raises a retryable :class:`SinkError` when the network fails."""
        data = syslog_message(alert, facility=self._facility, hostname=self._hostname,
                              app_name=self._app_name, now=self._clock())
        with self._lock:
            if self._transport == "udp":
                self._send_udp(self._fit_datagram(alert, data))
            else:
                self._send_stream(syslog.frame(data))

    def publish_checkpoint(self, doc: Mapping[str, Any]) -> None:
        """Send one message carrying a published checkpoint's note. A note is never cut: one
        that does not fit a UDP datagram is a permanent failure (use tcp or tls)."""
        data = checkpoint_syslog_message(doc, facility=self._facility,
                                         hostname=self._hostname, app_name=self._app_name,
                                         now=self._clock())
        with self._lock:
            if self._transport == "udp":
                if len(data) > self._max_datagram:
                    raise SinkError(f"sink {self._name}: the checkpoint message is {len(data)} "
                                    f"octets, more than a datagram ({self._max_datagram}); "
                                    "use the tcp or tls transport", retryable=False)
                self._send_udp(data)
            else:
                self._send_stream(syslog.frame(data))

    def _fit_datagram(self, alert: Mapping[str, Any], data: bytes) -> bytes:
        """Cut the message text until the datagram fits (RFC 5426 §3.2: 2048 is safe)."""
        text = _text(alert, "message").encode("utf-8")
        while len(data) > self._max_datagram:
            keep = len(text) - (len(data) - self._max_datagram) - 4  # 4: room for the "…"
            if keep <= 0:
                return data[: self._max_datagram]
            text = text[:keep]
            data = syslog_message({**alert, "message": text.decode("utf-8", "ignore") + "…"},
                                  facility=self._facility, hostname=self._hostname,
                                  app_name=self._app_name, now=self._clock())
        return data

    def _drop(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _send_udp(self, data: bytes) -> None:
        try:
            if self._sock is None:
                family, kind, proto, _, addr = socket.getaddrinfo(
                    self._host, self._port, type=socket.SOCK_DGRAM)[0]
                self._sock = socket.socket(family, kind, proto)
                self._sock.connect(addr)  # lets an ICMP "port unreachable" surface as an error
            self._sock.send(data)
        except OSError as exc:
            self._drop()
            raise SinkError(f"sink {self._name}: {type(exc).__name__}: {exc}") from exc

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self._host, self._port), timeout=self._timeout)
        if self._context is None:
            return sock
        try:
            return self._context.wrap_socket(sock, server_hostname=self._host)
        except BaseException:
            sock.close()
            raise

    def _send_stream(self, data: bytes) -> None:
        # 1. a kept connection the peer has closed is replaced before use, not written into
        #    (a write into a half-closed TCP connection "succeeds" and the message is lost);
        # 2. a send failing on a kept connection gets one fresh connection;
        # 3. a failure on a fresh connection is the sink's failure.
        if self._sock is not None and _peer_closed(self._sock):  # 1
            self._drop()
        reused = self._sock is not None
        try:
            if self._sock is None:
                self._sock = self._connect()
            self._sock.sendall(data)
            return
        except (OSError, ssl.SSLError) as exc:
            self._drop()
            if not reused:  # 3
                raise SinkError(f"sink {self._name}: {type(exc).__name__}: {exc}") from exc
        try:  # 2
            self._sock = self._connect()
            self._sock.sendall(data)
        except (OSError, ssl.SSLError) as exc:
            self._drop()
            raise SinkError(f"sink {self._name}: {type(exc).__name__}: {exc}") from exc


def _peer_closed(sock: socket.socket) -> bool:
    """Whether the receiver closed a kept connection (syslog receivers never send data, so
    readable means end-of-stream, an error, or TLS housekeeping such as session tickets)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        timeout = sock.gettimeout()
        sock.setblocking(False)
        try:
            if isinstance(sock, ssl.SSLSocket):
                data = sock.recv(1)
            else:
                data = sock.recv(1, socket.MSG_PEEK)
        finally:
            sock.settimeout(timeout)
        return data == b""
    except (ssl.SSLWantReadError, BlockingIOError):
        return False
    except (OSError, ValueError):
        return True


# --- configuration -----------------------------------------------------------------------------

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")


class _Options:
    """Typed reads of one sink's configuration mapping; errors name ``sinks[i].key``."""

    def __init__(self, raw: Mapping[str, Any], where: str) -> None:
        self._raw, self._where, self._used = raw, where, {"type"}

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self._where}.{key}: {message}")

    def _get(self, key: str) -> Any:
        self._used.add(key)
        return self._raw.get(key)

    def text(self, key: str, *, default: str | None = None) -> str | None:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, str) or not value:
            raise self.fail(key, "must be a non-empty string")
        return value

    def required(self, key: str) -> str:
        value = self.text(key)
        if value is None:
            raise self.fail(key, "is required")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.fail(key, "must be true or false")
        return value

    def number(self, key: str, default: float) -> float:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise self.fail(key, "must be a positive number")
        return float(value)

    def port(self, key: str, default: int | None) -> int | None:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
            raise self.fail(key, "must be a port number (1-65535)")
        return value

    def texts(self, key: str) -> list[str]:
        value = self._get(key)
        if isinstance(value, str):
            value = [value]
        if (not isinstance(value, list) or not value
                or not all(isinstance(v, str) and v for v in value)):
            raise self.fail(key, "must be a non-empty list of strings")
        return value

    def finish(self) -> None:
        unknown = sorted(str(k) for k in self._raw if k not in self._used)
        if unknown:
            raise self.fail(unknown[0], "unknown option")


def _is_loopback(host: str) -> bool:
    if host.rstrip(".").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url(opts: _Options) -> str:
    url = opts.required("url")
    insecure = opts.flag("allow_insecure", False)
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # raises on a bad port
    except ValueError as exc:
        raise opts.fail("url", "is not a valid URL") from exc
    if parts.scheme not in ("http", "https") or not host:
        raise opts.fail("url", "must be an http:// or https:// URL with a host")
    if parts.scheme == "http" and not _is_loopback(host) and not insecure:
        raise opts.fail("url", "http:// is allowed only to a loopback host; use https:// "
                               "(or set allow_insecure: true)")
    return url


def _tls_context(opts: _Options) -> ssl.SSLContext | None:
    ca_file = opts.text("ca_file")
    cert_file, key_file = opts.text("cert_file"), opts.text("key_file")
    if (cert_file is None) != (key_file is None):
        raise opts.fail("cert_file" if cert_file is None else "key_file",
                        "cert_file and key_file go together")
    if ca_file is None and cert_file is None:
        return None
    try:
        ctx = ssl.create_default_context(cafile=ca_file)
        if cert_file is not None:
            ctx.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise opts.fail("ca_file" if cert_file is None else "cert_file",
                        f"cannot be loaded: {exc}") from exc
    return ctx


def _build_one(opts: _Options, kind: str, name: str) -> Sink:
    timeout = opts.number("timeout", 10.0 if kind == "email" else 5.0)
    if kind in ("webhook", "slack"):
        url = _url(opts)
        verify: ssl.SSLContext | bool = _tls_context(opts) or True
        if kind == "slack":
            return SlackSink(url, name=name, timeout=timeout, verify=verify)
        return WebhookSink(url, opts.required("secret"), name=name, timeout=timeout,
                           verify=verify)
    if kind == "email":
        implicit = opts.flag("implicit_tls", False)
        starttls = opts.flag("starttls", not implicit)
        allow_plaintext = opts.flag("allow_plaintext", False)
        if implicit and starttls:
            raise opts.fail("starttls", "cannot be combined with implicit_tls")
        if not (starttls or implicit or allow_plaintext):
            raise opts.fail("starttls", "is false: set allow_plaintext: true to send in clear")
        username, password = opts.text("username"), opts.text("password")
        if (username is None) != (password is None):
            raise opts.fail("password" if password is None else "username",
                            "username and password go together")
        return EmailSink(opts.required("host"), opts.port("port", 465 if implicit else 587)
                         or 587, sender=opts.required("from"), recipients=opts.texts("to"),
                         username=username, password=password, starttls=starttls,
                         implicit_tls=implicit, allow_plaintext=allow_plaintext,
                         ssl_context=_tls_context(opts), timeout=timeout, name=name)
    # syslog
    transport = opts.text("transport", default="udp") or "udp"
    if transport not in _DEFAULT_PORTS:
        raise opts.fail("transport", "must be udp, tcp or tls")
    facility = opts.text("facility", default="auth") or "auth"
    if facility not in syslog.FACILITIES:
        raise opts.fail("facility", f"must be one of {', '.join(syslog.FACILITIES)}")
    ctx = _tls_context(opts)
    if ctx is not None and transport != "tls":
        raise opts.fail("ca_file", "applies to the tls transport only")
    return SyslogSink(opts.required("host"), opts.port("port", None), transport=transport,
                      facility=facility, ssl_context=ctx, hostname=opts.text("hostname"),
                      app_name=opts.text("app_name", default="sealtrail") or "sealtrail",
                      timeout=timeout, name=name)


def build_sinks(config: Sequence[Mapping[str, Any]], *, where: str = "sinks") -> list[Sink]:
    """Sinks from their configuration (see docs/alerts.md for every option).

    Raises :class:`ConfigError` naming the first bad field (``sinks[1].url: ...``); the error
    never contains a secret's value. Names default to the type (``webhook``, ``webhook-2``,
    ...) and must be unique: the dispatcher's outbox keeps pending deliveries by name.
    """
    sinks: list[Sink] = []
    seen: set[str] = set()
    counts: dict[str, int] = {}
    try:
        for index, raw in enumerate(config):
            sinks.append(_build_entry(raw, f"{where}[{index}]", counts, seen))
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    return sinks


def _build_entry(raw: Mapping[str, Any], here: str, counts: dict[str, int],
                 seen: set[str]) -> Sink:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{here}: must be a mapping")
    opts = _Options(raw, here)
    kind = raw.get("type")
    if kind not in ("webhook", "slack", "email", "syslog"):
        raise opts.fail("type", "must be webhook, slack, email or syslog")
    counts[kind] = counts.get(kind, 0) + 1
    name = opts.text("name", default=kind if counts[kind] == 1
                     else f"{kind}-{counts[kind]}") or kind
    if not _NAME.match(name):
        raise opts.fail("name", "must be 1-64 letters, digits, '.', '_' or '-'")
    if name in seen:
        raise opts.fail("name", f"{name!r} is used by another sink")
    seen.add(name)
    sink = _build_one(opts, kind, name)
    try:
        opts.finish()
    except ConfigError:
        sink.close()
        raise
    return sink
