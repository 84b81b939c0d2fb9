"""`streamrec data ...`: make or load a data set folder (see streamrec.data.dataset for its layout)."""

from __future__ import annotations

import time
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from streamrec.cli import load_cmds
from streamrec.cli.context import settings_of
from streamrec.cli.ui import console, progress_bar, summary_table

app = typer.Typer(help="Generate a synthetic streaming world or load a real data set.", no_args_is_help=True)
load_cmds.register(app)


class SizeName(str, Enum):
    tiny = "tiny"
    small = "small"
    medium = "medium"
    ml20m = "ml20m"


@app.command("generate")
def generate(
    ctx: typer.Context,
    out: Path = typer.Option(..., "--out", "-o", help="data set folder to write"),
    size: Optional[SizeName] = typer.Option(
        None,
        "--size",
        help="preset: tiny (200 users, 300 titles, 14 days, ~20k events), small (~200k events), "
        "medium (~2M), ml20m (140k users, 27k titles, 90 days, ~20M events); explicit flags win",
    ),
    users: Optional[int] = typer.Option(None, "--users", min=1, help="number of profiles"),
    titles: Optional[int] = typer.Option(None, "--titles", min=10, help="number of titles"),
    days: Optional[int] = typer.Option(None, "--days", min=1, help="simulated days"),
    events: Optional[int] = typer.Option(
        None, "--events", min=0, help="approximate total events (sets the activity level to reach it)"
    ),
    activity: Optional[float] = typer.Option(
        None, "--activity", min=0.0001, help="mean sessions per user per day (each ~14 events); default 0.5"
    ),
    seed: Optional[int] = typer.Option(None, "--seed", min=0, help="random seed (default: the settings' seed)"),
    start: Optional[datetime] = typer.Option(None, "--start", formats=["%Y-%m-%d"], help="first day, UTC"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing folder"),
) -> None:
    """Generate a synthetic streaming world: titles, availability, users, events and the ground truth.

    Events ≈ users × days × activity × ~14 per session; --events solves the activity for a target instead.
    Same flags and seed → byte-identical Parquet files.
    """
    from streamrec.data.synthetic import WorldConfig, generate_world

    flags = {"users": users, "titles": titles, "days": days, "events": events, "activity": activity}
    flags["seed"] = seed if seed is not None else settings_of(ctx).seed
    if start is not None:
        flags["start"] = start.date()
    try:
        if size is not None:
            config = WorldConfig.preset(size.value, **flags)
        else:
            config = WorldConfig(**{k: v for k, v in flags.items() if v is not None})
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise typer.BadParameter(str(exc)) from exc

    began = time.perf_counter()
    with progress_bar("simulating days") as on_progress:
        info = generate_world(config, out, overwrite=overwrite, on_progress=on_progress)
    seconds = time.perf_counter() - began

    counts, params = info.counts, info.params
    rows: list[tuple[str, object]] = [
        ("output", str(out)),
        ("period", f"{params['start'][:10]} .. {params['end'][:10]} ({config.days} days)"),
        ("seed", config.seed),
        ("titles", counts.get("titles", 0)),
        ("  new releases", params["new_releases"]),
        ("availability windows", counts.get("availability", 0)),
        ("users", counts.get("users", 0)),
        ("  signed up during the period", params["new_users"]),
        ("sessions", params["sessions"]),
        ("events", counts.get("events", 0)),
    ]
    rows += [(f"  {kind}", n) for kind, n in params["events_by_type"].items()]
    rows += [
        ("time", f"{seconds:.1f} s"),
        ("events/s", f"{counts.get('events', 0) / max(seconds, 1e-9):,.0f}"),
    ]
    console.print(summary_table("synthetic world", rows))
