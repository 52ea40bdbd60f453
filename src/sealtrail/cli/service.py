"""The service and the guided runs: ``serve``, ``demo`` and ``tour``.

``serve`` runs the HTTP API (loopback by default; TLS with --tls-cert/--tls-key) and the
monitor, as a child process ``sealtrail monitor`` unless told to run it in a thread; with
``--workers N`` above 1, in N supervised worker processes (server/workers.py). ``demo``
serves sample data (``cli/demo.py``); ``tour`` walks through the main job (``cli/tour.py``).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from sealtrail.cli.common import (
    DataOpt,
    errors,
    fail,
    passphrase,
    read_text,
    say,
    store_url,
    where,
)
from sealtrail.cli.monitorconf import monitor_config
from sealtrail.core.errors import SealtrailError
from sealtrail.log.auditlog import AuditLog
from sealtrail.log.datadir import log_names

commands = typer.Typer(rich_markup_mode=None)

LOOPBACK = ("127.0.0.1", "::1", "localhost")


@commands.command()
def serve(host: Annotated[str, typer.Option(  # noqa: PLR0917 - CLI options
              help="Address to listen on.")] = "127.0.0.1",
          port: Annotated[int, typer.Option(min=0, max=65535)] = 8470,
          tls_cert: Annotated[Path | None, typer.Option("--tls-cert")] = None,
          tls_key: Annotated[Path | None, typer.Option("--tls-key")] = None,
          client_ca: Annotated[Path | None, typer.Option(
              "--client-ca", help="Ask clients for certificates signed by this CA (mTLS).")
          ] = None,
          allow_plain_http: Annotated[bool, typer.Option(
              "--allow-plain-http", help="Serve plain HTTP on a non-loopback address.")
          ] = False,
          rate: Annotated[float, typer.Option(
              min=0.1, help="Requests per second allowed per API key.")] = 200.0,
          burst: Annotated[float, typer.Option(
              min=1, help="Requests a key may send at once before the rate applies.")
          ] = 400.0,
          rules: Annotated[list[Path] | None, typer.Option(
              "--rules", help="Rule files or directories (native and Sigma), beside the "
              "built-in pack. Repeatable.")] = None,
          alert_webhook: Annotated[str | None, typer.Option(
              "--alert-webhook", help="Send alerts to this URL (signed: Sealtrail-Signature).")
          ] = None,
          alert_secret_file: Annotated[Path | None, typer.Option(
              "--alert-webhook-secret-file", help="The webhook's signing secret [else env "
              "SEALTRAIL_WEBHOOK_SECRET].")] = None,
          monitor_config_file: Annotated[Path | None, typer.Option(
              "--monitor-config", help="Monitor configuration (JSON or YAML): rules, sinks, "
              "grouping, suppression; see docs/alerts.md.")] = None,
          no_monitor: Annotated[bool, typer.Option(
              "--no-monitor", help="Run no rules and raise no alerts.")] = False,
          monitor_in_process: Annotated[bool, typer.Option(
              "--monitor-in-process", help="Run the rules in a thread of the service instead "
              "of a child process (one core).")] = False,
          create: Annotated[bool, typer.Option(
              "--create", help="Serve a data directory that holds no log yet (made if "
              "missing; an admin key creates logs over the API). Without it, a directory "
              "with no log (a mistyped --data) is refused.")] = False,
          workers: Annotated[int | None, typer.Option(
              "--workers", min=1, help="Worker processes serving the API [default: the "
              "number of cores]; 1 serves in this process. One of them (the leader) runs "
              "verification, retention and the monitor.")] = None,
          audit_log: Annotated[str, typer.Option(
              "--audit-log", help="The log that records the service's own events (console "
              "sign-ins, administration changes).")] = "default",
          forwarded_allow_ips: Annotated[str | None, typer.Option(
              "--forwarded-allow-ips", help="Comma-separated addresses of the proxies whose "
              "X-Forwarded-For is believed (the client address the console's sign-in limit "
              "and audit records see) [default: 127.0.0.1].")] = None,
          ui_require_mfa: Annotated[bool, typer.Option(
              "--ui-require-mfa", help="Console admins must sign in with a TOTP code "
              "(enrol one with 'sealtrail users mfa NAME').")] = False,
          oidc_issuer: Annotated[str | None, typer.Option(
              "--oidc-issuer", help="Single sign-on to the console: the OpenID Connect "
              "provider's issuer URL (https; http only on loopback).")] = None,
          oidc_client_id: Annotated[str | None, typer.Option(
              "--oidc-client-id", help="The console's client id at the provider.")] = None,
          oidc_secret_file: Annotated[Path | None, typer.Option(
              "--oidc-client-secret-file", help="A file holding the client secret (none: a "
              "public client; '-' reads standard input).")] = None,
          oidc_role_claim: Annotated[str, typer.Option(
              "--oidc-role-claim", help="The ID token claim whose values give the role (a "
              "dotted path reaches a nested one: realm_access.roles).")] = "groups",
          oidc_role_map: Annotated[list[str] | None, typer.Option(
              "--oidc-role-map", help="VALUE=ROLE: a role claim value and the role "
              "(reader, auditor, admin) it gives. Repeatable; the highest match wins.")
          ] = None,
          oidc_redirect_url: Annotated[str | None, typer.Option(
              "--oidc-redirect-url", help="The callback URL registered at the provider "
              "[default: this service's URL + /ui/oidc/callback, as the browser reached "
              "it].")] = None,
          public_tlog: Annotated[bool, typer.Option(
              "--public-tlog", help="Serve the checkpoint and hash tiles (/tlog/LOG/"
              "checkpoint, /tlog/LOG/tile/...) without a key, so tile clients, monitors and "
              "witnesses can follow the log; entry bundles stay behind the reader role.")
          ] = False,
          witness_alert_after: Annotated[float, typer.Option(
              "--witness-alert-after", min=1.0, help="Alert when a checkpoint has waited "
              "this many seconds for its witnesses' quorum.")] = 300.0,
          data: DataOpt = None) -> None:
    """Run the HTTP API and web console (loopback by default; TLS with --tls-cert/--tls-key)
    and the monitor.

    Encrypted logs need the keyring passphrase (env SEALTRAIL_PASSPHRASE, --passphrase-file,
    or a prompt on a terminal); without it they are served locked and a warning at start
    says what is refused.
    """
    import ssl  # noqa: PLC0415 - only the server needs these

    from sealtrail.server.app import ServiceConfig, create_app  # noqa: PLC0415
    with errors():
        if (tls_cert is None) != (tls_key is None):
            fail("--tls-cert and --tls-key go together")
        if tls_cert is None and host not in LOOPBACK and not allow_plain_http:
            fail(f"refusing plain HTTP on {host}: give --tls-cert/--tls-key, or "
                 "--allow-plain-http if a TLS proxy in front does it")
        d, _ = where(data, None)
        store = store_url()
        found = log_names(d, store)
        if not found and not create and store is not None:
            fail("no log in the PostgreSQL store (--store): create one with 'sealtrail --store "
                 "URL init', or give --create to serve an empty store")
        if not found and not create:
            place = Path(d).resolve()
            fail(f"no log in {place}" + ("" if place.is_dir() else " (no such directory)")
                 + ": check --data (or env SEALTRAIL_DATA); create a log with 'sealtrail "
                 "init', or give --create to serve an empty data directory")
        monitor = None if no_monitor else monitor_config(
            rules or [], alert_webhook, alert_secret_file, monitor_config_file)
        from sealtrail.server.web.oidc import config_from_options  # noqa: PLC0415
        oidc = config_from_options(
            issuer=oidc_issuer, client_id=oidc_client_id,
            secret=None if oidc_secret_file is None
            else read_text(oidc_secret_file, "--oidc-client-secret-file").strip(),
            role_claim=oidc_role_claim, role_map=oidc_role_map or [],
            redirect_url=oidc_redirect_url)
        phrase = passphrase(prompt=True)
        _warn_locked(d, found, phrase, store)
        command = None
        secrets: dict[str, str] = {}
        if store is not None:  # the monitor child's store (a URL may hold a password)
            secrets["SEALTRAIL_STORE"] = store
        if monitor is not None and not monitor_in_process:
            # The child re-reads the same options; secrets reach it through its environment.
            if phrase is not None:
                secrets["SEALTRAIL_PASSPHRASE"] = phrase
            if alert_webhook is not None and alert_secret_file is not None:
                secrets["SEALTRAIL_WEBHOOK_SECRET"] = read_text(
                    alert_secret_file, "--alert-webhook-secret-file").strip()
            command = [sys.executable, "-m", "sealtrail.cli", "--data", d, "monitor"]
            for path in rules or []:
                command += ["--rules", str(path.resolve())]
            if alert_webhook is not None:
                command += ["--alert-webhook", alert_webhook]
            if monitor_config_file is not None:
                command += ["--monitor-config", str(monitor_config_file.resolve())]
        count = workers if workers is not None else max(os.cpu_count() or 1, 1)
        # Compiled rules do not pickle: a worker makes the monitor's configuration again
        # from the same options (server/config.py).
        source = None if monitor is None or count == 1 else functools.partial(
            monitor_config, rules or [], alert_webhook, alert_secret_file, monitor_config_file)
        config = ServiceConfig(Path(d), passphrase=phrase, store=store, rate=rate, burst=burst,
                               monitor=monitor, monitor_command=command, workers=count,
                               monitor_source=source, audit_log=audit_log,
                               ui_require_mfa=frozenset({"admin"}) if ui_require_mfa
                               else frozenset(), oidc=oidc, public_tlog=public_tlog,
                               witness_alert_after=witness_alert_after)
        # Header, body and keep-alive timeouts against slow clients (server/serving.py).
        from sealtrail.server.serving import listen  # noqa: PLC0415
        from sealtrail.server.serving import serve as serve_http  # noqa: PLC0415
        if tls_cert is not None and tls_key is not None:
            # Loaded once here so a missing or bad certificate is an error, not a traceback
            # after "serving" was announced (uvicorn loads it again to serve).
            try:
                ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
                    str(tls_cert), str(tls_key))
                if client_ca is not None:
                    ssl.create_default_context(cafile=str(client_ca))
            except (OSError, ssl.SSLError) as exc:
                fail(f"--tls-cert/--tls-key/--client-ca: {exc}")
        sockets = listen(host, port)  # bound before anything is announced (a taken port)
        scheme = "https" if tls_cert else "http"
        bound = sockets[0].getsockname()[1] if sockets else port  # --port 0: the one chosen
        options = {"host": host, "port": port, "log_level": "warning",
                   "ssl_certfile": str(tls_cert) if tls_cert else None,
                   "ssl_keyfile": str(tls_key) if tls_key else None,
                   "ssl_ca_certs": str(client_ca) if client_ca else None,
                   "ssl_cert_reqs": ssl.CERT_OPTIONAL if client_ca else ssl.CERT_NONE,
                   "forwarded_allow_ips": forwarded_allow_ips}
        with _environment(secrets):  # the monitor child (and the workers) inherit them
            if count > 1:
                from sealtrail.server.workers import run_workers  # noqa: PLC0415
                say(f"sealtrail serving {d} on {scheme}://{host}:{bound} (console at /ui/, API "
                    f"docs at /docs) with {count} worker processes")
                code = run_workers(config, sockets, count, options)
                if code:
                    raise typer.Exit(code)
                return
            application = create_app(config)
            say(f"sealtrail serving {d} on {scheme}://{host}:{bound} (console at /ui/, "
                "API docs at /docs)")
            serve_http(application, sockets=sockets, **options)


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """``values`` in this process's environment while the service runs (its monitor child
    inherits them), and the environment as it was afterwards: a second run in the same process
    must not find the first one's passphrase there."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _warn_locked(data: str, names: list[str], phrase: str | None, store: str | None) -> None:
    """Warn on stderr about encrypted logs the service will run locked (no passphrase)."""
    locked = []
    for name in names:
        try:
            with AuditLog.open(data, name, create=False, passphrase=phrase,
                               store=store) as alog:
                if alog.encrypted and alog.locked_reason:
                    locked.append(name)
        except SealtrailError:
            continue  # the service reports a log it cannot open itself
    if locked:
        say(f"warning: encrypted log(s) {', '.join(repr(n) for n in locked)} have no "
            "keyring passphrase: the service runs them locked and refuses events with "
            "personal fields (503), searches by sealed fields and reads of sealed values; "
            "give the passphrase with env SEALTRAIL_PASSPHRASE or --passphrase-file FILE "
            "and restart")


@commands.command()
def demo(port: Annotated[int, typer.Option(min=1, max=65535)] = 8470,
         data: Annotated[Path, typer.Option(
             "--data", help="Demo data directory.")] = Path("./sealtrail-demo")) -> None:
    """The service with sample data and a key per role, on loopback (the README's run)."""
    from sealtrail.cli.demo import run_demo  # noqa: PLC0415 - only the demo needs it
    with errors():
        run_demo(data, port)


@commands.command()
def tour(keep: Annotated[Path | None, typer.Option(
             help="Keep the tour's log in this directory instead of a temporary one.")
         ] = None) -> None:
    """A five-minute tour: create a log, append events, verify, prove, catch tampering."""
    from sealtrail.cli.tour import run_tour  # noqa: PLC0415 - only the tour needs it
    with errors():
        run_tour(keep)
