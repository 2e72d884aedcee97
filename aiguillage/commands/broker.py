"""The `aiguillage broker` commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="broker commands.", no_args_is_help=True)
