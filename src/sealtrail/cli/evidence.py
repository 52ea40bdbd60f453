"""Evidence for auditors: ``export`` (an evidence bundle, or a SIEM format) and
``verify-bundle``.

Exports are audited reads recorded *before* the content leaves: the ``audit.export`` event
(filter, format, destination, the tree size the selection is taken from, the number of events)
is appended first, and when it cannot be appended nothing is written or sent. A broken pipe or
a failing syslog collector therefore still leaves the record. Files written here hold personal
data and are created mode 0600 whatever the umask (``open_private``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from sealtrail.cli.common import (
    OPERATOR_ROLE,
    TIME_HELP,
    DataOpt,
    LogOpt,
    errors,
    fail,
    not_verified,
    operator,
    say,
    silence_stdout,
    stderr,
    time_opt,
)
from sealtrail.cli.keyarg import (
    WITNESS_POLICY_HELP,
    note_origin,
    trusted_verifier,
    trusted_witness_policy,
)
from sealtrail.cli.output import dumps
from sealtrail.cli.selection import make_filter, open_for_search
from sealtrail.compliance.bundle import export_bundle, open_private, verify_bundle_file
from sealtrail.core.bundle import witnessed_coverage
from sealtrail.core.errors import SealtrailError, VerificationError
from sealtrail.core.witness_policy import WitnessPolicy
from sealtrail.log.search import Filter

commands = typer.Typer(rich_markup_mode=None)


@commands.command("export")
def export(bundle: Annotated[Path | None, typer.Option(  # noqa: PLR0917 - CLI options
               "--bundle", help="Write an evidence bundle (.zip, .tar.gz) for offline checks.")
           ] = None,
           fmt: Annotated[str | None, typer.Option(
               "--format", help="SIEM format: ocsf, cef, ecs, csv, jsonl or syslog.")] = None,
           out: Annotated[Path | None, typer.Option(
               "--out", help="Write the SIEM export here [default: stdout].")] = None,
           actor: Annotated[str | None, typer.Option(help="actor.id equals.")] = None,
           subject: Annotated[str | None, typer.Option(help="Names this data subject.")] = None,
           action: Annotated[str | None, typer.Option(help="Action, prefix or glob.")] = None,
           category: Annotated[str | None, typer.Option()] = None,
           outcome: Annotated[str | None, typer.Option()] = None,
           target: Annotated[str | None, typer.Option(help="target.id equals.")] = None,
           source: Annotated[str | None, typer.Option(help="source.service equals.")] = None,
           since: Annotated[str | None, typer.Option(
               "--since", "--from", help=f"Event time >= this. {TIME_HELP}")] = None,
           until: Annotated[str | None, typer.Option(
               "--until", "--to", help=f"Event time < this. {TIME_HELP}")] = None,
           keep_sealed: Annotated[bool, typer.Option(
               "--sealed", hidden=True, help="The default: personal fields stay sealed.")
           ] = False,
           open_sealed: Annotated[bool, typer.Option(
               "--open-sealed", help="Open sealed personal fields in the export, a bundle or a "
               "SIEM format (the audit.export record says so); by default they stay "
               "sealed.")] = False,
           syslog: Annotated[str | None, typer.Option(
               "--syslog", help="Forward as RFC 5424 syslog to HOST:PORT (with --format "
               "syslog).")] = None,
           syslog_transport: Annotated[str, typer.Option(
               "--syslog-transport", help="udp, tcp or tls (octet-counted).")] = "tcp",
           syslog_ca: Annotated[Path | None, typer.Option(
               "--syslog-ca", help="CA file to trust for --syslog-transport tls.")] = None,
           data: DataOpt = None, log: LogOpt = None) -> None:
    """Export selected events: an evidence bundle, or a SIEM format (to a file, stdout or a
    syslog collector). Audited as a read."""
    if (bundle is None) == (fmt is None):
        fail("give exactly one of --bundle FILE and --format FORMAT")
    if keep_sealed and open_sealed:
        fail("--sealed and --open-sealed contradict each other: give one")
    if syslog is not None and (fmt != "syslog" or out is not None):
        fail("--syslog forwards --format syslog records; leave out --out")
    if syslog_transport not in ("udp", "tcp", "tls"):
        fail("--syslog-transport: use udp, tcp or tls")
    flt = make_filter(actor=actor, subject=subject, action=action, category=category,
                      outcome=outcome, target=target, source=source,
                      since=time_opt(since, "--since"), until=time_opt(until, "--until"))
    with errors(), open_for_search(data, log, flt) as alog:
        if bundle is not None:
            with _bundle_progress("writing the bundle"):
                summary = export_bundle(alog, bundle, flt=flt, actor=operator(),
                                        role=OPERATOR_ROLE, opened=open_sealed)
            typer.echo(dumps({"bundle": str(bundle), "events": summary.events,
                              "tree_size": summary.size, "checkpoints": summary.checkpoints,
                              "bytes": summary.bytes, "export_event": summary.receipt_index}))
            say(f"verify it anywhere with: sealtrail verify-bundle {bundle} --vkey "
                f"'{alog.vkey()}'", soft_wrap=True)
            return
        assert fmt is not None
        if syslog is not None:
            _forward(alog, flt, syslog, syslog_transport, syslog_ca, open_sealed)
            return
        _siem(alog, fmt, flt, out, open_sealed)


Selection = Callable[[], Iterator[tuple[Any, dict[str, Any]]]]


def _selection(alog: Any, flt: Filter) -> tuple[int, Selection]:
    """The entries below the current size matching ``flt``: (that size, a fresh iterator).

    Fixing the end keeps both passes (counting, then writing) on the same entries, and keeps
    the export's own ``audit.export`` event out of it.
    """
    from sealtrail.log.search import search  # noqa: PLC0415 - only exports need it

    end = alog.size
    return end, lambda: search(alog, flt, limit=end + 1, newest_first=False, before=end)


def _record_export(alog: Any, flt: Filter, end: int, count: int, **what: str | bool) -> int:
    """Append the ``audit.export`` read (before anything leaves); its index."""
    receipt = alog.record_access(operator(), "audit.export", role=OPERATOR_ROLE,
                                 details={**flt.describe(alog.pseudonym), **what,
                                          "tree_size": end},
                                 results=count)
    return int(receipt.index)


def _siem(alog: Any, fmt: str, flt: Filter, out: Path | None, open_sealed: bool) -> None:
    from sealtrail.compliance import siem  # noqa: PLC0415 - only SIEM exports need it

    if fmt not in siem.FORMATS:
        fail(f"--format: use one of {', '.join(siem.FORMATS)}")
    end, selected = _selection(alog, flt)
    # Counted first (the record says how many will leave), as exported: retired entries skip.
    count = sum(1 for _ in siem.export_entries(selected()))
    opened = {siem.OPEN_SEALED_DETAIL: open_sealed}

    def rows() -> Iterator[siem.ExportEntry]:
        return _counted(siem.export_entries(selected(), open_sealed=open_sealed), count,
                        "exporting")

    if out is not None:
        with open_private(out) as f:  # 0600, renamed into place only when complete
            _record_export(alog, flt, end, count, format=fmt, out=out.name, **opened)
            written = siem.write_export(fmt, rows(), f, log=alog.name)
    else:
        _record_export(alog, flt, end, count, format=fmt, out="stdout", **opened)
        sys.stdout.flush()
        stdout = sys.stdout.buffer
        try:
            written = siem.write_export(fmt, rows(), stdout, log=alog.name)
            stdout.flush()
        except BrokenPipeError:
            # The reader went away; the read was recorded before the first byte. Point stdout
            # at /dev/null so the interpreter's final flush does not fail again.
            silence_stdout()
            fail(f"the output was closed before the export ended ({count} event(s) "
                 "recorded as exported)", 1)
    say(f"{written} event(s) exported as {fmt}")


def _forward(alog: Any, flt: Filter, target: str, transport: str, ca: Path | None,  # noqa: PLR0917
             open_sealed: bool) -> None:
    import ssl  # noqa: PLC0415 - forwarding only

    from sealtrail.compliance import siem  # noqa: PLC0415

    host, _, port_text = target.rpartition(":")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        fail("--syslog: give HOST:PORT")
    context = None
    if transport == "tls":
        context = ssl.create_default_context(cafile=str(ca) if ca else None)
    elif ca is not None:
        fail("--syslog-ca goes with --syslog-transport tls")
    end, selected = _selection(alog, flt)
    count = sum(1 for _ in siem.export_entries(selected()))
    # Recorded before the first message leaves; a collector that refuses or fails midway
    # leaves the record (the read was attempted), never an unrecorded export.
    index = _record_export(alog, flt, end, count, format="syslog", forwarded_to=target,
                           transport=transport, **{siem.OPEN_SEALED_DETAIL: open_sealed})
    messages = (siem.to_syslog(i, ev, h, log=alog.name)
                for i, ev, h in siem.export_entries(selected(), open_sealed=open_sealed))
    try:
        with siem.SyslogForwarder(host.strip("[]"), int(port_text),
                                  transport,  # type: ignore[arg-type]
                                  ssl_context=context) as forwarder:
            sent = forwarder.send(messages)
    except OSError as exc:
        fail(f"--syslog {target}: {exc} (the export of {count} event(s) is recorded at "
             f"index {index})", 1)
    say(f"{sent} event(s) forwarded to {target} over {transport}")


@commands.command("verify-bundle")
def verify_bundle_cmd(file: Annotated[Path, typer.Argument(help="The bundle (.zip, .tar.gz).")],
                      vkey: Annotated[str, typer.Option(
                          "--vkey", help="The log's verifier key, obtained from a channel you "
                          "trust: its text or a file holding it (@FILE too). A key for "
                          "another origin than the bundle's: NOT VERIFIED, exit 3.")],
                      witness_policy: Annotated[Path | None, typer.Option(
                          "--witness-policy", help=WITNESS_POLICY_HELP + " Every event of the "
                          "bundle must lie under a checkpoint of the bundle that meets it.")
                      ] = None
                      ) -> None:
    """Check an evidence bundle offline: exit 0 only when every proof and signature holds."""
    verifier = trusted_verifier(vkey)  # a malformed key is a usage error, not a failed check
    policy = None if witness_policy is None else trusted_witness_policy(witness_policy)
    if not file.is_file():
        fail(f"{file}: no such file")
    with _bundle_progress() as done:
        try:
            report = verify_bundle_file(file, verifier.format())
        except VerificationError as exc:
            done()
            origin = _bundle_origin(file)
            if origin is not None and origin != verifier.name:
                not_verified(f"the key given is for {verifier.name!r}; the bundle's "
                             f"checkpoint names {origin!r}")
            fail(f"FAILED: {exc}", 1)
    typer.echo(report.summary())
    if policy is not None:
        _witnessed_bundle(file, policy)


def _witnessed_bundle(file: Path, policy: WitnessPolicy) -> None:
    """Say which of a verified bundle's events lie under a checkpoint that meets ``policy``;
    exit 1 unless all of them do."""
    from sealtrail.compliance.bundle import read_bundle  # noqa: PLC0415

    try:
        size, found, uncovered = witnessed_coverage(read_bundle(file), policy)
    except SealtrailError as exc:
        fail(f"FAILED: witnesses: {exc}", 1)
    if found is None:
        fail("NOT WITNESSED: no checkpoint in the bundle carries the cosignatures the policy "
             "asks for (export again once the log's witnesses have cosigned: 'sealtrail "
             "witnesses list')", 1)
    typer.echo(f"witnesses: the checkpoint at size {size} is {found.summary()}")
    if uncovered:
        fail(f"NOT WITNESSED: {uncovered} event(s) of the bundle lie past size {size}, the "
             "latest witnessed checkpoint it carries (export again shortly)", 1)


def _bundle_origin(file: Path) -> str | None:
    """The origin the bundle's checkpoint names (unverified), to tell a wrong key apart."""
    from sealtrail.compliance.bundle import read_bundle  # noqa: PLC0415

    try:
        note = read_bundle(file).get("checkpoint.txt", b"").decode("utf-8", errors="replace")
    except (VerificationError, OSError, ValueError):
        return None
    return note_origin(note)


@contextmanager
def _bundle_progress(what: str = "verifying the bundle") -> Iterator[Callable[[], None]]:
    """A spinner with the elapsed time on stderr while ``what`` runs, when stderr is a
    terminal; yields a function that stops it (before a message is printed)."""
    if not sys.stderr.isatty():
        yield lambda: None
        return
    bar = Progress(SpinnerColumn(), TextColumn(what), TimeElapsedColumn(), console=stderr(),
                   transient=True)
    bar.add_task(what, total=None)
    bar.start()
    try:
        yield bar.stop
    finally:
        bar.stop()


def _counted(items: Iterator[Any], total: int, what: str) -> Iterator[Any]:
    """``items``, advancing a progress bar (stderr, terminals only) towards ``total``."""
    if not sys.stderr.isatty():
        yield from items
        return
    bar = Progress(TextColumn(what), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TimeRemainingColumn(), console=stderr(), transient=True)
    task = bar.add_task(what, total=total)
    bar.start()
    try:
        for item in items:
            yield item
            bar.advance(task)
    finally:
        bar.stop()
