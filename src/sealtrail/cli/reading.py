"""``entries``: the raw entries of the log, as JSON Lines (index, leaf, event).

Reading entries shows event content, so the read is recorded in the log (``audit_access``)
before the first entry leaves: a read that cannot be recorded is not served.
"""

from __future__ import annotations

import base64
import sys
from typing import Annotated

import typer

from sealtrail.cli.common import OPERATOR_ROLE, DataOpt, LogOpt, errors, open_log, operator
from sealtrail.cli.output import dumps
from sealtrail.log.reads import Reader, read_entries

commands = typer.Typer(rich_markup_mode=None)


@commands.command()
def entries(start: Annotated[int, typer.Option(help="First index.", min=0)] = 0,
            end: Annotated[int | None, typer.Option(help="One past the last index "
                                                     "[default: size].", min=0)] = None,
            data: DataOpt = None, log: LogOpt = None) -> None:
    """Raw entries start <= i < end as JSON Lines: index, leaf (base64), event.

    Reading entries shows event content, so it is recorded in the log as an audit_access event.
    """
    with errors(), open_log(data, log) as alog:
        stop = alog.size if end is None else end
        alog.refresh_keys()
        # Recorded before any content leaves: a read that cannot be recorded is not served,
        # and a reader who stops reading (a closed pipe) is still on record.
        selected = read_entries(alog, start, stop, reader=Reader(operator(), OPERATOR_ROLE))
        out = sys.stdout
        for entry in selected:
            out.write(dumps({"index": entry.index,
                             "leaf": base64.b64encode(entry.leaf).decode(),
                             "event": alog.read(entry)}) + "\n")
        out.flush()
