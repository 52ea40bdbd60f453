"""``import``: another system's audit log into the trail (core/sources/).

The whole input is read and every record mapped and checked before the first append, so a bad
record stores nothing (exit 2, naming the record and field) unless ``--skip-invalid`` leaves it
out. Records keep deterministic ids, so importing the same file again, or an overlapping
export, stores each record once; an import cut short (a crash, Ctrl-C) is finished by running
it again.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Annotated, Any

import typer

from sealtrail.cli.common import DataOpt, LogOpt, errors, open_log, say
from sealtrail.cli.inputs import read_input
from sealtrail.cli.output import dumps, printable
from sealtrail.core.sources import NAMES, get_source
from sealtrail.log.imports import conflicts, convert_for

commands = typer.Typer(rich_markup_mode=None)
_BATCH = 1000


@commands.command("import")
def import_(file: Annotated[Path, typer.Argument(
                help="The source's log file (- for standard input; .gz is read as gzip).")],
            source: Annotated[str, typer.Option(
                "--source", help=f"What wrote FILE: one of {', '.join(NAMES)}.")],
            skip_invalid: Annotated[bool, typer.Option(
                "--skip-invalid", help="Leave out records that cannot be imported (each is "
                "listed on stderr) instead of importing nothing.")] = False,
            data: DataOpt = None, log: LogOpt = None) -> None:
    """Import another system's audit records: each becomes an event (actor, action, outcome,
    target, time) that keeps the record intact under metadata.original, with its Sigma log
    source under metadata.log_source. Re-importing stores nothing twice."""
    with errors():
        src = get_source(source)
        text = read_input(file)
        with open_log(data, log, need_keys=True) as alog:
            converted = convert_for(alog, src, text, skip_invalid=skip_invalid)
            for where, why in converted.skipped[:20]:
                say(f"skipped {where}: {printable(why)}")
            if converted.skipped_count > 20:
                say(f"... and {converted.skipped_count - 20} more skipped")
            events = converted.events
            receipts = [r for k in range(0, len(events), _BATCH)
                        for r in alog.append_validated(events[k:k + _BATCH])]
            clashes = conflicts(alog, events, receipts)
            cp = alog.checkpoint().checkpoint
        stored = [r.index for r in receipts if not r.duplicate]
        new, duplicates = len(stored), len(receipts) - len(stored) - len(clashes)
        first, last = (stored[0], stored[-1]) if stored else (None, None)
        summary: dict[str, Any] = {
            "source": src.name, "records": converted.records, "imported": new,
            "duplicates": duplicates, "skipped": converted.skipped_count,
            "conflicts": len(clashes), "first_index": first, "last_index": last,
            "tree_size": cp.size, "root_hash": base64.b64encode(cp.root).decode()}
        typer.echo(dumps(summary))
        if clashes:
            for pos, index in clashes[:20]:
                say(f"error: {converted.wheres[pos]}: its id is already taken by a "
                    f"different event (entry {index}); this record was NOT stored "
                    "(a forged event, or a record changed at its source)")
            raise typer.Exit(1)
