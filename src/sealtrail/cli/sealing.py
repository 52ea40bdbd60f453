"""``seal``: forward-secure sealing: an evolving key that cannot seal the past.

``seal init`` makes the log's evolving sealing key (``seal.key``, 0600, beside the log) and
the public keys of its epochs (``seal.pub``), records the epoch-0 anchor seal, and prints the
*seal key* last: the one line a verifier needs (``sealtrail verify --seal-key``), to be kept
off the host. ``seal status`` shows the epoch held and the last recorded seal (JSON);
``seal run`` does one round now (evolve if the epoch is over, recording its final seal first),
for logs used as a library or from cron; a running ``serve`` does it on each checkpoint.
The engine is :mod:`sealtrail.log.sealing`; the key and formats :mod:`sealtrail.core.seal`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from sealtrail.cli.common import DataOpt, LogOpt, errors, fail, open_log, say
from sealtrail.cli.output import dumps
from sealtrail.core import seal as core

seal_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                       help="Forward-secure sealing: an evolving key that cannot seal the past.")


@seal_app.command("init")
def init(epoch_seconds: Annotated[int, typer.Option(
             "--epoch-seconds", min=1, max=core.MAX_SECONDS,
             help="Length of an epoch: what an attacker holding the host can still rewrite "
             "is at most the current epoch (and what was not sealed yet).")
         ] = core.DEFAULT_SECONDS,
         epochs: Annotated[int, typer.Option(
             "--epochs", min=1, max=core.MAX_EPOCHS,
             help="How many epochs the key has (its lifetime is epochs x epoch seconds; "
             "65536 one-hour epochs: 7.5 years, about 3 s to set up).")
         ] = core.DEFAULT_EPOCHS,
         data: DataOpt = None, log: LogOpt = None) -> None:
    """Make the log's sealing key (once) and record the anchor seal; the last line printed is
    the seal key, to keep off the host."""
    from sealtrail.log.sealing import SEAL_KEY_FILE, init_sealing  # noqa: PLC0415

    with errors(), open_log(data, log, need_keys=True) as alog:
        key = init_sealing(alog, now=alog.now(), seconds=epoch_seconds, epochs=epochs)
        say(f"sealing key made in {alog.directory / SEAL_KEY_FILE} (0600; it evolves every "
            f"{epoch_seconds} s and the past epochs' seeds are erased). Keep the seal key "
            "below OFF this host (print it, store it with your auditors): 'sealtrail verify "
            "--seal-key KEY' checks with it that nothing sealed in a past epoch changed, even "
            "if this host and its current keys are taken. Run 'sealtrail seal run' from cron "
            "(or 'sealtrail serve') so the key evolves.", soft_wrap=True)
        typer.echo(key.format())


@seal_app.command("status")
def status(data: DataOpt = None, log: LogOpt = None) -> None:
    """The sealing state (JSON): the epoch held, the next evolution, the last recorded seal."""
    from sealtrail.log.sealing import status as seal_status  # noqa: PLC0415

    with errors(), open_log(data, log) as alog:
        typer.echo(dumps(seal_status(alog, alog.now()), indent=2))


@seal_app.command("run")
def run(data: DataOpt = None, log: LogOpt = None) -> None:
    """One round now: if the epoch held is over, record its final seal, then evolve the key
    to the current epoch (erasing the old seed). JSON: what was done, then the status."""
    from sealtrail.log.sealing import has_sealing, run_round  # noqa: PLC0415

    with errors(), open_log(data, log, need_keys=True) as alog:
        if not has_sealing(alog.directory):
            fail("this log has no sealing key: run 'sealtrail seal init' first")
        typer.echo(dumps(run_round(alog, alog.now()), indent=2))
