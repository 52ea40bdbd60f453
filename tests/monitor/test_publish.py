"""Checkpoints published outward (issue 11): to a real webhook receiver, real syslog listeners
and a real hook command, from real logs; bad configuration refused naming the field."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from sealtrail import AuditLog
from sealtrail.core.checkpoint import open_checkpoint
from sealtrail.core.errors import ConfigError
from sealtrail.core.note import Verifier
from sealtrail.monitor.alerts import AlertStore, monitor_db_path
from sealtrail.monitor.config import build_config
from sealtrail.monitor.publish import HOOK_NAME, HookSettings, Publisher, PublishSettings
from sealtrail.monitor.runner import Monitor, MonitorSettings
from sealtrail.monitor.sinks import verify_signature
from tests.monitor.receivers import (
    Mailbox,
    StreamListener,
    UdpListener,
    WebhookReceiver,
    parse_rfc5424,
    wait_until,
)
from tests.ports import free_port

SECRET = "publish-test-secret"


def _events(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"actor": {"id": f"u{i}"}, "action": "doc.read", "outcome": "success"}
            for i in range(start, start + n)]


@pytest.fixture
def alog(tmp_path: Path) -> Iterator[AuditLog]:
    with AuditLog.open(tmp_path / "data") as log:
        log.append_many(_events(5))
        yield log


def _webhook(receiver: WebhookReceiver, name: str = "soar") -> dict[str, Any]:
    return {"type": "webhook", "name": name, "url": receiver.url, "secret": SECRET}


def _unescape(text: str) -> str:
    """Written from docs/alerts.md, not from the code: \\\\ \\n \\xHH."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\":
            nxt = text[i + 1]
            if nxt == "\\":
                out.append("\\")
                i += 2
            elif nxt == "n":
                out.append("\n")
                i += 2
            else:
                assert nxt == "x"
                out.append(chr(int(text[i + 2:i + 4], 16)))
                i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _checkpoints(receiver: WebhookReceiver) -> list[dict[str, Any]]:
    out = []
    for req in list(receiver.requests):
        assert verify_signature(SECRET, req.headers["sealtrail-signature"], req.body,
                                time.time())
        out.append(json.loads(req.body))
    return out


def test_webhook_gets_a_signed_note_that_verifies_only_when_it_changed(alog: AuditLog) -> None:
    with WebhookReceiver() as receiver:
        pub = Publisher(PublishSettings(sinks=(_webhook(receiver),)),
                        lambda: [("default", alog)])
        try:
            assert pub.publish_once() == {}
            (req,) = receiver.requests
            assert req.headers["sealtrail-type"] == "sealtrail.checkpoint"
            assert "sealtrail-alert-id" not in req.headers  # not an alert
            (doc,) = _checkpoints(receiver)
            assert set(doc) == {"type", "log", "origin", "size", "note"}
            assert doc["type"] == "sealtrail.checkpoint"
            assert doc["note"] == alog.checkpoint().note
            verifier = Verifier.parse(alog.vkey())
            cp = open_checkpoint(doc["note"], verifier, alog.origin)
            assert (doc["log"], doc["origin"], doc["size"]) == ("default", alog.origin, cp.size)
            assert cp.size == alog.size == 5

            assert pub.publish_once() == {}  # unchanged: nothing sent again
            assert len(receiver.requests) == 1
            alog.append_many(_events(2, 5))
            assert pub.publish_once() == {}
            assert [d["size"] for d in _checkpoints(receiver)] == [5, 7]
            assert _checkpoints(receiver)[1]["note"] == alog.checkpoint().note
            assert pub.stats.published == {"soar": 2}
        finally:
            pub.stop()
        assert alog.size == 7  # nothing recorded in the log for a publication


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_syslog_carries_the_exact_note(alog: AuditLog, transport: str) -> None:
    listener = UdpListener() if transport == "udp" else StreamListener()
    with listener:
        sink = {"type": "syslog", "host": "127.0.0.1", "port": listener.port,
                "transport": transport, "facility": "local3"}
        pub = Publisher(PublishSettings(sinks=(sink,)), lambda: [("default", alog)])
        try:
            assert pub.publish_once() == {}

            def got() -> list[bytes]:
                if isinstance(listener, UdpListener):
                    return list(listener.datagrams)
                return list(listener.messages)

            assert wait_until(lambda: len(got()) == 1)
        finally:
            pub.stop()
        msg = parse_rfc5424(got()[0])
    assert msg.msgid == "checkpoint"
    assert msg.facility == 19
    assert msg.severity == 6
    sd = msg.sd["sealtrail@32473"]
    assert sd == {"type": "checkpoint", "log": "default", "origin": alog.origin, "size": "5"}
    assert "\n" not in msg.msg
    note = _unescape(msg.msg)
    assert note == alog.checkpoint().note
    open_checkpoint(note, alog.verifier, alog.origin)


def test_slack_and_email_get_a_short_text_with_the_note(alog: AuditLog) -> None:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with WebhookReceiver() as chat:
            sinks = ({"type": "slack", "url": chat.url},
                     {"type": "email", "host": "127.0.0.1", "port": port,
                      "from": "sealtrail@example.test", "to": ["soc@example.test"],
                      "allow_plaintext": True, "starttls": False})
            pub = Publisher(PublishSettings(sinks=sinks), lambda: [("default", alog)])
            try:
                assert pub.publish_once() == {}
            finally:
                pub.stop()
            (req,) = chat.requests
    finally:
        controller.stop()
    note = alog.checkpoint().note
    text = json.loads(req.body)["text"]
    assert text.startswith("sealtrail checkpoint of log default: 5 entries")
    assert note in text  # nothing in a note needs Slack's escaping here
    ((_, rcpts, raw),) = box.messages
    assert rcpts == ["soc@example.test"]
    mail = message_from_bytes(raw, policy=default_policy)
    assert isinstance(mail, EmailMessage)
    assert mail["Sealtrail-Type"] == "sealtrail.checkpoint"
    assert "checkpoint of log default" in str(mail["Subject"])
    body = mail.get_content().replace("\r\n", "\n")
    kept = body.split("-----BEGIN SEALTRAIL CHECKPOINT-----\n", 1)[1].split(
        "-----END SEALTRAIL CHECKPOINT-----", 1)[0]
    assert kept == note
    open_checkpoint(kept, alog.verifier, alog.origin)


def _hook_script(tmp_path: Path, body: str) -> list[str]:
    script = tmp_path / "hook.py"
    script.write_text("import json, os, sys, time\n" + body)
    return [sys.executable, str(script)]


def test_the_hook_gets_the_note_on_stdin_and_the_log_in_its_environment(
        alog: AuditLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "got.json"
    monkeypatch.setenv("SEALTRAIL_PASSPHRASE", "must-not-reach-the-hook")
    command = _hook_script(tmp_path, (
        "note = sys.stdin.read()\n"
        f"with open({str(out)!r}, 'a') as f:\n"
        "    f.write(json.dumps({'note': note, 'env': dict(os.environ)}) + '\\n')\n"))
    settings = PublishSettings(hook=HookSettings(tuple(command), 10.0, (("BUCKET", "audit"),)))
    pub = Publisher(settings, lambda: [("default", alog)])
    try:
        assert pub.publish_once() == {}
    finally:
        pub.stop()
    (line,) = out.read_text().splitlines()
    got = json.loads(line)
    assert got["note"] == alog.checkpoint().note
    env = got["env"]
    assert env["SEALTRAIL_HOOK"] == HOOK_NAME
    assert (env["SEALTRAIL_LOG"], env["SEALTRAIL_ORIGIN"], env["SEALTRAIL_SIZE"]) == (
        "default", alog.origin, "5")
    assert env["BUCKET"] == "audit"
    assert "SEALTRAIL_PASSPHRASE" not in env  # the monitor's secrets stay with it


def test_a_hanging_hook_is_killed_and_the_others_still_receive(alog: AuditLog,
                                                               tmp_path: Path) -> None:
    pid_file = tmp_path / "hook.pid"
    command = _hook_script(tmp_path, (
        f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
        "time.sleep(600)\n"))
    reported: list[tuple[str, str]] = []
    with WebhookReceiver() as receiver, UdpListener() as udp:
        sinks = (_webhook(receiver), {"type": "syslog", "host": "127.0.0.1", "port": udp.port})
        settings = PublishSettings(sinks=sinks, hook=HookSettings(tuple(command), 0.5))
        pub = Publisher(settings, lambda: [("default", alog)],
                        on_failure=lambda what, why: reported.append((what, why)))
        try:
            failures = pub.publish_once()
            assert set(failures) == {f"hook:{HOOK_NAME}"}
            assert "killed" in failures[f"hook:{HOOK_NAME}"]
            assert [d["note"] for d in _checkpoints(receiver)] == [alog.checkpoint().note]
            assert wait_until(lambda: len(udp.datagrams) == 1)
            assert reported
            assert reported[0][0] == f"hook:{HOOK_NAME}"
            pid = int(pid_file.read_text())
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
            # The next round tries the hook again (it never accepted this checkpoint), not the
            # sinks that did; the streak is reported once.
            assert set(pub.publish_once()) == {f"hook:{HOOK_NAME}"}
            assert len(receiver.requests) == 1
            assert len(reported) == 1
            assert pub.stats.failed == {f"hook:{HOOK_NAME}": 2}
        finally:
            pub.stop()


def test_a_failing_hook_and_a_dead_webhook_do_not_stop_syslog(alog: AuditLog,
                                                               tmp_path: Path) -> None:
    command = _hook_script(tmp_path, "sys.stdin.read()\nprint('bucket gone', file=sys.stderr)\n"
                                     "sys.exit(3)\n")
    dead = {"type": "webhook", "name": "dead", "secret": SECRET,
            "url": f"http://127.0.0.1:{free_port()}/hook"}
    with StreamListener() as tcp:
        sinks = (dead, {"type": "syslog", "host": "127.0.0.1", "port": tcp.port,
                        "transport": "tcp"})
        pub = Publisher(PublishSettings(sinks=sinks, hook=HookSettings(tuple(command))),
                        lambda: [("default", alog)])
        try:
            failures = pub.publish_once()
        finally:
            pub.stop()
        assert set(failures) == {"dead", f"hook:{HOOK_NAME}"}
        assert "exited with status 3: bucket gone" in failures[f"hook:{HOOK_NAME}"]
        assert wait_until(lambda: len(tcp.messages) == 1)
        assert _unescape(parse_rfc5424(tcp.messages[0]).msg) == alog.checkpoint().note


def test_the_monitor_publishes_right_after_start_and_reports_a_failing_hook(
        tmp_path: Path) -> None:
    data = tmp_path / "data"
    command = _hook_script(tmp_path, "sys.exit(1)\n")
    with AuditLog.open(data) as log, WebhookReceiver() as receiver:
        log.append_many(_events(3))
        settings = MonitorSettings(publish=PublishSettings(
            sinks=(_webhook(receiver),), hook=HookSettings(tuple(command), 10.0)))
        store = AlertStore(monitor_db_path(data))
        monitor = Monitor(data, lambda: [("default", log)], [], store, settings=settings,
                          clock=lambda: datetime.now(UTC))
        monitor.start()
        try:
            assert wait_until(lambda: len(receiver.requests) >= 1, 15)
            assert _checkpoints(receiver)[0]["note"] == log.checkpoint().note
            assert wait_until(lambda: bool(store.list(None, rule="builtin.publish_failing")),
                              15)
            (alert,) = store.list(None, rule="builtin.publish_failing")
            assert alert.key == f"hook:{HOOK_NAME}"
            assert "exited with status 1" in alert.message
            assert monitor.publish_stats is not None
            assert monitor.publish_stats.published == {"soar": 1}
        finally:
            monitor.stop()
            store.close()
        # The alert is about the trail (no log); the publication itself left no entry.
        assert log.size == 3


def test_configuration_builds_the_publish_settings(tmp_path: Path) -> None:
    sinks = [{"type": "webhook", "name": "soar", "url": "http://127.0.0.1:9/x",
              "secret": "s"},
             {"type": "syslog", "name": "siem", "host": "127.0.0.1"}]
    default = build_config({"sinks": sinks}).settings.publish
    assert default.interval == 3600
    assert default.enabled
    assert [s["name"] for s in default.sinks] == ["soar", "siem"]
    assert "secret" not in repr(default)
    cfg = build_config({"sinks": sinks, "publish": {"interval": "6h", "sinks": ["siem"]},
                        "hooks": {HOOK_NAME: {"command": ["/bin/true", "x"], "timeout": "5s",
                                              "env": {"BUCKET": "b"}}}}).settings.publish
    assert cfg.interval == 6 * 3600
    assert [s["name"] for s in cfg.sinks] == ["siem"]
    assert cfg.hook == HookSettings(("/bin/true", "x"), 5.0, (("BUCKET", "b"),))
    for off in (0, "0", "off", False):
        assert not build_config({"sinks": sinks, "publish": {"interval": off}}
                                ).settings.publish.enabled
    assert not build_config({}).settings.publish.enabled  # nowhere to publish to


@pytest.mark.parametrize(("doc", "field"), [
    ({"publish": "hourly"}, "monitor.publish"),
    ({"publish": {"every": "1h"}}, "monitor.publish.every"),
    ({"publish": {"interval": "soon"}}, "monitor.publish.interval"),
    ({"publish": {"interval": "10s"}}, "monitor.publish.interval"),
    ({"publish": {"interval": -5}}, "monitor.publish.interval"),
    ({"publish": {"interval": True}}, "monitor.publish.interval"),
    ({"publish": {"sinks": "soar"}}, "monitor.publish.sinks"),
    ({"publish": {"sinks": ["nope"]}}, "monitor.publish.sinks[0]"),
    ({"hooks": ["x"]}, "monitor.hooks"),
    ({"hooks": {"checkpoint.pub": {}}}, "monitor.hooks.checkpoint.pub"),
    ({"hooks": {HOOK_NAME: "/bin/true"}}, f"monitor.hooks.{HOOK_NAME}"),
    ({"hooks": {HOOK_NAME: {"command": "/bin/true --x"}}}, f"monitor.hooks.{HOOK_NAME}.command"),
    ({"hooks": {HOOK_NAME: {"command": []}}}, f"monitor.hooks.{HOOK_NAME}.command"),
    ({"hooks": {HOOK_NAME: {"command": ["/bin/true", ""]}}},
     f"monitor.hooks.{HOOK_NAME}.command"),
    ({"hooks": {HOOK_NAME: {"command": ["/bin/true"], "timeout": "never"}}},
     f"monitor.hooks.{HOOK_NAME}.timeout"),
    ({"hooks": {HOOK_NAME: {"command": ["/bin/true"], "timeout": "2h"}}},
     f"monitor.hooks.{HOOK_NAME}.timeout"),
    ({"hooks": {HOOK_NAME: {"command": ["/bin/true"], "shell": True}}},
     f"monitor.hooks.{HOOK_NAME}.shell"),
    ({"hooks": {HOOK_NAME: {"command": ["/bin/true"], "env": {"SEALTRAIL_PASSPHRASE": "x"}}}},
     f"monitor.hooks.{HOOK_NAME}.env.SEALTRAIL_PASSPHRASE"),
    ({"hooks": {HOOK_NAME: {"command": ["/bin/true"], "env": {"A": 1}}}},
     f"monitor.hooks.{HOOK_NAME}.env.A"),
])
def test_bad_publish_settings_name_the_field(doc: dict[str, Any], field: str) -> None:
    doc = {"sinks": [{"type": "syslog", "name": "soar", "host": "127.0.0.1"}], **doc}
    with pytest.raises(ConfigError) as err:
        build_config(doc)
    message = str(err.value)
    assert message.startswith(field + ":"), message
    assert re.search(r"\S", message[len(field) + 1:])
