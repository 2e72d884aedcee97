"""The `aiguillage regulate` commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="regulate commands.", no_args_is_help=True)
