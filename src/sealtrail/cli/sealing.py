"""``sealing``: Forward-secure sealing: an evolving key that cannot seal the past."""

from __future__ import annotations

import typer

seal_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                   help="Forward-secure sealing: an evolving key that cannot seal the past.")
