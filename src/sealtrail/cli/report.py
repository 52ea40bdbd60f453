"""CLI command ``report``: a compliance report for one standard, recorded in the trail.

Exit codes: 0 every check passed (or warned, or does not apply); 1 a check failed; 2 a usage
error.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from sealtrail.cli.common import (
    TIME_HELP,
    DataOpt,
    LogOpt,
    errors,
    fail,
    open_log,
    operator,
    time_opt,
)
from sealtrail.cli.monitorconf import alert_store
from sealtrail.compliance.bundle import open_private
from sealtrail.compliance.checks import STANDARDS
from sealtrail.compliance.report import FORMATS, generate_report, load_keys, render
from sealtrail.compliance.review import ReviewBook, review_evidence
from sealtrail.monitor.alerts import alerting_evidence

commands = typer.Typer(rich_markup_mode=None)


@commands.command("report")
def report(  # noqa: PLR0917 - CLI options
           standard: Annotated[str, typer.Option(
               "--standard", help=f"One of {', '.join(STANDARDS)}.")],
           fmt: Annotated[str, typer.Option(
               "--format", help=f"One of {', '.join(FORMATS)}.")] = "html",
           since_: Annotated[str | None, typer.Option(
               "--since", "--from", help="Events with time >= this [default: the start]. "
               f"{TIME_HELP}")] = None,
           until_: Annotated[str | None, typer.Option(
               "--until", "--to", help=f"Events with time < this [default: now]. {TIME_HELP}")
           ] = None,
           out: Annotated[Path | None, typer.Option(
               "--out", help="Write the report here [default: stdout].")] = None,
           verify: Annotated[bool, typer.Option(
               "--verify/--no-verify", help="Run a full verification first when the last "
               "one is older than 24 h.")] = True,
           data: DataOpt = None, log: LogOpt = None) -> None:
    """Check the log against a standard; the report's hash is appended to the log."""
    if standard not in STANDARDS:
        fail(f"--standard: use one of {', '.join(STANDARDS)}")
    if fmt not in FORMATS:
        fail(f"--format: use one of {', '.join(FORMATS)}")
    since, until = time_opt(since_, "--since"), time_opt(until_, "--until")
    if since is not None and until is not None and since >= until:
        fail("--since must be before --until")
    with errors(), alert_store(data) as alerts, open_log(data, log) as alog:
        # The periodic review's state, judged as the service's report judges it.
        now = alog.now()
        review = review_evidence(ReviewBook(alog, alerts), since, until, now)
        result = generate_report(alog, standard, actor=operator(), since=since, until=until,
                                 verify_now=verify,
                                 keys=load_keys(alog.directory.parent, alog.store_url),
                                 alerting=alerting_evidence(alog.directory.parent,
                                                            alog.store_url),
                                 review=review, now=now)
        body = render(result, fmt)
        if out is None:
            sys.stdout.buffer.write(body)
            sys.stdout.flush()
        else:
            try:  # 0600 whatever the umask: a report names people and systems
                with open_private(out) as dest:
                    dest.write(body)
            except OSError as exc:
                fail(f"--out {out}: {exc.strerror or exc}", 1)
        c = result.counts
        receipt = result.receipt
        typer.echo(f"{standard}: pass {c['pass']}, fail {c['fail']}, warn {c['warn']}, "
                   f"n/a {c['not-applicable']}; {result.hash} recorded at entry "
                   f"{receipt.index if receipt else '-'}", err=True)
    raise typer.Exit(result.exit_code)
