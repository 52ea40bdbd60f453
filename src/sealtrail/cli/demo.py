"""``sealtrail demo``: the service on the embedded default, with a little sample data.

It makes (or reuses) a data directory with an encrypted log, appends sample events (a login
burst, reads of records about a data subject, an admin change) and imports a few AWS
CloudTrail records (``sealtrail import``'s path), creates one API key per role,
prints them with ready-to-paste requests, makes one console user per role (printed with
their passwords), and serves the API and the console on loopback until interrupted.
The monitor runs the built-in rules, so the sample's login burst and role grant show up as
alerts.
"""

from __future__ import annotations

import json
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from sealtrail.core.sources import get_source
from sealtrail.core.sources.base import convert
from sealtrail.log.apikeys import ApiKeys
from sealtrail.log.auditlog import AuditLog

DEMO_PASSPHRASE = "demo passphrase (not for production)"  # noqa: S105 - a demo log's key


def _events() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(5):
        out.append({"actor": {"id": "mallory", "ip": "198.51.100.23"}, "action": "user.login",
                    "outcome": "failure", "category": "authentication",
                    "reason": f"bad password (attempt {i + 1})"})
    out.append({"actor": {"id": "alice", "ip": "203.0.113.7", "name": "Alice Martin"},
                "action": "user.login", "outcome": "success", "category": "authentication"})
    for k in range(3):
        out.append({"actor": {"id": "alice", "ip": "203.0.113.7"}, "action": "record.read",
                    "outcome": "success", "category": "data_access",
                    "subjects": ["patient-4410"], "purpose": "treatment",
                    "target": {"type": "record", "id": f"rec-{k}"}})
    out.append({"actor": {"id": "bob"}, "action": "role.grant", "outcome": "success",
                "category": "authorization", "target": {"type": "user", "id": "carol"},
                "changes": {"before": {"roles": ["viewer"]}, "after": {"roles": ["admin"]}}})
    return out


def _cloudtrail() -> str:
    """A CloudTrail log file of three records: a failed console login, then an access key
    created and a trail stopped by an assumed role (what detection rules look for)."""
    who = {"type": "AssumedRole", "principalId": "AROAEXAMPLEID:ops-session",
           "arn": "arn:aws:sts::123456789012:assumed-role/ops/ops-session",
           "accountId": "123456789012"}
    base = {"eventVersion": "1.09", "awsRegion": "eu-west-1", "readOnly": False,
            "recipientAccountId": "123456789012", "eventType": "AwsApiCall",
            "managementEvent": True, "eventCategory": "Management",
            "sourceIPAddress": "198.51.100.23", "userAgent": "aws-cli/2.15.0"}
    return json.dumps({"Records": [
        {**base, "eventID": "5d6f0b0e-0c1a-4e4e-9d2a-0d0c2c8f1a01", "eventType": "AwsConsoleSignIn",
         "eventTime": "2026-12-01T08:59:12Z", "eventSource": "signin.amazonaws.com",
         "eventName": "ConsoleLogin", "userIdentity": {"type": "IAMUser",
                                                       "userName": "mallory",
                                                       "accountId": "123456789012"},
         "responseElements": {"ConsoleLogin": "Failure"},
         "errorMessage": "Failed authentication"},
        {**base, "eventID": "5d6f0b0e-0c1a-4e4e-9d2a-0d0c2c8f1a02",
         "eventTime": "2026-12-01T09:02:40Z", "eventSource": "iam.amazonaws.com",
         "eventName": "CreateAccessKey", "userIdentity": who,
         "requestParameters": {"userName": "backup-bot"}},
        {**base, "eventID": "5d6f0b0e-0c1a-4e4e-9d2a-0d0c2c8f1a03",
         "eventTime": "2026-12-01T09:03:05Z", "eventSource": "cloudtrail.amazonaws.com",
         "eventName": "StopLogging", "userIdentity": who,
         "requestParameters": {"name": "arn:aws:cloudtrail:eu-west-1:123456789012:trail/main"}},
    ]})


def prepare(data: Path, passphrase: str) -> dict[str, str]:
    """Create the demo log and keys (once); return a fresh token per role."""
    new = not (data / "default" / "log.db").exists()
    with AuditLog.open(data, "default", passphrase=passphrase) as log:
        if new:
            log.append_many(_events())
        elif "missing" in log.settings_problem:
            # Sample data from a version that did not sign settings yet: adopt them, on the
            # record (a real log is adopted by its operator: sealtrail settings adopt).
            log.adopt_settings(reason="demo data made before settings were signed",
                               actor={"id": "sealtrail-demo", "type": "service"})
        # Imported records have ids of their own: importing them at every start stores them once.
        log.append_many(convert(get_source("cloudtrail"), _cloudtrail()).events)
        vkey = log.vkey()
    keys = ApiKeys(data)
    try:
        now = datetime.now(UTC)
        tokens = {role: keys.create(role, log=None, name=f"demo {role} {secrets.token_hex(2)}",
                                    now=now)
                  for role in ("ingest", "reader", "auditor", "admin")}
    finally:
        keys.close()
    tokens["vkey"] = vkey
    return tokens


def console_logins(data: Path) -> dict[str, tuple[str, str]]:
    """One console user per role (made once, with a random password kept in
    ``DATA/demo-logins.json``, 0600, so a restarted demo prints the same logins)."""
    from sealtrail.log.users import Users  # noqa: PLC0415 - the demo's only use

    kept = data / "demo-logins.json"
    logins: dict[str, tuple[str, str]] = {}
    if kept.exists():
        logins = {role: (pair[0], pair[1]) for role, pair in json.loads(kept.read_text()).items()}
    users = Users(data)
    try:
        now = datetime.now(UTC)
        for role in ("reader", "auditor", "admin"):
            name = f"demo-{role}"
            if role in logins and users.get(name) is not None:
                continue
            if users.get(name) is not None:
                name = f"demo-{role}-{secrets.token_hex(2)}"
            password = secrets.token_urlsafe(12)
            users.create(name, role, password, now)
            logins[role] = (name, password)
    finally:
        users.close()
    fd = os.open(kept, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({role: list(pair) for role, pair in logins.items()}, out)
    return logins


def run_demo(data: Path, port: int) -> None:
    """Prepare the demo and serve it on 127.0.0.1:``port`` until interrupted."""
    from sealtrail.server.app import ServiceConfig, create_app  # noqa: PLC0415
    from sealtrail.server.serving import listen, serve  # noqa: PLC0415 - demo and serve only
    # The port first: a taken one fails here (ListenError: "cannot listen on ...: the port is
    # already in use", exit 2) before any key is made or printed.
    sockets = listen("127.0.0.1", port)
    try:
        phrase = os.environ.get("SEALTRAIL_PASSPHRASE") or DEMO_PASSPHRASE
        tokens = prepare(data, phrase)
        logins = console_logins(data)
        witness = _demo_witness(data, port + 1, phrase)
        _announce(data, port, tokens, show_phrase=phrase == DEMO_PASSPHRASE)
        if witness is not None:
            typer.echo(f"  A witness cosigns the log's checkpoints: {witness} (docs/"
                       "witnessing.md); see them at "
                       f"http://127.0.0.1:{port}/tlog/default/checkpoint\n")
        _announce_console(port, logins)
        app = create_app(ServiceConfig(data, passphrase=phrase))
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    serve(app, sockets=sockets, host="127.0.0.1", port=port, log_level="warning")


def _demo_witness(data: Path, port: int, passphrase: str) -> str | None:
    """A witness for the demo log on 127.0.0.1:``port`` (a thread of this process), its key
    under ``DATA/_demo_witness``, configured as the log's witness; None (and a note) when
    the port is taken. The service's rounds then serve the checkpoint cosigned."""
    import threading  # noqa: PLC0415 - the demo's witness only

    from sealtrail.log import witnesses  # noqa: PLC0415
    from sealtrail.log.witness import KEY_FILE, WITNESS_DIR, WitnessState  # noqa: PLC0415
    from sealtrail.server.serving import ListenError, build_server, listen  # noqa: PLC0415
    from sealtrail.server.witness_app import create_witness_app  # noqa: PLC0415

    try:
        sockets = listen("127.0.0.1", port)
    except ListenError as exc:
        typer.echo(f"  (no witness for the demo: {exc})")
        return None
    state = WitnessState(data / "_demo_witness")
    if not (data / "_demo_witness" / WITNESS_DIR / KEY_FILE).exists():
        state.init("sealtrail.demo/witness")
    url = f"http://127.0.0.1:{port}"
    with AuditLog.open(data, "default", passphrase=passphrase) as log:
        state.add_log(log.vkey())
        policy = witnesses.load(log)
        if policy is None or [w.url for w in policy.witnesses] != [url]:
            if policy is not None:
                for w in policy.witnesses:
                    witnesses.remove(log, w.name, actor=DEMO_ACTOR)
            witnesses.add(log, url, state.cosigner().key.format(), actor=DEMO_ACTOR)
    server = build_server(create_witness_app(state), host="127.0.0.1", port=port,
                          log_level="warning", lifespan="off")
    threading.Thread(target=server.run, kwargs={"sockets": sockets}, daemon=True,
                     name="sealtrail-demo-witness").start()
    return url


DEMO_ACTOR = {"id": "sealtrail-demo", "type": "service"}


def _announce(data: Path, port: int, tokens: dict[str, str], *, show_phrase: bool) -> None:
    """Print the demo's keys and ready-to-paste requests."""
    base = f"http://127.0.0.1:{port}"
    typer.secho("sealtrail demo", bold=True)
    typer.echo(f"  data: {data}   verifier key: {tokens['vkey']}")
    if show_phrase:  # the demo's own, not a secret; one you gave is never echoed
        typer.echo(f"  passphrase (the demo's own): export SEALTRAIL_PASSPHRASE="
                   f"'{DEMO_PASSPHRASE}'   "
                   f"then: sealtrail --data {data} query --ip 203.0.113.7")
    typer.echo("  API keys (one per role, shown once):")
    for role in ("ingest", "reader", "auditor", "admin"):
        typer.echo(f"    {role:<8} {tokens[role]}")
    typer.echo(f"\n  Point a browser at {base}/docs (the API, with 'Authorize' for a key).")
    typer.echo("  Or try:")
    typer.echo(f"    curl -s -H 'Authorization: Bearer {tokens['reader']}' "
               f"'{base}/v1/logs/default/events?actor=mallory'")
    typer.echo(f"    curl -s -H 'Authorization: Bearer {tokens['ingest']}' -XPOST "
               f"{base}/v1/logs/default/events -d "
               "'[{\"actor\":{\"id\":\"you\"},\"action\":\"demo.try\",\"outcome\":\"success\"}]'")
    typer.echo(f"    curl -s -H 'Authorization: Bearer {tokens['reader']}' "
               f"{base}/v1/logs/default/checkpoint")
    typer.echo(f"    curl -s -H 'Authorization: Bearer {tokens['reader']}' "
               f"'{base}/v1/logs/default/events?action=aws.*'   "
               "# CloudTrail records imported by the demo")
    typer.echo(f"    curl -s -H 'Authorization: Bearer {tokens['ingest']}' "
               f"--data-binary @trail.json.gz '{base}/v1/logs/default/import?source=cloudtrail'")
    typer.echo(f"    curl -s -H 'Authorization: Bearer {tokens['reader']}' "
               f"'{base}/v1/logs/default/alerts?status=open'   "
               "# the monitor's alerts on the sample")
    typer.echo("  Ctrl-C stops the service; the data stays for next time.\n")


def _announce_console(port: int, logins: dict[str, tuple[str, str]]) -> None:
    """Print where the console is and how to sign in (last: what a person needs first)."""
    typer.secho(f"  Console: point a browser at http://127.0.0.1:{port}/ui/", bold=True)
    for role in ("auditor", "reader", "admin"):
        name, password = logins[role]
        typer.echo(f"    sign in as {name:<18} password {password}   ({role})")
    typer.echo("")
