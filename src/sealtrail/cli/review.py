"""The periodic log review: ``review list|show|sign-off|benign|assign|close``.

The same workflow as the console's Review page and the API (compliance/review.py), worked
directly on the log: each step is an event sealtrail appends to the log, with the reviewer
(``--reviewer``, else the operating-system user) as its actor and the note as its reason. The
CLI records its steps in the auditor role: file access to the data directory stands in for the
API's auditor key, and whoever signs off names themselves. So that a name typed with
``--reviewer`` is never mistaken for a console sign-in, every CLI step also records
``metadata.via = "cli"`` and the operating-system user who ran it (``metadata.os_user``);
``review show`` prints both. Opening a period (``show``) is an audited read, like every read
of event content.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Annotated, Any

import typer

from sealtrail.cli.common import (
    DataOpt,
    LogOpt,
    errors,
    fail,
    open_log,
    operator,
)
from sealtrail.cli.monitorconf import alert_store
from sealtrail.cli.output import dumps, printable
from sealtrail.compliance.review import REVIEW_ROLE, ConflictError, ReviewBook, parse_period
from sealtrail.log.reads import Reader

review_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                         help="The periodic log review (PCI DSS 10.4.1, 10.4.3): list the "
                         "periods, show one, mark exceptions benign or assign them, close "
                         "assignments, sign a period off (each step is recorded in the log).")

NoteOpt = Annotated[str, typer.Option("--note", help="What was checked and concluded "
                                      "(required; recorded in the log).")]
ReviewerOpt = Annotated[str | None, typer.Option(
    "--reviewer", help="Who reviews (recorded as the actor user:<name>) [default: env USER, "
    "else the operating-system user].", show_default=False)]
FormatOpt = Annotated[str, typer.Option("--format", help="text or json.")]
PeriodArg = Annotated[str, typer.Argument(help="The period: a UTC day, YYYY-MM-DD.")]


def _reviewer(name: str | None) -> dict[str, str]:
    """The actor of the review's steps: ``user:<name>``, the way the console names people."""
    who = name or os.environ.get("USER")
    if not who:
        try:
            who = getpass.getuser()
        except (KeyError, OSError):
            who = ""
    who = who.strip()
    if not who or len(who) > 200 or not who.isprintable():
        fail("--reviewer: name who reviews (at most 200 printable characters)")
    return {"id": f"user:{who}", "type": "user", "name": who}


def _origin() -> dict[str, str]:
    """The keyword arguments that mark a step as the CLI's, run by this OS user."""
    return {"via": "cli", "os_user": operator()["id"]}


@contextmanager
def _book(data: str | None, log: str | None) -> Iterator[ReviewBook]:
    """The log's review, with the monitor's alerts when the data directory has them."""
    with alert_store(data) as alerts, open_log(data, log, need_keys=True) as alog:
        yield ReviewBook(alog, alerts)


def _format(value: str) -> str:
    if value not in ("text", "json"):
        fail(f"--format {value!r}: text or json")
    return value


def _period(text: str, now: datetime, name: str = "PERIOD") -> date:
    with errors():
        return parse_period(text, now, name=name)


@review_app.command("list")
def review_list(since: Annotated[str | None, typer.Option(
                    help="First period (YYYY-MM-DD) [default: 30 days back].")] = None,
                until: Annotated[str | None, typer.Option(
                    help="Last period (YYYY-MM-DD) [default: today].")] = None,
                fmt: FormatOpt = "text", data: DataOpt = None, log: LogOpt = None) -> None:
    """The review periods, newest first, with their status (JSON Lines with --format json)."""
    _format(fmt)
    with errors(), _book(data, log) as book:
        now = book.alog.now()
        first = _period(since, now, "--since") if since is not None else None
        last = _period(until, now, "--until") if until is not None else None
        for item in book.listing(now, first, last):
            row = item.brief()
            if fmt == "json":
                typer.echo(dumps(row))
                continue
            ex = row["exceptions"]
            signed = row["signed_off"]
            typer.echo(f"{row['period']}  {row['status']:<10}  events {row['events']:<6}  "
                       f"alerts {row['alerts']:<3}  exceptions open {ex['open']}/"
                       f"{ex['total']}  assignments open {row['assignments_open']}"
                       + (f"  signed off by {printable(signed['by'])}" if signed else ""))


def _show_text(doc: dict[str, Any]) -> None:
    s = doc["summary"]
    typer.echo(f"period {doc['period']} ({doc['start']} .. {doc['end']}): {doc['status']}")
    typer.echo(f"events {s['events']}; by category {s['by_category']}; "
               f"by outcome {s['by_outcome']}")
    typer.echo(f"failures {s['failures']}; failed or denied access {s['access_failures']}; "
               f"admin/configuration changes {s['changes']}; reads of the trail "
               f"{s['trail_reads']}")
    for exc in doc["exception_list"]:
        state = exc["disposition"] or "NO DISPOSITION"
        if exc["disposition"] == "assigned":
            state += f" ({exc['assignment']}, {'closed' if exc['addressed'] else 'open'})"
        typer.echo(f"exception {exc['id']} [{exc['severity']}] {printable(exc['title'])}: "
                   f"{state}")
        if exc["decided"]:
            typer.echo(f"  decided by {printable(exc['decided']['by'])}"
                       f"{_via_text(exc['decided'])}")
    for asg in doc["assignments"]:
        typer.echo(f"assignment {asg['id']} to {printable(asg['assignee'])}: {asg['status']}"
                   f" (assigned{_via_text(asg['assigned'])}"
                   + (f"; closed by {printable(asg['closed']['by'])}"
                      f"{_via_text(asg['closed'])}" if asg["closed"] else "") + ")")
    so = doc["signed_off"]
    typer.echo(f"signed off by {printable(so['by'])}{_via_text(so)} at {so['at']}: "
               f"{printable(so['note'])}" if so else "not signed off")
    if doc.get("late_exceptions"):
        typer.echo(f"reopened: {len(doc['late_exceptions'])} exception(s) appeared after the "
                   f"sign-off: {', '.join(doc['late_exceptions'])}")


def _via_text(step: dict[str, Any]) -> str:
    """`` via cli (os user root)``: how a step came in, as recorded."""
    via = step.get("via")
    if not via:
        return " via (not recorded)"
    user = step.get("os_user")
    return f" via {printable(via)}" + (f" (os user {printable(user)})" if user else "")


@review_app.command("show")
def review_show(period: PeriodArg, fmt: FormatOpt = "text", reviewer: ReviewerOpt = None,
                data: DataOpt = None, log: LogOpt = None) -> None:
    """One period: summary, alerts, exceptions and their disposition, assignments, sign-off
    (an audited read)."""
    _format(fmt)
    actor = _reviewer(reviewer)
    with errors(), _book(data, log) as book:
        now = book.alog.now()
        item = book.item(_period(period, now), now, reader=Reader(actor, REVIEW_ROLE))
        doc = item.to_json()
        if fmt == "json":
            typer.echo(dumps(doc))
        else:
            _show_text(doc)


def _step(data: str | None, log: str | None, period: str, run: Any) -> None:
    """Run one step and print the period as it now stands (JSON); a refused step exits 2."""
    with errors(), _book(data, log) as book:
        now = book.alog.now()
        day = _period(period, now)
        try:
            item = run(book, day, now)
        except ConflictError as exc:
            fail(str(exc))
        except LookupError as exc:
            fail(str(exc.args[0]) if exc.args else "not found")
        typer.echo(dumps(item.brief()))


@review_app.command("sign-off")
def review_sign_off(period: PeriodArg, note: NoteOpt, reviewer: ReviewerOpt = None,
                    data: DataOpt = None, log: LogOpt = None) -> None:
    """Sign a period off (refused while an exception has no disposition)."""
    actor = _reviewer(reviewer)
    _step(data, log, period, lambda b, d, now: b.sign_off(d, actor=actor, role=REVIEW_ROLE,
                                                          note=note, now=now, **_origin()))


@review_app.command("benign")
def review_benign(period: PeriodArg,  # noqa: PLR0917 - CLI arguments
                  exception: Annotated[str, typer.Argument(help="The exception's id.")],
                  note: NoteOpt, reviewer: ReviewerOpt = None, data: DataOpt = None,
                  log: LogOpt = None) -> None:
    """Mark an exception benign, saying why."""
    actor = _reviewer(reviewer)
    _step(data, log, period, lambda b, d, now: b.dispose(
        d, exception, "benign", actor=actor, role=REVIEW_ROLE, note=note, now=now,
        **_origin()))


@review_app.command("assign")
def review_assign(period: PeriodArg,  # noqa: PLR0917 - CLI arguments
                  exception: Annotated[str, typer.Argument(help="The exception's id.")],
                  to: Annotated[str, typer.Option("--to", help="Who is to handle it.")],
                  note: NoteOpt, reviewer: ReviewerOpt = None, data: DataOpt = None,
                  log: LogOpt = None) -> None:
    """Assign an exception to someone, saying what to do (tracked until closed)."""
    actor = _reviewer(reviewer)
    _step(data, log, period, lambda b, d, now: b.dispose(
        d, exception, "assigned", actor=actor, role=REVIEW_ROLE, note=note, now=now,
        assignee=to, **_origin()))


@review_app.command("close")
def review_close(period: PeriodArg,  # noqa: PLR0917 - CLI arguments
                 assignment: Annotated[str, typer.Argument(help="The assignment's id.")],
                 note: NoteOpt, reviewer: ReviewerOpt = None, data: DataOpt = None,
                 log: LogOpt = None) -> None:
    """Close an assignment with how it was resolved."""
    actor = _reviewer(reviewer)
    _step(data, log, period, lambda b, d, now: b.close(
        d, assignment, actor=actor, role=REVIEW_ROLE, note=note, now=now, **_origin()))

