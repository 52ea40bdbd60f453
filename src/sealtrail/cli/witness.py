"""``witness``: sealtrail as a C2SP tlog-witness for any log (``init``, ``add-log``, ``serve``).

``sealtrail --data W witness init`` makes the witness's key under ``W/_witness/`` (0600) and
prints its cosigner vkey last (``name+keyid+base64(0x04 || key)``: what a log configures to
trust this witness by); ``witness add-log VKEY`` trusts a log's signed-note key (the log's
origin is the key's name: sealtrail's ``sealtrail vkey``, Go's checksum database key, any
C2SP log); ``witness serve`` answers ``POST /add-checkpoint`` at the root of its address.
"""

from __future__ import annotations

from typing import Annotated

import typer

from sealtrail.cli.common import DataOpt, errors, fail, say, where

witness_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                          help="sealtrail as a C2SP tlog-witness (init, add-log, serve).")


@witness_app.command("init")
def init(name: Annotated[str, typer.Option(
             "--name", help="The witness's name: a schema-less URL that identifies it "
             "(the cosignature lines carry it).")] = "sealtrail.witness",
         data: DataOpt = None) -> None:
    """Make the witness's key (once); the last line printed is its cosigner vkey."""
    from sealtrail.log.witness import WitnessState  # noqa: PLC0415

    with errors():
        d, _ = where(data, None)
        key = WitnessState(d).init(name)
        say(f"witness key made in {d}/_witness/witness.key (0600); trust it by:")
        typer.echo(key.format())


@witness_app.command("add-log")
def add_log(vkey: Annotated[str, typer.Argument(help="The log's signed-note verifier key "
                                                 "(name+keyid+base64); its name is the "
                                                 "log's origin.")],
            origin: Annotated[str | None, typer.Option(
                "--origin", help="The origin line the log's checkpoints carry, when it is "
                "not the key's name (Go's checksum database: 'go.sum database tree' with the "
                "key sum.golang.org) [default: the key's name].")] = None,
            data: DataOpt = None) -> None:
    """Trust a log: its checkpoints signed by this key can be cosigned."""
    from sealtrail.core.errors import FormatError  # noqa: PLC0415
    from sealtrail.log.witness import WitnessState  # noqa: PLC0415

    with errors():
        d, _ = where(data, None)
        try:
            verifier = WitnessState(d).add_log(vkey, origin)
        except FormatError as exc:
            fail(f"{'--origin' if str(exc).startswith('origin') else 'VKEY'}: {exc}")
        typer.echo(f"trusting log {origin or verifier.name} (key {verifier.name}, key id "
                   f"{verifier.key_id.hex()})")


@witness_app.command("serve")
def serve(host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
          port: Annotated[int, typer.Option(min=0, max=65535)] = 8471,
          data: DataOpt = None) -> None:
    """Answer POST /add-checkpoint (c2sp.org/tlog-witness) until interrupted."""
    from sealtrail.log.witness import WitnessState  # noqa: PLC0415
    from sealtrail.server.serving import listen  # noqa: PLC0415
    from sealtrail.server.serving import serve as serve_http  # noqa: PLC0415
    from sealtrail.server.witness_app import create_witness_app  # noqa: PLC0415

    with errors():
        d, _ = where(data, None)
        state = WitnessState(d)
        app = create_witness_app(state)
        if not state.logs():
            fail("the witness trusts no log yet: add one with 'sealtrail witness add-log "
                 "VKEY'")
        sockets = listen(host, port)
        bound = sockets[0].getsockname()[1] if sockets else port
        say(f"sealtrail witness {state.cosigner().name} on http://{host}:{bound}/add-checkpoint")
        try:
            serve_http(app, sockets=sockets, host=host, port=port, log_level="warning",
                       lifespan="off")
        finally:
            state.close()
