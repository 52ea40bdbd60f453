"""Personal data: ``erase``, ``subject-export``, ``redact-test`` and ``hold add|release|list``.

Erasure destroys the subject's key (crypto-shredding): the tree and every proof stay valid. A
legal hold blocks it. Each of these is recorded in the log; an export of a subject's events is
an audited read, recorded before any content leaves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sealtrail.cli.common import (
    OPERATOR_ROLE,
    DataOpt,
    LogOpt,
    errors,
    open_log,
    operator,
    say,
)
from sealtrail.cli.inputs import events_from
from sealtrail.cli.output import dumps
from sealtrail.log.reads import Reader, export_subject

commands = typer.Typer(rich_markup_mode=None)
hold_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                       help="Legal holds on data subjects (block erasure).")

SubjectOpt = Annotated[str, typer.Option("--subject", help="The data subject's id.")]
ReasonOpt = Annotated[str, typer.Option("--reason", help="Why (request number, legal basis).")]


@commands.command()
def erase(subject: SubjectOpt, reason: ReasonOpt,
          data: DataOpt = None, log: LogOpt = None) -> None:
    """Erase a data subject by destroying its key (crypto-shredding); proofs stay valid.

    Refused while a legal hold is open on the subject. The erasure is an audit event.
    """
    with errors(), open_log(data, log, need_keys=True) as alog:
        receipt = alog.erase_subject(subject, reason=reason, actor=operator())
        typer.echo(dumps({"erased": True, "event_index": receipt.index,
                          "wal_purged": alog.wal_purged}))
        if not alog.wal_purged and alog.store_url is None:
            say("warning: a reader kept the WAL busy; the destroyed key's old pages "
                "stay in log.db-wal until the next WAL checkpoint after readers finish")
        elif not alog.wal_purged:
            say("warning: another session's snapshot held VACUUM back; the destroyed key's "
                "old row version stays in the table until the next erasure's VACUUM (and "
                "in PostgreSQL's WAL, replicas and backups until they expire)")


@commands.command("subject-export")
def subject_export(subject: Annotated[str, typer.Argument(help="The data subject's id.")],
                   data: DataOpt = None, log: LogOpt = None) -> None:
    """Every event about a data subject, with dates and purposes (GDPR Art. 15), JSON Lines.

    The export reads event content, so it is itself recorded as an audit_access event.
    """
    with errors(), open_log(data, log, need_keys=True) as alog:
        # Recorded before any content leaves (a read that cannot be recorded is not served).
        found = export_subject(alog, subject, reader=Reader(operator(), OPERATOR_ROLE))
        for entry, ev in found:
            typer.echo(dumps({"index": entry.index, "time": ev.get("time"),
                              "action": ev.get("action"), "purpose": ev.get("purpose"),
                              "event": ev}))


@commands.command("redact-test")
def redact_test(file: Annotated[Path | None, typer.Argument(
                    help="JSON Lines events [default: standard input].")] = None,
                data: DataOpt = None, log: LogOpt = None) -> None:
    """Show what redaction would store for sample events (nothing is stored)."""
    with errors():
        events = events_from(file)
        with open_log(data, log, need_keys=True) as alog:
            for ev in events:
                out, findings = alog.redact_preview(ev)
                typer.echo(dumps({"event": out, "redacted": [
                    {"field": f.path, "kind": f.kind} for f in findings]}))


@hold_app.command("add")
def hold_add(subject: SubjectOpt, reason: ReasonOpt,
             data: DataOpt = None, log: LogOpt = None) -> None:
    """Put a legal hold on a subject: its erasure is refused until released."""
    with errors(), open_log(data, log, need_keys=True) as alog:
        receipt = alog.hold_subject(subject, reason=reason, actor=operator())
        typer.echo(dumps({"held": True, "event_index": receipt.index}))


@hold_app.command("release")
def hold_release(subject: SubjectOpt, reason: ReasonOpt,
                 data: DataOpt = None, log: LogOpt = None) -> None:
    """Release the legal holds on a subject."""
    with errors(), open_log(data, log, need_keys=True) as alog:
        receipt = alog.release_subject(subject, reason=reason, actor=operator())
        typer.echo(dumps({"released": True, "event_index": receipt.index}))


@hold_app.command("list")
def hold_list(all_holds: Annotated[bool, typer.Option("--all", help="Released ones too.")
                                   ] = False,
              data: DataOpt = None, log: LogOpt = None) -> None:
    """Legal holds as JSON Lines (subjects by pseudonym)."""
    with errors(), open_log(data, log) as alog:
        for item in alog.holds(open_only=not all_holds):
            typer.echo(dumps(item))
