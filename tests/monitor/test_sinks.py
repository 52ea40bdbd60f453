"""Alert sinks against real receivers on loopback: webhook, Slack, SMTP, syslog; and their
configuration."""

from __future__ import annotations

import email
import email.policy
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from sealtrail.core.errors import ConfigError, SealtrailError
from sealtrail.core.syslog import FACILITIES, SEVERITIES
from sealtrail.monitor.sinks import (
    EmailSink,
    HttpOutcome,
    SinkError,
    SlackSink,
    SyslogSink,
    WebhookSink,
    build_sinks,
    http_outcome,
    signature_header,
    syslog_message,
    verify_signature,
    webhook_body,
)
from tests.monitor.receivers import (
    Mailbox,
    Pki,
    StreamListener,
    UdpListener,
    WebhookReceiver,
    make_pki,
    parse_rfc5424,
    wait_until,
)
from tests.ports import free_port

SECRET = "whsec_test_only_not_a_real_secret"

ALERT: dict[str, Any] = {
    "id": "0191f0c2-7d1e-7a3b-9c4d-5e6f7a8b9c0d",
    "rule": "builtin.brute_force",
    "title": "Brute-force logins",
    "severity": "high",
    "status": "open",
    "log": "default",
    "key": "alice",
    "first_seen": "2026-03-01T10:00:00.000000Z",
    "last_seen": "2026-03-01T10:04:59.123456Z",
    "count": 7,
    "entries": [12, 13, 14, 15, 16, 17, 18],
    "clauses": ["PCI DSS 10.2.1.4", "ISO 27001 A.8.15"],
    "message": "7 failed logins for alice from 203.0.113.9 in 5 minutes",
    "origin": "audit.example.com/default",
    "x_extra": {"passed": "through"},
}


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:
        yield r


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


# --- webhook ------------------------------------------------------------------------------------


def test_a_webhook_posts_the_alert_as_signed_compact_json(receiver: WebhookReceiver) -> None:
    """The body is the alert as compact JSON with sorted keys (extra keys included); the headers
    carry the content type, user agent, alert id and a signature a receiver can verify."""
    sink = WebhookSink(receiver.url, SECRET, name="hook")
    try:
        sink.send(ALERT)
    finally:
        sink.close()
    [request] = receiver.requests
    assert request.method == "POST"
    assert request.path == "/hook/secret-token"
    assert request.body == webhook_body(ALERT)
    assert json.loads(request.body) == ALERT
    assert b": " not in request.body
    assert list(json.loads(request.body)) == sorted(ALERT)
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("sealtrail/")
    assert request.headers["sealtrail-alert-id"] == ALERT["id"]
    assert request.headers["sealtrail-alert-status"] == "open"
    header = request.headers["sealtrail-signature"]
    assert verify_signature(SECRET, header, request.body, now=time.time())


def test_an_old_or_future_signature_is_a_replay() -> None:
    """A signature made more than ``tolerance`` seconds before (or after) ``now`` is refused;
    within the tolerance it is accepted."""
    body = webhook_body(ALERT)
    now = 1_800_000_000
    old = signature_header(SECRET, body, now - 301)
    assert not verify_signature(SECRET, old, body, now=now)
    assert verify_signature(SECRET, old, body, now=now, tolerance=301)
    assert not verify_signature(SECRET, signature_header(SECRET, body, now + 301), body, now=now)
    assert verify_signature(SECRET, signature_header(SECRET, body, now - 300), body, now=now)


def test_a_webhook_sink_signs_with_its_clock(receiver: WebhookReceiver) -> None:
    """The ``t=`` of the header is the sink's clock: a receiver checking against its own time
    refuses a delivery signed ten minutes ago (a replay)."""
    sink = WebhookSink(receiver.url, SECRET, clock=lambda: time.time() - 600)
    try:
        sink.send(ALERT)
    finally:
        sink.close()
    [request] = receiver.requests
    header = request.headers["sealtrail-signature"]
    assert not verify_signature(SECRET, header, request.body, now=time.time())
    assert verify_signature(SECRET, header, request.body, now=time.time() - 600)


def test_every_single_bit_change_of_the_body_fails_the_signature() -> None:
    """Flipping any one bit of the signed body, or signing with another secret, fails."""
    body = webhook_body(ALERT)
    now = 1_800_000_000
    header = signature_header(SECRET, body, now)
    assert verify_signature(SECRET, header, body, now=now)
    assert verify_signature(SECRET.encode(), header, body, now=now)
    for i in range(len(body)):
        for bit in range(8):
            tampered = bytearray(body)
            tampered[i] ^= 1 << bit
            assert not verify_signature(SECRET, header, bytes(tampered), now=now)
    assert not verify_signature(SECRET + "x", header, body, now=now)
    # the timestamp is signed too: moving it breaks the MAC
    moved = header.replace(f"t={now}", f"t={now + 1}")
    assert not verify_signature(SECRET, moved, body, now=now)


def test_malformed_signature_headers_are_false_not_errors() -> None:
    """Missing or doubled ``t``, a non-numeric ``t``, no ``v1``, junk: False, never a crash;
    several ``v1`` (secret rotation) verify when one matches."""
    body = b"{}"
    now = 1_800_000_000
    good = signature_header(SECRET, body, now)
    mac = good.split("v1=")[1]
    for header in ("", "t=", f"v1={mac}", f"t={now}", f"t={now},t={now},v1={mac}",
                   f"t=-{now},v1={mac}", f"t={now}.0,v1={mac}", f"t=١٢٣,v1={mac}",
                   f"t={now},v1={mac.upper()}", f"t={now},v1", "garbage", f"t={now},v1=é"):
        assert not verify_signature(SECRET, header, body, now=now), header
    assert verify_signature(SECRET, f"t={now},v1={'0' * 64},v1={mac}", body, now=now)
    assert verify_signature(SECRET, f" t={now} , v1={mac} ", body, now=now)


def test_http_statuses_map_to_delivered_retry_or_permanent() -> None:
    """2xx delivered; 408, 429 and 5xx retried; every other status (4xx, 3xx, 1xx) is final."""
    assert all(http_outcome(s) is HttpOutcome.DELIVERED for s in (200, 201, 202, 204, 299))
    assert all(http_outcome(s) is HttpOutcome.RETRY for s in (408, 429, 500, 502, 503, 599))
    assert all(http_outcome(s) is HttpOutcome.PERMANENT
               for s in (100, 301, 302, 304, 400, 401, 403, 404, 409, 410, 413, 422))


def test_webhook_failures_say_whether_to_retry(receiver: WebhookReceiver) -> None:
    """A real receiver's 500/503/408/429 raise a retryable SinkError, 400/401/404/302 a
    permanent one; Retry-After is carried; the error names the status but not the URL."""
    sink = WebhookSink(receiver.url, SECRET, name="hook")
    try:
        for status, retryable in ((500, True), (503, True), (408, True), (429, True),
                                  (400, False), (401, False), (404, False), (302, False)):
            receiver.fail_next(1, status)
            with pytest.raises(SinkError) as caught:
                sink.send(ALERT)
            assert caught.value.retryable is retryable, status
            assert caught.value.status == status
            assert f"HTTP {status}" in str(caught.value)
            assert "secret-token" not in str(caught.value)
            assert isinstance(caught.value, SealtrailError)
        receiver.fail_next(1, 429, {"Retry-After": "7"})
        with pytest.raises(SinkError) as caught:
            sink.send(ALERT)
        assert caught.value.retry_after == 7.0
        receiver.fail_next(1, 503, {"Retry-After": "99999"})
        with pytest.raises(SinkError) as caught:
            sink.send(ALERT)
        assert caught.value.retry_after == 300.0
        sink.send(ALERT)  # and it works again
    finally:
        sink.close()


def test_connection_refused_and_timeouts_are_retryable(receiver: WebhookReceiver) -> None:
    """Nobody listening, or a receiver slower than the timeout: a retryable SinkError."""
    down = WebhookSink(f"http://127.0.0.1:{free_port()}/x", SECRET)
    slow = WebhookSink(receiver.url, SECRET, timeout=0.2)
    receiver.delay = 0.6
    try:
        with pytest.raises(SinkError) as refused:
            down.send(ALERT)
        assert refused.value.retryable
        with pytest.raises(SinkError) as timed_out:
            slow.send(ALERT)
        assert timed_out.value.retryable
        assert "timed out" in str(timed_out.value)
    finally:
        down.close()
        slow.close()


def test_a_webhook_sink_keeps_its_secret_and_url_path_out_of_repr(
        receiver: WebhookReceiver) -> None:
    """repr shows the name, scheme and host; never the secret or the URL's path/token."""
    sink = WebhookSink(receiver.url, SECRET, name="hook")
    slack = SlackSink(receiver.url, name="chat")
    try:
        for text in (repr(sink), repr(slack)):
            assert SECRET not in text
            assert "secret-token" not in text
            assert "127.0.0.1" in text
    finally:
        sink.close()
        slack.close()


def test_a_webhook_over_https_trusts_only_the_configured_ca(tmp_path: Path, pki: Pki) -> None:
    """An https:// webhook verifies the receiver's certificate: with ``ca_file`` naming the
    test CA it delivers; with the system CAs the handshake fails (retryable)."""
    import http.server
    import ssl
    import threading

    class Ok(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    server = http.server.HTTPServer(("127.0.0.1", 0), Ok)
    server.socket = pki.server_context().wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    url = f"https://127.0.0.1:{server.server_address[1]}/hook"
    [trusting] = build_sinks([{"type": "webhook", "url": url, "secret": SECRET,
                               "ca_file": str(pki.ca)}])
    untrusting = WebhookSink(url, SECRET, verify=ssl.create_default_context())
    try:
        trusting.send(ALERT)
        with pytest.raises(SinkError) as caught:
            untrusting.send(ALERT)
        assert caught.value.retryable
    finally:
        trusting.close()
        untrusting.close()
        server.shutdown()
        server.server_close()
        thread.join()


# --- Slack --------------------------------------------------------------------------------------


def test_a_slack_message_has_text_a_header_and_a_section(receiver: WebhookReceiver) -> None:
    """The POSTed document is ``{"text", "blocks": [header, section]}``; the section carries the
    message and fields for severity, rule, key, count and clauses."""
    sink = SlackSink(receiver.url)
    try:
        sink.send(ALERT)
    finally:
        sink.close()
    [request] = receiver.requests
    assert request.headers["content-type"] == "application/json"
    doc = json.loads(request.body)
    assert set(doc) == {"text", "blocks"}
    assert doc["text"] == "[HIGH] Brute-force logins (alice)"
    header, section = doc["blocks"]
    assert header == {"type": "header",
                      "text": {"type": "plain_text", "text": "[HIGH] Brute-force logins"}}
    assert section["type"] == "section"
    assert section["text"] == {"type": "mrkdwn", "text": ALERT["message"]}
    fields = [f["text"] for f in section["fields"]]
    assert fields == ["*Severity*\nHIGH", "*Rule*\nbuiltin.brute_force", "*Key*\nalice",
                      "*Count*\n7", "*Clauses*\nPCI DSS 10.2.1.4, ISO 27001 A.8.15"]
    assert all(f["type"] == "mrkdwn" for f in section["fields"])


def test_slack_mentions_and_links_in_alert_values_are_inert(receiver: WebhookReceiver) -> None:
    """A key or message holding ``<!channel>`` or ``<http://x|y>`` is escaped: nobody is
    pinged, no link is forged; overlong titles are cut to Slack's 150-character header."""
    hostile = {**ALERT, "key": "<!channel>", "message": "see <http://evil.test|the docs> & run",
               "title": "T" * 400}
    sink = SlackSink(receiver.url)
    try:
        sink.send(hostile)
    finally:
        sink.close()
    doc = json.loads(receiver.requests[0].body)
    text = json.dumps(doc)
    assert "<!channel>" not in text
    assert "<http://" not in text
    assert "&lt;!channel&gt;" in doc["text"]
    assert doc["blocks"][1]["text"]["text"] == "see &lt;http://evil.test|the docs&gt; &amp; run"
    assert len(doc["blocks"][0]["text"]["text"]) == 150


def test_slack_failures_follow_the_webhook_classes(receiver: WebhookReceiver) -> None:
    """Slack answers 404 ``no_service`` (final) or 500 (retried) like any webhook."""
    sink = SlackSink(receiver.url)
    try:
        receiver.fail_next(1, 404)
        with pytest.raises(SinkError) as final:
            sink.send(ALERT)
        assert not final.value.retryable
        receiver.fail_next(1, 500)
        with pytest.raises(SinkError) as retry:
            sink.send(ALERT)
        assert retry.value.retryable
    finally:
        sink.close()


# --- e-mail -------------------------------------------------------------------------------------


def _auth(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
          ) -> AuthResult:
    ok = (getattr(auth_data, "login", None) == b"alerts"
          and getattr(auth_data, "password", None) == b"mail password")
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535


def _parse(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def test_an_alert_mail_goes_over_starttls_with_login(pki: Pki) -> None:
    """Against a server requiring STARTTLS (and TLS for AUTH), the sink upgrades, logs in and
    the message arrives with the subject ``[sealtrail][HIGH] title (key)`` and the details."""
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port,
                            tls_context=pki.server_context(), require_starttls=True,
                            authenticator=_auth, auth_require_tls=True)
    controller.start()
    sink = EmailSink("127.0.0.1", port, sender="sealtrail@example.test",
                     recipients=["soc@example.test", "cso@example.test"],
                     username="alerts", password="mail password",
                     ssl_context=pki.client_context())
    try:
        sink.send(ALERT)
    finally:
        sink.close()
        controller.stop()
    [(sender, rcpts, raw)] = box.messages
    assert sender == "sealtrail@example.test"
    assert rcpts == ["soc@example.test", "cso@example.test"]
    msg = _parse(raw)
    assert msg["Subject"] == "[sealtrail][HIGH] Brute-force logins (alice)"
    assert msg["From"] == "sealtrail@example.test"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["Sealtrail-Alert-Id"] == ALERT["id"]
    assert ALERT["id"] in msg["Message-ID"]
    body = msg.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    for needle in (ALERT["message"], "PCI DSS 10.2.1.4", "builtin.brute_force", "count:",
                   "12, 13, 14", "passed"):
        assert needle in text


def test_a_wrong_smtp_password_is_a_final_failure(pki: Pki) -> None:
    """535 from AUTH is a 5xx: not retried."""
    port = free_port()
    controller = Controller(Mailbox(), hostname="127.0.0.1", port=port,
                            tls_context=pki.server_context(), require_starttls=True,
                            authenticator=_auth)
    controller.start()
    sink = EmailSink("127.0.0.1", port, sender="s@example.test", recipients=["r@example.test"],
                     username="alerts", password="wrong", ssl_context=pki.client_context())
    try:
        with pytest.raises(SinkError) as caught:
            sink.send(ALERT)
    finally:
        controller.stop()
    assert not caught.value.retryable
    assert "wrong" not in str(caught.value)


def test_a_server_without_starttls_is_refused_unless_plaintext_is_allowed() -> None:
    """No STARTTLS offered: the default sink refuses (permanently) and sends nothing; with
    ``allow_plaintext`` it sends in clear."""
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    strict = EmailSink("127.0.0.1", port, sender="s@example.test", recipients=["r@example.test"])
    lax = EmailSink("127.0.0.1", port, sender="s@example.test", recipients=["r@example.test"],
                    allow_plaintext=True)
    try:
        with pytest.raises(SinkError) as caught:
            strict.send(ALERT)
        assert not caught.value.retryable
        assert "STARTTLS" in str(caught.value)
        assert box.messages == []
        lax.send(ALERT)
    finally:
        controller.stop()
    assert len(box.messages) == 1


def test_an_untrusted_smtp_certificate_is_refused(pki: Pki) -> None:
    """STARTTLS to a certificate the context does not trust fails before anything is sent."""
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port,
                            tls_context=pki.server_context(), require_starttls=True)
    controller.start()
    sink = EmailSink("127.0.0.1", port, sender="s@example.test", recipients=["r@example.test"])
    try:
        with pytest.raises(SinkError):
            sink.send(ALERT)
    finally:
        controller.stop()
    assert box.messages == []


def test_implicit_tls_smtps(pki: Pki) -> None:
    """``implicit_tls`` speaks TLS from the first byte (SMTPS)."""
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port,
                            ssl_context=pki.server_context())
    controller.start()
    [sink] = build_sinks([{"type": "email", "host": "127.0.0.1", "port": port,
                           "implicit_tls": True, "ca_file": str(pki.ca),
                           "from": "s@example.test", "to": ["r@example.test"]}])
    try:
        sink.send(ALERT)
    finally:
        controller.stop()
    assert len(box.messages) == 1


def test_alert_values_cannot_inject_mail_headers(pki: Pki) -> None:
    """A key carrying CR LF and a header stays on the subject line; a refused recipient is a
    final failure when it is the only one."""
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port,
                            tls_context=pki.server_context(), require_starttls=True)
    controller.start()
    sink = EmailSink("127.0.0.1", port, sender="s@example.test", recipients=["r@example.test"],
                     ssl_context=pki.client_context())
    refused = EmailSink("127.0.0.1", port, sender="s@example.test",
                        recipients=[box.refuse], ssl_context=pki.client_context())
    try:
        sink.send({**ALERT, "key": "alice\r\nBcc: mallory@example.test",
                   "title": "x\nX-Injected: 1"})
        with pytest.raises(SinkError) as caught:
            refused.send(ALERT)
        assert not caught.value.retryable
    finally:
        controller.stop()
    [(_, rcpts, raw)] = box.messages
    msg = _parse(raw)
    assert rcpts == ["r@example.test"]
    assert msg["Bcc"] is None
    assert msg["X-Injected"] is None
    assert msg["Subject"] == "[sealtrail][HIGH] x X-Injected: 1 (alice Bcc: mallory@example.test)"


# --- syslog -------------------------------------------------------------------------------------


def test_severities_map_to_syslog_severities() -> None:
    """critical→critical(2), high→error(3), medium→warning(4), low→notice(5); PRI uses the
    configured facility."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    for ours, theirs in (("critical", 2), ("high", 3), ("medium", 4), ("low", 5)):
        for facility in ("auth", "local3", "security"):
            parsed = parse_rfc5424(syslog_message({**ALERT, "severity": ours},
                                                  facility=facility, hostname="h",
                                                  app_name="sealtrail", now=now))
            assert parsed.severity == theirs == SEVERITIES[
                {2: "critical", 3: "error", 4: "warning", 5: "notice"}[theirs]]
            assert parsed.facility == FACILITIES[facility]


def test_a_syslog_message_parses_as_rfc_5424() -> None:
    """Version 1, the alert's last_seen as TIMESTAMP, MSGID ``alert``, the sealtrail SD element
    with rule/key/count/alert, and a BOM-prefixed UTF-8 MSG; values with ``"``, ``\\`` and
    ``]`` round-trip through SD escaping."""
    hostile = {**ALERT, "key": 'a"b\\c]d', "message": "Zürich ☃ logins"}
    parsed = parse_rfc5424(syslog_message(hostile, facility="auth", hostname="host-1",
                                          app_name="sealtrail", now=datetime.now(UTC)))
    assert parsed.version == 1
    assert parsed.pri == 4 * 8 + 3
    assert parsed.timestamp == ALERT["last_seen"]
    assert (parsed.hostname, parsed.app_name, parsed.procid, parsed.msgid) == (
        "host-1", "sealtrail", "-", "alert")
    assert parsed.sd["sealtrail@32473"] == {
        "rule": "builtin.brute_force", "key": 'a"b\\c]d', "count": "7", "alert": ALERT["id"],
        "severity": "high", "status": "open"}
    assert parsed.bom
    assert parsed.msg == "[HIGH] Brute-force logins: Zürich ☃ logins"


def test_non_ascii_structured_data_does_not_break_sending() -> None:
    """A non-ASCII key is sent (escaped in SD, because core.syslog encodes SD as ASCII) and
    arrives intact in MSG."""
    parsed = parse_rfc5424(syslog_message({**ALERT, "key": "josé", "message": "josé"},
                                          facility="auth", hostname="h", app_name="sealtrail",
                                          now=datetime.now(UTC)))
    assert parsed.sd["sealtrail@32473"]["key"] == "jos\\xe9"
    assert parsed.msg.endswith("josé")


def test_syslog_over_udp_one_message_per_datagram() -> None:
    """Each alert is one datagram holding one unframed RFC 5424 message; an overlong message is
    cut to 2048 octets and still parses."""
    with UdpListener() as listener:
        sink = SyslogSink("127.0.0.1", listener.port, transport="udp", facility="local4",
                          hostname="sealtrail-host")
        try:
            sink.send(ALERT)
            sink.send({**ALERT, "message": "é" * 5000})
            assert wait_until(lambda: len(listener.datagrams) == 2)
        finally:
            sink.close()
    first, long = (parse_rfc5424(d) for d in listener.datagrams)
    assert first.facility == 20
    assert first.hostname == "sealtrail-host"
    assert first.sd["sealtrail@32473"]["key"] == "alice"
    assert len(listener.datagrams[1]) <= 2048
    assert long.msg.endswith("…")


def test_syslog_over_tcp_is_octet_counted_and_reconnects() -> None:
    """Messages arrive octet-framed on one kept connection; when the receiver drops it, the
    next send opens a new connection and nothing is lost."""
    with StreamListener() as listener:
        sink = SyslogSink("127.0.0.1", listener.port, transport="tcp")
        try:
            sink.send(ALERT)
            sink.send({**ALERT, "key": "bob"})
            assert wait_until(lambda: len(listener.messages) == 2)
            assert listener.connections == 1
            listener.drop_connections()
            time.sleep(0.1)
            sink.send({**ALERT, "key": "carol"})
            assert wait_until(lambda: len(listener.messages) == 3)
        finally:
            sink.close()
    assert listener.connections == 2
    assert listener.errors == []
    keys = [parse_rfc5424(m).sd["sealtrail@32473"]["key"] for m in listener.messages]
    assert keys == ["alice", "bob", "carol"]


def test_syslog_over_tls_verifies_the_receiver(pki: Pki) -> None:
    """Over TLS (RFC 5425) with the test CA the framed message arrives and parses; a sink
    trusting only the system CAs fails the handshake with a retryable error; a reconnect after
    the receiver drops the connection works over TLS too."""
    with StreamListener(tls=pki.server_context()) as listener:
        [sink] = build_sinks([{"type": "syslog", "transport": "tls", "host": "127.0.0.1",
                               "port": listener.port, "ca_file": str(pki.ca)}])
        untrusting = SyslogSink("127.0.0.1", listener.port, transport="tls")
        try:
            sink.send(ALERT)
            assert wait_until(lambda: len(listener.messages) == 1)
            listener.drop_connections()
            time.sleep(0.1)
            sink.send({**ALERT, "key": "bob"})
            assert wait_until(lambda: len(listener.messages) == 2)
            with pytest.raises(SinkError) as caught:
                untrusting.send(ALERT)
            assert caught.value.retryable
        finally:
            sink.close()
            untrusting.close()
    parsed = [parse_rfc5424(m) for m in listener.messages]
    assert [p.sd["sealtrail@32473"]["key"] for p in parsed] == ["alice", "bob"]
    assert listener.connections == 2


def test_syslog_to_nobody_is_a_retryable_failure() -> None:
    """TCP to a port nobody listens on raises a retryable SinkError."""
    sink = SyslogSink("127.0.0.1", free_port(), transport="tcp", timeout=1)
    try:
        with pytest.raises(SinkError) as caught:
            sink.send(ALERT)
        assert caught.value.retryable
    finally:
        sink.close()


# --- configuration ------------------------------------------------------------------------------


def test_build_sinks_builds_every_type_with_unique_names(tmp_path: Path, pki: Pki) -> None:
    """One of each type, two webhooks: default names are the type, then ``type-2``."""
    sinks = build_sinks([
        {"type": "webhook", "url": "https://hooks.example.com/a", "secret": SECRET,
         "timeout": 3},
        {"type": "webhook", "url": "http://localhost:9/b", "secret": SECRET},
        {"type": "slack", "url": "https://hooks.slack.example/services/T/B/X", "name": "chat"},
        {"type": "email", "host": "smtp.example.com", "port": 587, "from": "a@example.com",
         "to": ["b@example.com"], "username": "u", "password": "pw-zq9", "starttls": True},
        {"type": "syslog", "transport": "tls", "host": "siem.example.com", "port": 6514,
         "facility": "auth", "ca_file": str(pki.ca)},
        {"type": "syslog", "host": "127.0.0.1"},
    ])
    try:
        assert [s.name for s in sinks] == ["webhook", "webhook-2", "chat", "email", "syslog",
                                           "syslog-2"]
        assert [type(s) for s in sinks] == [WebhookSink, WebhookSink, SlackSink, EmailSink,
                                            SyslogSink, SyslogSink]
        assert "pw-zq9" not in repr(sinks[3])
    finally:
        for sink in sinks:
            sink.close()


@pytest.mark.parametrize(("config", "field"), [
    ([{"type": "pager"}], "sinks[0].type"),
    ([{"url": "https://x.example"}], "sinks[0].type"),
    (["webhook"], "sinks[0]"),
    ([{"type": "webhook", "secret": "s"}], "sinks[0].url"),
    ([{"type": "slack", "url": "https://ok.example"},
      {"type": "webhook", "url": "ftp://x.example/", "secret": "s"}], "sinks[1].url"),
    ([{"type": "webhook", "url": "http://hooks.example.com/", "secret": "s"}], "sinks[0].url"),
    ([{"type": "webhook", "url": "http://[::1", "secret": "s"}], "sinks[0].url"),
    ([{"type": "webhook", "url": "https://x.example:99999/", "secret": "s"}], "sinks[0].url"),
    ([{"type": "webhook", "url": "https://x.example/"}], "sinks[0].secret"),
    ([{"type": "webhook", "url": "https://x.example/", "secret": ""}], "sinks[0].secret"),
    ([{"type": "webhook", "url": "https://x.example/", "secret": "s", "timeout": 0}],
     "sinks[0].timeout"),
    ([{"type": "webhook", "url": "https://x.example/", "secret": "s", "secrt": "s"}],
     "sinks[0].secrt"),
    ([{"type": "slack", "url": "https://x.example/", "allow_insecure": "yes"}],
     "sinks[0].allow_insecure"),
    ([{"type": "slack", "url": "https://x.example/", "name": "a"},
      {"type": "slack", "url": "https://y.example/", "name": "a"}], "sinks[1].name"),
    ([{"type": "slack", "url": "https://x.example/", "name": "a b"}], "sinks[0].name"),
    ([{"type": "email", "host": "h", "from": "a@x", "to": []}], "sinks[0].to"),
    ([{"type": "email", "host": "h", "to": ["b@x"]}], "sinks[0].from"),
    ([{"type": "email", "host": "h", "from": "a@x", "to": ["b@x"], "username": "u"}],
     "sinks[0].password"),
    ([{"type": "email", "host": "h", "from": "a@x", "to": ["b@x"], "starttls": False}],
     "sinks[0].starttls"),
    ([{"type": "email", "host": "h", "from": "a@x", "to": ["b@x"], "port": 70000}],
     "sinks[0].port"),
    ([{"type": "syslog", "host": "h", "transport": "http"}], "sinks[0].transport"),
    ([{"type": "syslog", "host": "h", "facility": "local9"}], "sinks[0].facility"),
    ([{"type": "syslog", "transport": "udp"}], "sinks[0].host"),
    ([{"type": "syslog", "host": "h", "transport": "tls", "ca_file": "/nonexistent/ca.pem"}],
     "sinks[0].ca_file"),
])
def test_config_errors_name_the_field(config: list[Any], field: str) -> None:
    """Each bad configuration raises ConfigError whose message starts with the field's path."""
    with pytest.raises(ConfigError) as caught:
        build_sinks(config)
    assert str(caught.value).startswith(f"{field}:"), str(caught.value)


def test_insecure_http_needs_an_explicit_opt_in() -> None:
    """http:// to a non-loopback host builds only with ``allow_insecure: true``; loopback
    (127.0.0.0/8, ::1, localhost) never needs it."""
    sinks = build_sinks([
        {"type": "webhook", "url": "http://hooks.example.com/", "secret": "s",
         "allow_insecure": True},
        {"type": "slack", "url": "http://127.1.2.3:8080/x"},
        {"type": "slack", "url": "http://[::1]/x"},
        {"type": "slack", "url": "http://LOCALHOST/x"},
    ])
    for sink in sinks:
        sink.close()
    assert len(sinks) == 4


def test_config_errors_never_echo_secrets() -> None:
    """Errors about a sink holding a secret or password do not contain their values."""
    for config in (
        {"type": "webhook", "url": "https://x.example/", "secret": "s3cr3t-v4lue", "bad": 1},
        {"type": "webhook", "url": "https://x.example/", "secret": ["s3cr3t-v4lue"]},
        {"type": "email", "host": "h", "from": "a@x", "to": ["b@x"], "username": "u",
         "password": "s3cr3t-v4lue", "starttls": "no"},
    ):
        with pytest.raises(ConfigError) as caught:
            build_sinks([config])
        assert "s3cr3t" not in str(caught.value)
