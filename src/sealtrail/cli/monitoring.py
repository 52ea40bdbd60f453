"""The monitor and its rules: ``monitor``, ``rules test|list`` and ``alerts list|ack|resolve|test``.

``monitor`` runs the rules over every log until stopped (``serve`` starts it as its child
process); rule authors try rules on sample events with ``rules test`` (nothing is stored);
responders change an alert's status, which is recorded in the log with who and why.
"""

from __future__ import annotations

import gc
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer

from sealtrail.cli.common import (
    DataOpt,
    LogOpt,
    errors,
    fail,
    open_log,
    operator,
    passphrase,
    place,
    say,
    store_url,
    where,
)
from sealtrail.cli.inputs import read_input
from sealtrail.cli.monitorconf import monitor_config
from sealtrail.cli.output import dumps, printable
from sealtrail.core.errors import ValidationError
from sealtrail.core.jsonlines import numbered_lines
from sealtrail.core.redact import Redactor
from sealtrail.core.sources import NAMES, Source, get_source
from sealtrail.core.sources.base import checked_event
from sealtrail.core.timefmt import parse_time
from sealtrail.log.datadir import open_alert_rows, service_rows_exist
from sealtrail.monitor.alerts import AlertStore, monitor_db_path
from sealtrail.monitor.builtin import builtin_rules
from sealtrail.monitor.engine import evaluate_events, load_rules
from sealtrail.monitor.rules import Rule, RuleError, RulesError
from sealtrail.monitor.runner import Monitor

commands = typer.Typer(rich_markup_mode=None)
rules_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                        help="Detection rules: try them on sample events, "
                        "list them.")
alerts_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                         help="Alerts raised by the monitor: list, "
                         "acknowledge, resolve (each change is recorded in the log).")

_decoder = msgspec.json.Decoder()


def _rules(paths: list[Path], builtin: bool) -> list[Rule]:
    out = builtin_rules() if builtin else []
    for path in paths:
        if not path.exists():
            fail(f"rules path {path}: no such file or directory")
        try:
            loaded = load_rules(path)
        except RuleError as exc:
            if isinstance(exc, RulesError):  # every refused rule on its own line
                say(f"error: {printable(exc.summary)}")
                for one in exc.errors:
                    say(f"error:   {printable(str(one))}")
                raise typer.Exit(2) from None
            fail(str(exc))
        if not loaded:
            what = "file" if path.is_file() else "directory"
            fail(f"rules path {path}: the {what} holds no rule (native rules have 'kind:', "
                 "Sigma rules 'detection:'; see docs/rules.md)")
        out.extend(loaded)
    return out


def _sample_events(file: Path) -> list[dict[str, Any]]:
    """JSON Lines events; ``time``/``received_at`` default to now so windows work."""
    try:
        raw = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
    except OSError as exc:
        fail(f"--events {file}: {exc.strerror or exc}")
    events = []
    for n, line in numbered_lines(raw):  # LF only: JSON may hold U+2028 unescaped
        try:
            ev = _decoder.decode(line)
        except msgspec.DecodeError as exc:
            fail(f"--events line {n}: not JSON: {exc}")
        if not isinstance(ev, dict):
            fail(f"--events line {n}: an event is a JSON object")
        if "time" in ev:
            try:
                parse_time(str(ev["time"]))
            except ValueError as exc:
                fail(f"--events line {n}: time: {exc}")
        ev.setdefault("received_at", ev.get("time"))
        events.append(ev)
    return events


def _source_events(file: Path, src: Source) -> tuple[list[dict[str, Any]], list[str]]:
    """The records of another system's log (``--source``) as the events ``sealtrail import``
    would store (same reader, same mapping, same checks, gzip read transparently, and the
    default redaction, ``mask``: a rule on a secret sees the marker, as on the stored
    event), and where each record was in the file (``line 3``, ``record 2``)."""
    events: list[dict[str, Any]] = []
    wheres: list[str] = []
    redactor = Redactor("mask")
    with errors():
        text = read_input(file, "--events")
        for where, record in src.records(text):
            try:
                ev = redactor.redact(checked_event(src, record))[0].to_dict()
            except ValidationError as exc:
                raise ValidationError(f"--events {where}: {exc.field}", exc.message) from None
            ev.setdefault("received_at", ev.get("time"))
            events.append(ev)
            wheres.append(where)
    return events, wheres


@rules_app.command("test")
def rules_test(events: Annotated[Path, typer.Option(
                   "--events", help="JSON Lines events to run through the rules ('-': stdin); "
                   "with --source, that system's own log file.")],
               rules: Annotated[list[Path] | None, typer.Argument(
                   help="Rule files or directories (native YAML and Sigma); optional with "
                   "--builtin.", show_default=False)] = None,
               builtin: Annotated[bool, typer.Option(
                   "--builtin/--no-builtin", help="Also run the built-in pack.")] = False,
               fmt: Annotated[str, typer.Option("--format", help="table or jsonl.")] = "table",
               source: Annotated[str | None, typer.Option(
                   "--source", help="--events holds this system's own records, converted as "
                   f"'sealtrail import' would store them: one of {', '.join(NAMES)}.",
                   show_default=False)] = None,
               ) -> None:
    """Show which events fire which rule (nothing is stored; for rule authors)."""
    if fmt not in ("table", "jsonl"):
        fail("--format: use table or jsonl")
    if not rules and not builtin:
        fail("give RULES (rule files or directories), --builtin, or both")
    src: Source | None = None
    if source is not None:
        with errors():
            src = get_source(source)
    chosen = _rules(rules or [], builtin)
    if src is None:
        sample = _sample_events(events)
        wheres = [f"line {n + 1}" for n in range(len(sample))]
    else:
        sample, wheres = _source_events(events, src)
    last = max((str(e.get("time")) for e in sample if e.get("time")), default=None)
    with errors():
        fired = evaluate_events(chosen, sample, now=parse_time(last) if last else None)
    for index, det in fired:
        if fmt == "jsonl":
            typer.echo(dumps({"event": index, **det.to_dict()}))
        else:
            typer.echo(printable(f"event {index} ({wheres[index]}): {det.rule} "
                                 f"[{det.severity}] key={det.key!r} evidence={det.entries} "
                                 f"— {det.message}"))
    say(f"{len(fired)} detection(s) from {len(chosen)} rule(s) over {len(sample)} event(s)")


@rules_app.command("list")
def rules_list(rules: Annotated[list[Path] | None, typer.Argument(
                   help="Rule files or directories besides the built-in pack.")] = None) -> None:
    """The rules the monitor would run: id, kind, severity, clauses."""
    for rule in _rules(rules or [], True):
        typer.echo(dumps({"id": rule.id, "kind": rule.kind, "severity": rule.severity,
                          "enabled": rule.enabled, "origin": rule.origin,
                          "title": rule.title, "clauses": list(rule.clauses)}))


def _store(data: str | None) -> AlertStore:
    d, _ = where(data, None)
    path = monitor_db_path(d)
    store = store_url()
    if not service_rows_exist("alerts", path, store):
        fail(f"no alerts in {place(d)}: the monitor runs with 'sealtrail serve'")
    return AlertStore(path, rows=None if store is None else open_alert_rows(path, store))


@alerts_app.command("list")
def alerts_list(status: Annotated[str | None, typer.Option(  # noqa: PLR0917 - CLI options
                    help="open, acknowledged or resolved.")] = None,
                severity: Annotated[str | None, typer.Option(
                    help="low, medium, high or critical.")] = None,
                rule: Annotated[str | None, typer.Option()] = None,
                limit: Annotated[int, typer.Option(min=1, max=100_000)] = 100,
                data: DataOpt = None, log: LogOpt = None) -> None:
    """Alerts of the log, newest first (JSON Lines)."""
    _, name = where(data, log)
    with errors():
        store = _store(data)
        try:
            for alert in store.list(name, status=status, severity=severity, rule=rule,
                                    limit=limit):
                typer.echo(dumps(alert.to_dict()))
        finally:
            store.close()


def _change(alert_id: str, status: str, reason: str, data: str | None, log: str | None
            ) -> None:
    d, _ = where(data, None)
    with errors():
        store = _store(data)
        try:
            with open_log(data, log, need_keys=True) as alog:
                monitor = Monitor(Path(d), lambda: [], [], store, clock=alog.now)
                alert = monitor.change_status(alog, alert_id, status, actor=operator(),
                                              reason=reason)
                typer.echo(dumps(alert.to_dict()))
        finally:
            store.close()


ReasonOpt = Annotated[str, typer.Option("--reason", help="What was checked, what was done.")]


@alerts_app.command("ack")
def alerts_ack(alert_id: Annotated[str, typer.Argument(help="The alert's id.")],
               reason: ReasonOpt, data: DataOpt = None, log: LogOpt = None) -> None:
    """Acknowledge an alert (recorded in the log with who and why)."""
    _change(alert_id, "acknowledged", reason, data, log)


@alerts_app.command("resolve")
def alerts_resolve(alert_id: Annotated[str, typer.Argument(help="The alert's id.")],
                   reason: ReasonOpt, data: DataOpt = None, log: LogOpt = None) -> None:
    """Resolve an alert (recorded in the log with who and why)."""
    _change(alert_id, "resolved", reason, data, log)


@commands.command("monitor")
def monitor_cmd(rules: Annotated[list[Path] | None, typer.Option(  # noqa: PLR0917 - CLI options
                    "--rules", help="Rule files or directories beside the built-in pack.")
                ] = None,
                alert_webhook: Annotated[str | None, typer.Option(
                    "--alert-webhook", help="Send alerts to this URL (signing secret from env "
                    "SEALTRAIL_WEBHOOK_SECRET or --alert-webhook-secret-file).")] = None,
                alert_secret_file: Annotated[Path | None, typer.Option(
                    "--alert-webhook-secret-file")] = None,
                monitor_config_file: Annotated[Path | None, typer.Option(
                    "--monitor-config", help="Monitor configuration (JSON or YAML).")] = None,
                exit_on_eof: Annotated[bool, typer.Option(
                    "--exit-on-eof", hidden=True,
                    help="Stop when stdin closes (the service's child process).")] = False,
                data: DataOpt = None) -> None:
    """Run the rules over every log of the data directory and deliver alerts, until stopped
    (``sealtrail serve`` runs this as its child process)."""
    from sealtrail.monitor.wiring import wire  # noqa: PLC0415 - monitor only
    from sealtrail.server.logs import Logs  # noqa: PLC0415

    d, _ = where(data, None)
    with errors():
        cfg = monitor_config(rules or [], alert_webhook, alert_secret_file, monitor_config_file)
        store = store_url()
        logs = Logs(Path(d), passphrase(), lambda: datetime.now(UTC), store)
        wired = wire(Path(d), logs, cfg, lambda: datetime.now(UTC), store)
        monitor = wired.monitor
        done = threading.Event()
        with _running_until(done):
            if exit_on_eof:
                def parent_gone() -> None:
                    while sys.stdin.buffer.read(4096):
                        pass
                    done.set()
                threading.Thread(target=parent_gone, daemon=True).start()
            monitor.start()
            say(f"sealtrail monitor: {len(cfg.rules)} rules over {d}")
            try:
                done.wait()
            finally:
                monitor.stop()
                wired.close(10.0)
                logs.close()


@contextmanager
def _running_until(done: threading.Event) -> Iterator[None]:
    """The process set up for the long-running monitor, and put back as it was afterwards (a
    run in-process must not leave Ctrl-C setting a dead event, nor the collector tuned).

    SIGTERM and SIGINT set ``done``. The engine keeps many small long-lived objects (windows,
    first-seen values): fewer full collections keep its pauses short (the state is bounded by
    the key caps).
    """
    handlers = {sig: signal.signal(sig, lambda *_: done.set())
                for sig in (signal.SIGTERM, signal.SIGINT)}
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()
        for sig, handler in handlers.items():
            if handler is not None:  # None: a handler not set from Python, cannot be put back
                signal.signal(sig, handler)


@alerts_app.command("test")
def alerts_test(reason: Annotated[str, typer.Option(
                    "--reason", help="Why (e.g. the monthly alerting test).")
                ] = "scheduled test of alert delivery",
                data: DataOpt = None, log: LogOpt = None) -> None:
    """Raise a test alert: the running monitor delivers it to every sink (compliance reports
    count it as the alerting test)."""
    from sealtrail.monitor.runner import TEST_RULE, system_detection  # noqa: PLC0415

    d, _ = where(data, None)
    with errors():
        url = store_url()
        store = AlertStore(monitor_db_path(d), rows=None if url is None
                           else open_alert_rows(monitor_db_path(d), url))
        try:
            with open_log(data, log, need_keys=True) as alog:
                monitor = Monitor(Path(d), lambda: [], [], store, clock=alog.now)
                who = operator()["id"]
                alert = monitor.raise_alert(alog.name, system_detection(
                    TEST_RULE, "Alerting test", "low", f"test:{who}",
                    f"test alert raised by {who}: {reason}"[:1024],
                    ("PCI DSS 10.7.2", "PCI DSS 10.4.1.1")), alog=alog)
                typer.echo(dumps(alert.to_dict()))
                say("queued: the running service's monitor delivers it to every sink")
        finally:
            store.close()
