"""``sealtrail``: the root of the command line, built from one module per command group.

This module only builds the root app, registers the groups and defines :func:`main` (the
console script, ``sealtrail.cli.app:main``). The commands live in their group's module, on the
helpers of ``cli/common.py``; none of them imports this module (import-linter keeps it so).

Exit codes: 0 success; 1 the log failed verification, or a runtime failure (storage); 2 usage or
invalid input (nothing stored); 3 the key given verifies nothing. ``--data DIR`` (env
``SEALTRAIL_DATA``, default ``./sealtrail-data``) and ``--log NAME`` (default ``default``) may
come before or after the command.
"""

from __future__ import annotations

from collections.abc import Sequence

import typer

from sealtrail.cli import (
    evidence,
    importing,
    keys,
    lifecycle,
    monitoring,
    personal,
    proofs,
    reading,
    report,
    retention,
    review,
    sealing,
    search,
    service,
    timestamps,
    users,
    verifying,
    witness,
    witnesses,
)
from sealtrail.cli.common import global_options

# rich_markup_mode=None: help texts are plain text, so their "[env ...]" and "[default: ...]"
# notes are shown as written (rich markup would take them for tags and drop them).
app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                  help="sealtrail: a tamper-evident audit trail (RFC 6962 log, signed "
                       "C2SP checkpoints, offline-verifiable proofs).")
app.callback()(global_options)

# `sealtrail --help` lists commands in the order they are registered here: the top-level
# commands first, then the groups, in the order they have always been listed.
for group_commands in (lifecycle.commands,   # init append checkpoint vkey
                       reading.commands,     # entries
                       verifying.commands,   # verify
                       proofs.commands,      # verify-proof
                       search.commands,      # query
                       personal.commands,    # erase subject-export redact-test
                       service.commands,     # serve demo tour
                       evidence.commands,    # export verify-bundle
                       importing.commands,   # import
                       monitoring.commands,  # monitor
                       report.commands):     # report
    app.add_typer(group_commands)  # no name: its commands join the root
app.add_typer(proofs.prove_app, name="prove")
app.add_typer(keys.keys_app, name="keys")
app.add_typer(verifying.head_app, name="head")
app.add_typer(lifecycle.settings_app, name="settings")
app.add_typer(personal.hold_app, name="hold")
app.add_typer(retention.retention_app, name="retention")
app.add_typer(retention.archive_app, name="archive")
app.add_typer(monitoring.rules_app, name="rules")
app.add_typer(monitoring.alerts_app, name="alerts")
app.add_typer(users.users_app, name="users")
app.add_typer(witness.witness_app, name="witness")
app.add_typer(witnesses.witnesses_app, name="witnesses")
app.add_typer(sealing.seal_app, name="seal")
app.add_typer(timestamps.tsa_app, name="timestamps")
app.add_typer(review.review_app, name="review")


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point; ``argv`` instead of ``sys.argv[1:]`` runs it in-process.
    Like every Click program it ends by raising SystemExit with the exit code."""
    app(args=None if argv is None else list(argv))
