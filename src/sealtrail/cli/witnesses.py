"""``witnesses``: The log's witnesses (add, list, remove, policy): who cosigns its checkpoints."""

from __future__ import annotations

import typer

witnesses_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                   help="The log's witnesses (add, list, remove, policy): who cosigns its checkpoints.")
