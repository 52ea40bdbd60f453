"""``query``: search events, newest first, as a table, JSON Lines or CSV.

The search itself is recorded in the log (``audit_access``) before the results are printed.
Event text is data: table cells and CSV fields show control characters escaped
(``cli/output.py``).
"""

from __future__ import annotations

import csv
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from sealtrail.cli.common import (
    OPERATOR_ROLE,
    TIME_HELP,
    DataOpt,
    LogOpt,
    errors,
    fail,
    operator,
    say,
    time_opt,
)
from sealtrail.cli.output import dumps, printable
from sealtrail.cli.selection import make_filter, open_for_search
from sealtrail.log.reads import Reader
from sealtrail.log.search import search

commands = typer.Typer(rich_markup_mode=None)


@commands.command()
def query(actor: Annotated[str | None, typer.Option(  # noqa: PLR0917 - CLI options
              help="actor.id equals.")] = None,
          ip: Annotated[str | None, typer.Option(help="actor.ip equals.")] = None,
          subject: Annotated[str | None, typer.Option(
              help="The event names this data subject.")] = None,
          action: Annotated[str | None, typer.Option(
              help="Action, its dotted prefix (user matches user.login) or a glob (user.*).")
          ] = None,
          category: Annotated[str | None, typer.Option()] = None,
          outcome: Annotated[str | None, typer.Option()] = None,
          target: Annotated[str | None, typer.Option(help="target.id equals.")] = None,
          source: Annotated[str | None, typer.Option(help="source.service equals.")] = None,
          request_id: Annotated[str | None, typer.Option("--request-id")] = None,
          trace_id: Annotated[str | None, typer.Option("--trace-id")] = None,
          since: Annotated[str | None, typer.Option(
              "--since", "--from", help=f"Event time >= this. {TIME_HELP}")] = None,
          until: Annotated[str | None, typer.Option(
              "--until", "--to", help=f"Event time < this. {TIME_HELP}")] = None,
          text: Annotated[str | None, typer.Option(help="Case-insensitive text anywhere.")
                          ] = None,
          limit: Annotated[int, typer.Option(min=1, max=1_000_000)] = 100,
          oldest_first: Annotated[bool, typer.Option("--oldest-first")] = False,
          fmt: Annotated[str, typer.Option("--format", help="table, jsonl or csv.")] = "table",
          data: DataOpt = None, log: LogOpt = None) -> None:
    """Search events (newest first). The search itself is recorded as an audit_access event."""
    if fmt not in ("table", "jsonl", "csv"):
        fail("--format: use table, jsonl or csv")
    flt = make_filter(actor=actor, actor_ip=ip, subject=subject, action=action,
                      category=category, outcome=outcome, target=target, source=source,
                      request_id=request_id, trace_id=trace_id,
                      since=time_opt(since, "--since"), until=time_opt(until, "--until"),
                      text=text)
    with errors(), open_for_search(data, log, flt) as alog:
        if alog.encrypted and alog.locked_reason:
            say("note: the keyring is locked; encrypted fields are shown sealed")
        rows = list(search(alog, flt, limit=limit, newest_first=not oldest_first,
                           reader=Reader(operator(), OPERATOR_ROLE)))
        if fmt == "jsonl":
            for entry, ev in rows:
                typer.echo(dumps({"index": entry.index, "event": ev}))
        elif fmt == "csv":
            w = csv.writer(sys.stdout, lineterminator="\n")
            cols = ["index", "time", "actor", "action", "outcome", "category", "target",
                    "source", "id"]
            w.writerow(cols)
            for entry, ev in rows:
                w.writerow([printable(str(v)) for v in _row(entry.index, ev)])
        else:
            table = Table(show_lines=False, highlight=False)
            for col in ("#", "time", "actor", "action", "outcome", "category", "target"):
                table.add_column(col, overflow="fold")
            for entry, ev in rows:
                table.add_row(*[printable(str(v)) for v in _row(entry.index, ev)[:7]])
            Console(highlight=False, soft_wrap=False).print(table)
            say(f"{len(rows)} event(s)")


def _row(index: int, ev: dict[str, Any]) -> list[Any]:
    """An event's table and CSV columns: index, time, actor, action, outcome, category,
    target (id, else name), source service, id."""
    target = ev.get("target") or {}
    return [index, ev.get("time", ""), ev.get("actor", {}).get("id", ""), ev.get("action", ""),
            ev.get("outcome", ""), ev.get("category", ""),
            target.get("id") or target.get("name") or "",
            (ev.get("source") or {}).get("service", ""), ev.get("id", "")]
