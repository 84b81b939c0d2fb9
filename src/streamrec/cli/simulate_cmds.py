"""`streamrec simulate`: synthetic viewers with their true taste use the service for N days (closed loop), over
HTTP or in this process; writes the exposure/outcome log and prints a summary per day."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from streamrec.cli.context import settings_of
from streamrec.cli.ui import console, err_console, progress_bar


def register(app: typer.Typer) -> None:
    @app.command()
    def simulate(
        ctx: typer.Context,
        days: int = typer.Option(7, "--days", min=1, max=3650, help="simulated days"),
        users: Optional[int] = typer.Option(None, "--users", min=1, help="viewers drawn from the world (default: all)"),
        out: Path = typer.Option(..., "--out", "-o", help="the exposure/outcome log to write (Parquet)"),
        url: Optional[str] = typer.Option(None, "--url", help="a running server (http://host:port); default: the "
                                                              "service in this process, on the settings' stores"),
        api_key: Optional[str] = typer.Option(None, "--api-key", help="X-API-Key for POST /v1/events over HTTP "
                                                                      "(default: the first of serving.api_keys)"),
        world: Optional[Path] = typer.Option(None, "--world", help="the synthetic world's folder, with truth/ "
                                                                   "(default DATA_DIR/world)"),
        model: Optional[str] = typer.Option(None, "--model", help="in process: what to serve (default "
                                                                  "serving.model)"),
        seed: int = typer.Option(0, "--seed", min=0, help="seed of the viewers' draws and choices"),
        k: int = typer.Option(10, "--k", min=1, max=1000, help="titles per requested list"),
        start: Optional[datetime] = typer.Option(None, "--start", formats=["%Y-%m-%d"],
                                                 help="first simulated day, UTC (default: the day after the world's "
                                                      "last day)"),
    ) -> None:
        """Simulate viewers answering the service's lists for N days; deterministic per seed in process."""
        from streamrec.data.dataset import Dataset
        from streamrec.data.synthetic.taste import GroundTruth
        from streamrec.simulation import SimulationConfig, simulate as run_simulation, write_log

        settings = settings_of(ctx)
        folder = world or settings.data_dir / "world"
        truth = GroundTruth.load(folder)
        users_table = Dataset.open(folder).table("users")
        run_id = f"sim{seed}-{time.strftime('%Y%m%dT%H%M%S')}" if url else None  # a server may have seen sim<seed>
        config = SimulationConfig(days=days, users=users, seed=seed, k=k, start=start, run_id=run_id)
        began = time.perf_counter()
        transport = _transport(settings, url, api_key, model)
        try:
            with progress_bar("simulating days") as bar:
                result = run_simulation(truth, users_table, transport, config, on_progress=bar)
        finally:
            transport.close()
        path = write_log(result.log, out)
        console.print(day_table(result, "in process" if url is None else url))
        total = result.total
        console.print(f"{result.log.num_rows:,} log rows → {path}; {total.viewers:,} viewers, "
                      f"{total.requests / max(total.seconds, 1e-9):,.1f} requests/s; "
                      f"{time.perf_counter() - began:.1f}s in all")
        if result.rejected:
            first = result.rejected[0]
            err_console.print(f"[bold red]{len(result.rejected):,} events rejected[/] by the service, e.g. field "
                              f"'{first.get('field')}': {first.get('reason')} {first.get('detail', '')}")
            raise typer.Exit(1)


def _transport(settings, url: str | None, api_key: str | None, model: str | None):
    from streamrec.simulation import HttpTransport, InProcessTransport

    if url is not None:
        keys = [k.get_secret_value() for k in settings.serving.api_keys]
        return HttpTransport(url, api_key or (keys[0] if keys else ""), batch=settings.serving.max_batch)
    from streamrec.serving import build_state

    serving = settings.serving.model_copy(update={"clock": "data", **({"model": model} if model else {})})
    state = build_state(settings.model_copy(update={"serving": serving}))
    if state.holder.current is None:
        err_console.print(f"[yellow]no model loaded ({state.holder.problem}): viewers get trending titles[/]")
    return InProcessTransport(state, api_key)


def day_table(result, where: str) -> Table:
    """One row per simulated day, and the total."""
    table = Table(title=f"simulated viewers ({where})", title_justify="left")
    for name in ("day", "viewers", "requests", "impressions", "plays", "play rate", "completes", "watch min",
                 "rejected", "requests/s"):
        table.add_column(name, justify="left" if name == "day" else "right")

    def row(label: str, d, end_section: bool = False) -> None:
        table.add_row(label, f"{d.viewers:,}", f"{d.requests:,}", f"{d.impressions:,}", f"{d.plays:,}",
                      f"{d.play_rate:.1%}", f"{d.completes:,}", f"{d.watch_minutes:,.0f}", f"{d.rejected:,}",
                      f"{d.requests / max(d.seconds, 1e-9):,.1f}", end_section=end_section)

    for i, d in enumerate(result.days):
        row(d.day.isoformat(), d, end_section=i == len(result.days) - 1)
    row("total", result.total)
    return table
