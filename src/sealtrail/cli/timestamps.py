"""``timestamps``: RFC 3161 trusted timestamps on checkpoints.

``set URL --ca-cert FILE [--every SECONDS]`` configures the log's time-stamp authority (an
entry of the log records it, ``log/timestamping.py``); a running ``serve`` then stamps the
checkpoint at most every SECONDS when the log changed. ``now`` stamps the current checkpoint at
once; ``list`` prints the recorded tokens (JSON Lines, the token in base64 DER, so an auditor can
also check one with ``openssl ts -verify``); ``verify --ca-cert FILE`` checks every recorded
token offline against the CA the auditor trusts (not the log's stored setting) and the log's
tree: exit 0 all verify, 1 one does not (tampered or invalid), 2 usage; with ``--crl FILE``
(repeatable) the TSA's chain must also be covered by those revocation lists and not revoked.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Annotated

import typer

from sealtrail.cli.common import DataOpt, LogOpt, errors, fail, open_log, operator, say
from sealtrail.cli.output import dumps

tsa_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                      help="RFC 3161 trusted timestamps on checkpoints.")

MAX_CRL_BYTES = 64 << 20  # a CA's full CRL is at most some megabytes; never read unbounded

CaOpt = Annotated[Path, typer.Option("--ca-cert", help="PEM file of the CA certificate(s) that "
                                     "anchor the TSA's certificate chain.")]


def _pem(path: Path) -> str:
    """The PEM text of ``--ca-cert`` (exit 2 when unreadable or not certificates)."""
    from sealtrail.core.tsp import TimestampError, load_anchors  # noqa: PLC0415

    try:
        data = path.read_bytes()
    except OSError as exc:
        fail(f"--ca-cert {path}: {exc.strerror or exc}")
    try:
        load_anchors(data)
    except TimestampError as exc:
        fail(f"--ca-cert {path}: {exc}")
    return data.decode("ascii", "replace")


@tsa_app.command("set")
def tsa_set(url: Annotated[str, typer.Argument(help="The TSA's URL (RFC 3161 over HTTP).")],
            ca_cert: CaOpt,
            every: Annotated[int, typer.Option("--every", min=1, help="Stamp at most every "
                                               "SECONDS (and only when the log changed).")
                             ] = 3600,
            data: DataOpt = None, log: LogOpt = None) -> None:
    """Configure the log's time-stamp authority (recorded as a configuration event)."""
    from sealtrail.core.errors import ValidationError  # noqa: PLC0415
    from sealtrail.log.timestamping import TsaConfig, set_config  # noqa: PLC0415

    pem = _pem(ca_cert)
    with errors():
        try:
            config = TsaConfig(url, pem, every)
        except ValidationError as exc:
            fail(f"{exc.field}: {exc.message}")
        with open_log(data, log, need_keys=True) as alog:
            receipt = set_config(alog, config, actor=operator())
            typer.echo(dumps({"url": config.url, "every": config.every,
                              "anchors": config.describe_anchors(), "index": receipt.index}))


@tsa_app.command("show")
def tsa_show(data: DataOpt = None, log: LogOpt = None) -> None:
    """The log's time-stamp authority (none: no stamps are made)."""
    from sealtrail.log.timestamping import load_config  # noqa: PLC0415

    with errors(), open_log(data, log) as alog:
        config = load_config(alog)
        if config is None:
            typer.echo(dumps({"tsa": None}))
            return
        typer.echo(dumps({"url": config.url, "every": config.every,
                          "anchors": config.describe_anchors()}, indent=2))


@tsa_app.command("remove")
def tsa_remove(data: DataOpt = None, log: LogOpt = None) -> None:
    """Stop stamping (recorded stamps stay in the log)."""
    from sealtrail.log.timestamping import remove_config  # noqa: PLC0415

    with errors(), open_log(data, log, need_keys=True) as alog:
        receipt = remove_config(alog, actor=operator())
        typer.echo(dumps({"tsa": None, "index": receipt.index}))


@tsa_app.command("now")
def tsa_now(data: DataOpt = None, log: LogOpt = None) -> None:
    """Stamp the current checkpoint now (exit 1 when the TSA fails: nothing is recorded)."""
    from sealtrail.core.timefmt import format_time  # noqa: PLC0415
    from sealtrail.log.timestamping import stamp  # noqa: PLC0415

    with errors(), open_log(data, log, need_keys=True) as alog:
        done = stamp(alog, alog.now(), actor=operator())
        typer.echo(dumps({"index": done.index, "parts": done.parts, "size": done.size,
                          "root": base64.b64encode(done.root).decode(),
                          "gen_time": format_time(done.info.gen_time), "tsa": done.info.tsa,
                          "serial": done.info.serial}))


@tsa_app.command("list")
def tsa_list(data: DataOpt = None, log: LogOpt = None) -> None:
    """The recorded stamps, unverified (JSON Lines; ``token`` is base64 DER)."""
    from sealtrail.log.timestamping import recorded  # noqa: PLC0415

    with errors(), open_log(data, log) as alog:
        for item in recorded(alog):
            row = {"index": item.index, "size": item.size,
                   "root": base64.b64encode(item.root).decode(),
                   "token": base64.b64encode(item.token).decode() if item.token else None}
            if item.problem:
                row["problem"] = item.problem
            typer.echo(dumps(row))


@tsa_app.command("verify")
def tsa_verify(ca_cert: CaOpt, crl: Annotated[list[Path] | None, typer.Option(
                   "--crl", help="A certificate revocation list (PEM or DER) of a CA of the "
                   "TSA's chain, fetched after the stamps were made; repeat for each CA. "
                   "Given, every certificate below the anchor must be covered and not "
                   "revoked.")] = None,
               data: DataOpt = None, log: LogOpt = None) -> None:
    """Check every recorded stamp offline: the token against --ca-cert (chain, EKU, validity
    at genTime, signature, imprint; revocation with --crl) and the tree at the stamped size
    against the stamped root. JSON Lines, one per stamp; exit 0 all verify, 1 one does not
    (or there are none), 2 usage."""
    from sealtrail.core.tsp import TimestampError, load_anchors, load_crls  # noqa: PLC0415
    from sealtrail.log.timestamping import load_config, verify_timestamps  # noqa: PLC0415

    anchors = load_anchors(_pem(ca_cert).encode())
    crls = None
    if crl:
        crls = []
        for path in crl:
            try:
                with path.open("rb") as handle:
                    raw = handle.read(MAX_CRL_BYTES + 1)
                if len(raw) > MAX_CRL_BYTES:
                    fail(f"--crl {path}: larger than {MAX_CRL_BYTES >> 20} MiB")
                crls.extend(load_crls(raw))
            except OSError as exc:
                fail(f"--crl {path}: {exc.strerror or exc}")
            except TimestampError as exc:
                fail(f"--crl {path}: {exc}")
    with errors(), open_log(data, log) as alog:
        results = verify_timestamps(alog, anchors, crls)
        configured = load_config(alog) is not None
    for result in results:
        typer.echo(dumps(result.to_json()))
    bad = [r for r in results if not r.ok]
    if bad:
        say(f"NOT VERIFIED: {len(bad)} of {len(results)} timestamps fail; first: "
            f"{bad[0].problem}")
        raise typer.Exit(1)
    if not results:
        # Nothing checked is not a pass: an auditor's script must not read "0" as "good".
        say("NOT VERIFIED: the log records no timestamp"
            + (" although a TSA is set (none was obtained yet: is the TSA reachable?)"
               if configured else ""))
        raise typer.Exit(1)
    say(f"{len(results)} timestamp(s) verified")
