"""``keys``: the encryption keyring (``rotate``, ``info``) and the service's API keys
(``create``, ``list``, ``revoke``).

Keyring commands act on one log and are recorded in it; API keys belong to the data directory
(``log/apikeys.py``), and a token is shown once, on the last line, never again.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from sealtrail.cli.common import (
    TIME_HELP,
    DataOpt,
    LogOpt,
    errors,
    fail,
    given,
    open_log,
    operator,
    read_passphrase,
    say,
    store_url,
    time_opt,
    where,
)
from sealtrail.cli.output import dumps
from sealtrail.log.apikeys import ApiKeys
from sealtrail.log.keyring import passphrase_kek

keys_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                       help="Service API keys (create, list, revoke) and "
                       "the encryption keyring (rotate, info).")


@keys_app.command("rotate")
def keys_rotate(new_passphrase_file: Annotated[Path | None, typer.Option(
                    "--new-passphrase-file", help="Also rewrap the keyring under this new "
                    "passphrase.")] = None,
                data: DataOpt = None, log: LogOpt = None) -> None:
    """Start a new data key (old entries stay readable; the tree is untouched)."""
    with errors(), open_log(data, log, need_keys=True) as alog:
        new_kek = None
        if new_passphrase_file is not None:
            new_kek = passphrase_kek(read_passphrase(new_passphrase_file))
        kid = alog.rotate_keys(actor=operator(), new_kek=new_kek)
        typer.echo(dumps({"active": kid, "rewrapped": new_kek is not None}))


@keys_app.command("info")
def keys_info(data: DataOpt = None, log: LogOpt = None) -> None:
    """The keyring's keys: ids, purposes, creation times (never key material)."""
    with errors(), open_log(data, log, need_keys=True) as alog:
        for item in alog.keyring_info():
            typer.echo(dumps(item))


@keys_app.command("create")
def keys_create(role: Annotated[str, typer.Option(  # noqa: PLR0917 - CLI options
                    help="ingest, reader, auditor or admin.")],
                log: Annotated[str | None, typer.Option(
                    "--log", help="Limit the key to this log [default: every log].")] = None,
                name: Annotated[str, typer.Option(help="What the key is for.")] = "",
                expires: Annotated[str | None, typer.Option(
                    help=f"When the key stops working. {TIME_HELP}")] = None,
                client_cert: Annotated[Path | None, typer.Option(
                    "--client-cert", help="PEM certificate the key is bound to (mTLS): the "
                    "token works only over a connection presenting it.")] = None,
                data: DataOpt = None) -> None:
    """Create an API key for the service. The token is the last line (shown only once)."""
    with errors():
        d, _ = where(data, None)
        # The global ``sealtrail --log NAME keys create`` limits the key too: never widen a
        # key's scope because the option came before the command.
        log = log if log is not None else given().log
        store = ApiKeys(d, store=store_url())
        try:
            now = datetime.now(UTC)
            token = store.create(role, log=log, name=name, now=now,
                                 expires=time_opt(expires, "--expires"),
                                 client_cert_sha256=_cert_fingerprint(client_cert))
        finally:
            store.close()
        article = "an" if role[:1] in "aeiou" else "a"
        say(f"created {article} {role} key" + (f" for log {log!r}" if log else "")
            + "; store the token now: it cannot be shown again")
        typer.echo(token)


def _cert_fingerprint(path: Path | None) -> str | None:
    """SHA-256 (hex) of a PEM certificate's DER form, as the server sees it."""
    if path is None:
        return None
    from cryptography import x509  # noqa: PLC0415 - only this option needs it
    from cryptography.hazmat.primitives.serialization import Encoding  # noqa: PLC0415
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        fail(f"--client-cert {path}: {getattr(exc, 'strerror', None) or exc}")
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


@keys_app.command("list")
def keys_list(data: DataOpt = None) -> None:
    """The service's API keys as JSON Lines (never tokens)."""
    with errors():
        d, _ = where(data, None)
        store = ApiKeys(d, store=store_url())
        try:
            for info in store.listing():
                typer.echo(dumps({"id": info.id, "role": info.role, "log": info.log,
                                  "name": info.name, "created": info.created,
                                  "expires": info.expires, "revoked": info.revoked,
                                  "client_cert_sha256": info.client_cert_sha256}))
        finally:
            store.close()


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (keys list).")],
                data: DataOpt = None) -> None:
    """Revoke an API key at once."""
    with errors():
        d, _ = where(data, None)
        store = ApiKeys(d, store=store_url())
        try:
            store.revoke(key_id, datetime.now(UTC))
        finally:
            store.close()
        typer.echo(dumps({"revoked": key_id}))
