"""``witnesses``: the log's witnesses (``add``, ``list``, ``remove``, ``policy``, ``round``).

Each change is recorded in the log as a configuration entry (``sealtrail.witnesses.set``) in
the same transaction as the stored list, so ``verify`` catches a witness removed by hand. A
running ``serve`` (its leader) submits every new checkpoint to the witnesses, at most once a
second; ``witnesses round`` does one round now (an embedded log, a cron job, a test).
``witnesses list --policy`` prints the policy file ``verify --witness-policy`` reads.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import httpx
import typer

from sealtrail.cli.common import DataOpt, LogOpt, errors, open_log, operator
from sealtrail.cli.output import dumps
from sealtrail.core.errors import ConfigError
from sealtrail.log import witnesses

witnesses_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                            help="The log's witnesses (add, list, remove, policy, round): "
                            "who cosigns its checkpoints.")


@witnesses_app.command("add")
def add(url: Annotated[str, typer.Argument(help="The witness's URL (its add-checkpoint is "
                                           "URL/add-checkpoint).")],
        vkey: Annotated[str, typer.Option("--vkey", help="The witness's cosigner vkey "
                                          "(name+keyid+base64(0x04 || key)), as 'sealtrail "
                                          "witness init' printed it.")],
        data: DataOpt = None, log: LogOpt = None) -> None:
    """Add a witness (the quorum stays; the first witness makes it 1)."""
    with errors(), open_log(data, log, need_keys=True) as alog:
        policy = witnesses.add(alog, url, vkey, actor=operator())
        typer.echo(dumps({"witnesses": [w.name for w in policy.witnesses],
                          "quorum": policy.quorum}))


@witnesses_app.command("list")
def list_(policy_text: Annotated[bool, typer.Option(
              "--policy", help="Print the policy file (for verify --witness-policy) "
              "instead of JSON.")] = False,
          data: DataOpt = None, log: LogOpt = None) -> None:
    """The witnesses, the quorum and how far each has cosigned (JSON)."""
    with errors(), open_log(data, log) as alog:
        if policy_text:
            policy = witnesses.load(alog)
            typer.echo(policy.format() if policy else "", nl=False)
            return
        typer.echo(dumps(witnesses.status(alog, datetime.now(UTC)), indent=2))


@witnesses_app.command("remove")
def remove(name: Annotated[str, typer.Argument(help="The witness's name.")],
           data: DataOpt = None, log: LogOpt = None) -> None:
    """Remove a witness (the quorum shrinks if it would exceed the witnesses left)."""
    with errors(), open_log(data, log, need_keys=True) as alog:
        policy = witnesses.remove(alog, name, actor=operator())
        typer.echo(dumps({"witnesses": [w.name for w in policy.witnesses] if policy else [],
                          "quorum": policy.quorum if policy else 0}))


@witnesses_app.command("policy")
def policy(quorum: Annotated[int, typer.Argument(help="How many witnesses must cosign a "
                                                 "checkpoint for it to count as witnessed.")],
           data: DataOpt = None, log: LogOpt = None) -> None:
    """Set the quorum: K of the witnesses must cosign."""
    with errors(), open_log(data, log, need_keys=True) as alog:
        result = witnesses.set_quorum(alog, quorum, actor=operator())
        typer.echo(dumps({"witnesses": [w.name for w in result.witnesses],
                          "quorum": result.quorum}))


@witnesses_app.command("round")
def round_(data: DataOpt = None, log: LogOpt = None) -> None:
    """Submit the latest checkpoint to the witnesses now and keep their cosignatures.

    Exit 1 when the policy is not met (a witness down or refusing), so that a cron job
    running it for a log used as a library notices; the JSON says which witness and why.
    """
    with errors(), open_log(data, log, need_keys=True) as alog, httpx.Client(
            timeout=witnesses.TIMEOUT_S) as client:
        policy = witnesses.load(alog)
        if policy is None:
            raise ConfigError("this log has no witnesses: add one with 'sealtrail witnesses "
                              "add URL --vkey VKEY'")
        result = witnesses.run_round(alog, policy, datetime.now(UTC),
                                     witnesses.httpx_post(client))
        typer.echo(dumps({"size": result.size, "cosigned": list(result.cosigned),
                          "witnessed": result.met, "problems": result.problems,
                          "refusals": [{"witness": r.witness, "size": r.size,
                                        "problem": r.problem} for r in result.refusals]}))
        if result.refusals or not result.met:
            raise typer.Exit(1)
