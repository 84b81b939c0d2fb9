"""`streamrec data ...`: make or load a data set folder (see streamrec.data.dataset for its layout)."""

from __future__ import annotations

import typer

from streamrec.cli import load_cmds

app = typer.Typer(help="Generate a synthetic streaming world or load a real data set.", no_args_is_help=True)
load_cmds.register(app)
