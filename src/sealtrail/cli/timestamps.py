"""``timestamps``: RFC 3161 trusted timestamps on checkpoints."""

from __future__ import annotations

import typer

tsa_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                   help="RFC 3161 trusted timestamps on checkpoints.")
