"""Retention: ``retention set|show|apply`` and the archive it fills, ``archive list|restore``.

Purging and archiving keep every leaf hash, so proofs stay valid; each step appends a receipt
to the log. Entries of subjects under a legal hold are not purged, and retention receipts are
never purged or archived (``log/retention.py``, ``log/archive.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from sealtrail.cli.common import DataOpt, LogOpt, errors, fail, open_log, operator, read_text
from sealtrail.cli.output import dumps
from sealtrail.log.archive import apply_retention, archive_dir, restore
from sealtrail.log.retention import RetentionPolicy, load_policy, plan_purge, set_policy

retention_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                            help="Retention policy and purge (keeps every "
                            "leaf hash: proofs stay valid).")
archive_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                          help="Archived segments (offline, compressed, "
                          "encrypted): list and restore.")


@retention_app.command("set")
def retention_set(preset: Annotated[str | None, typer.Option(
                      help="pci-dss, hipaa, gdpr or soc2.")] = None,
                  file: Annotated[Path | None, typer.Option(
                      "--file", help="A JSON policy: {\"name\": ..., \"default\": {\"min\": "
                      "\"366d\", \"max\": ..., \"online\": \"92d\"}, \"authentication\": {...}}"
                  )] = None,
                  data: DataOpt = None, log: LogOpt = None) -> None:
    """Set the log's retention policy (recorded as a configuration event)."""
    if (preset is None) == (file is None):
        fail("give exactly one of --preset and --file")
    with errors():
        if preset is not None:
            policy = RetentionPolicy.preset(preset)
        else:
            assert file is not None
            try:
                doc = json.loads(read_text(file, "--file"))
            except ValueError as exc:
                fail(f"--file {file}: not JSON: {exc}")
            policy = RetentionPolicy.parse(doc)
        with open_log(data, log, need_keys=True) as alog:
            receipt = set_policy(alog, policy, actor=operator())
            typer.echo(dumps({"policy": policy.to_json(), "index": receipt.index}))


@retention_app.command("show")
def retention_show(data: DataOpt = None, log: LogOpt = None) -> None:
    """The log's retention policy (none: everything is kept)."""
    with errors(), open_log(data, log) as alog:
        policy = load_policy(alog)
        typer.echo(dumps(policy.to_json() if policy else {"policy": None}, indent=2))


@retention_app.command("apply")
def retention_apply(dry_run: Annotated[bool, typer.Option(
                        "--dry-run", help="Show what would be purged; change nothing.")] = False,
                    data: DataOpt = None, log: LogOpt = None) -> None:
    """Purge entry bodies past their maximum keep, then archive what is past its online
    period; leaf hashes and proofs stay; each step appends a receipt. Entries of subjects
    under a legal hold are not purged; retention receipts are never purged or archived."""
    with errors(), open_log(data, log, need_keys=not dry_run) as alog:
        policy = load_policy(alog)
        if policy is None:
            fail("this log has no retention policy: set one with 'sealtrail retention set'")
        plan = plan_purge(alog, policy)
        if dry_run:
            typer.echo(dumps({"dry_run": True, **plan.to_json()}))
            return
        result = apply_retention(alog, policy, actor=operator())
        typer.echo(dumps({"dry_run": False, **result.plan.to_json(),
                          "receipt": result.purge_receipt,
                          "archived_purged": [{"start": s, "end": e, "receipt": r.index}
                                              for s, e, r in result.archived_purged],
                          "archived": [{"start": s.start, "end": s.end, "file": s.name,
                                        "receipt": r.index} for s, r in result.archived]}))


@archive_app.command("restore")
def archive_restore(file: Annotated[Path, typer.Argument(help="A segment file (.starc).")],
                    data: DataOpt = None, log: LogOpt = None) -> None:
    """Bring an archived segment back online (every leaf checked against the tree)."""
    if not file.is_file():
        fail(f"{file}: no such file")
    with errors(), open_log(data, log, need_keys=True) as alog:
        receipt = restore(alog, file, actor=operator())
        typer.echo(dumps({"restored": file.name, "receipt": receipt.index}))


@archive_app.command("list")
def archive_list(data: DataOpt = None, log: LogOpt = None) -> None:
    """Archived segment files of the log."""
    with errors(), open_log(data, log) as alog:
        directory = archive_dir(alog)
        files = sorted(directory.glob("seg-*.starc")) if directory.is_dir() else []
        for f in files:
            typer.echo(dumps({"file": str(f), "bytes": f.stat().st_size}))
