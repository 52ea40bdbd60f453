"""The log's life: ``init``, ``append``, ``checkpoint``, ``vkey`` and ``settings show|adopt``.

``init`` creates the store and the keys (its last line is the verifier key); ``append`` stores
JSON Lines events in one atomic commit (one bad line stores nothing); ``checkpoint`` and
``vkey`` print what auditors and witnesses are given; the settings are what the log's key
signed at creation.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Annotated, Any

import typer

from sealtrail.cli.common import (
    DataOpt,
    LogOpt,
    errors,
    fail,
    open_log,
    operator,
    passphrase,
    store_url,
    where,
)
from sealtrail.cli.inputs import events_from
from sealtrail.cli.output import dumps
from sealtrail.core.policy import FieldPolicy
from sealtrail.log import keys
from sealtrail.log.auditlog import AuditLog, log_dir
from sealtrail.log.datadir import log_exists

commands = typer.Typer(rich_markup_mode=None)
settings_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                           help="The log's settings, signed at creation "
                           "(show; adopt for logs made before settings were signed).")


@commands.command()
def init(data: DataOpt = None, log: LogOpt = None,  # noqa: PLR0917 - CLI options
         origin: Annotated[str | None, typer.Option(
             help="Checkpoint origin (log identity) [default: sealtrail/<log>].")] = None,
         no_encryption: Annotated[bool, typer.Option(
             "--no-encryption", help="Store every field in clear (no keyring).")] = False,
         personal: Annotated[str | None, typer.Option(
             help="Comma-separated fields to encrypt [default: actor.name, actor.ip, "
                  "actor.user_agent, target.name, source.ip, changes, metadata].")] = None,
         redaction: Annotated[str, typer.Option(
             help="Secrets at ingest: mask, hash (keyed, comparable) or off.")] = "mask",
         ) -> None:
    """Create the log, its signing key and keyring (0600). Last line: the verifier key."""
    with errors():
        d, name = where(data, log)
        store = store_url()
        existed = log_exists(d, name, store)
        policy = FieldPolicy.parse(personal.split(",")) if personal is not None else None
        phrase = None if (existed or no_encryption) else passphrase(prompt=True, confirm=True)
        with AuditLog.open(d, name, origin=origin, create=True, passphrase=phrase,
                           encryption=not no_encryption, policy=policy,
                           redaction=redaction, store=store) as alog:
            state = "exists" if existed else "created"
            enc = "encrypted" if alog.encrypted else "not encrypted"
            where_to = log_dir(d, name) if store is None else (
                f"{alog.store.location} (keys in {log_dir(d, name)})")
            typer.echo(f"log {name!r} {state} in {where_to} "
                       f"(origin {alog.origin}, size {alog.size}, {enc}, "
                       f"redaction {alog.redaction})")
            typer.echo(alog.vkey())


@commands.command()
def append(file: Annotated[Path | None, typer.Argument(
               help="JSON Lines file of events [default: standard input].")] = None,
           data: DataOpt = None, log: LogOpt = None) -> None:
    """Append JSON Lines events durably and atomically: one bad line stores nothing."""
    with errors():
        events = events_from(file)
        with open_log(data, log, need_keys=True) as alog:
            receipts = alog.append_many(events)
            cp = alog.checkpoint().checkpoint
        new = [r for r in receipts if not r.duplicate]
        summary: dict[str, Any] = {
            "appended": len(new), "duplicates": len(receipts) - len(new),
            "first_index": min((r.index for r in new), default=None),
            "last_index": max((r.index for r in new), default=None),
            "tree_size": cp.size,
            "root_hash": base64.b64encode(cp.root).decode()}
        typer.echo(dumps(summary))


@commands.command()
def checkpoint(data: DataOpt = None, log: LogOpt = None) -> None:
    """Print the latest signed checkpoint (a C2SP signed note)."""
    with errors(), open_log(data, log) as alog:
        typer.echo(alog.checkpoint().note, nl=False)


@commands.command()
def vkey(data: DataOpt = None, log: LogOpt = None) -> None:
    """Print the verifier key (name+id+key), for auditors and witnesses."""
    with errors():
        d, name = where(data, log)
        path = log_dir(d, name) / keys.VERIFIER_KEY
        if not path.exists():
            fail(f"no log {name!r} in {d}: run 'sealtrail init' first")
        typer.echo(keys.load_verifier(path).format())


@settings_app.command("show")
def settings_show(data: DataOpt = None, log: LogOpt = None) -> None:
    """The settings the log runs with (signed by its key at creation), as JSON."""
    with errors(), open_log(data, log) as alog:
        typer.echo(dumps(alog.settings()))


@settings_app.command("adopt")
def settings_adopt(reason: Annotated[str, typer.Option(help="Why these settings are right.")],
                   data: DataOpt = None, log: LogOpt = None) -> None:
    """Sign the settings of a log made before settings were signed (check them first with
    'settings show'); recorded in the log. Refused when a statement exists."""
    with errors(), open_log(data, log, need_keys=True) as alog:
        receipt = alog.adopt_settings(reason=reason, actor=operator())
        typer.echo(dumps({"adopted": alog.settings(), "event_index": receipt.index}))
