"""The `streamrec` command: one verb per stage. Each verb lives in its own module and prints what it did."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from streamrec.cli import (
    candidates_cmds,
    data_cmds,
    demo_cmds,
    experiment_cmds,
    features_cmds,
    ingest_cmds,
    models_cmds,
    monitor_cmds,
    preprocess_cmds,
    rank_cmds,
    serve_cmds,
    simulate_cmds,
    train_cmds,
    tune_cmds,
    worker_cmds,
)
from streamrec.cli.ui import err_console
from streamrec.errors import StreamrecError
from streamrec.logs import configure_from_settings
from streamrec.settings import load_settings

app = typer.Typer(
    name="streamrec",
    help="A recommendation system for a video-streaming service, from raw events to live recommendations.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data_cmds.app, name="data")
app.add_typer(models_cmds.app, name="models")
app.add_typer(features_cmds.app, name="features")
app.add_typer(experiment_cmds.app, name="experiment")
ingest_cmds.register(app)
preprocess_cmds.register(app)
train_cmds.register(app)
candidates_cmds.register(app)
rank_cmds.register(app)
tune_cmds.register(app)
demo_cmds.register(app)
serve_cmds.register(app)
worker_cmds.register(app)
simulate_cmds.register(app)
monitor_cmds.register(app)


@app.callback()
def root(
    ctx: typer.Context,
    config: Optional[Path] = typer.Option(None, "--config", help="settings file (default ./streamrec.toml)"),
    profile: Optional[str] = typer.Option(None, "--profile", help="\\[profile.NAME] table of the settings file"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="where stores, models and reports live"),
    log_level: Optional[str] = typer.Option(None, "--log-level", help="debug, info, warning or error"),
) -> None:
    """Global options, read before any verb runs."""
    overrides: dict = {"data_dir": data_dir}
    if log_level:
        overrides["logging"] = {"level": log_level}
    settings = load_settings(config, profile, **overrides)
    configure_from_settings(settings.logging)
    ctx.obj = settings


def main() -> None:
    """Entry point: domain errors become one clear line and exit code 2, never a traceback.

    Usage errors (bad flags) are handled by the CLI framework itself, with its usual exit code 2. Exit code 1 is left
    to checks that found something: `streamrec monitor` exits 1 when an alert fires.
    """
    try:
        app()
    except StreamrecError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        sys.exit(2)
