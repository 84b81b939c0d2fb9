"""`streamrec worker`: consume the event bus and keep the online store fresh (streamrec.realtime)."""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Optional

import typer

from streamrec.cli.context import settings_of
from streamrec.cli.ui import console


def register(app: typer.Typer) -> None:
    @app.command()
    def worker(
        ctx: typer.Context,
        name: Optional[str] = typer.Option(None, help="consumer name in the group (default: host-pid); a restarted "
                                                      "worker with the same name takes back its pending entries"),
        batch: int = typer.Option(500, min=1, max=100_000, help="events per read from the bus"),
        seconds: Optional[float] = typer.Option(None, min=0.1, help="stop after this long (default: until SIGTERM "
                                                                    "or Ctrl-C)"),
        land: bool = typer.Option(True, help="also write each batch under DATA_DIR/incoming/live for "
                                             "`streamrec ingest` (the event store)"),
        metrics_port: Optional[int] = typer.Option(None, min=1, max=65535, help="serve Prometheus metrics at "
                                                   "/metrics on this port (events by outcome, consumer lag, "
                                                   "freshness)"),
        metrics_host: str = typer.Option("127.0.0.1", help="interface of the metrics port"),
    ) -> None:
        """Apply live events from the event bus to the online store (several workers share one consumer group)."""
        from streamrec.errors import ConfigError
        from streamrec.events.bus import open_event_bus
        from streamrec.realtime.worker import Worker, stop_on_signals
        from streamrec.storage.online import open_online_store

        settings = settings_of(ctx)
        if settings.event_bus.type == "inprocess":
            raise ConfigError("the in-process event bus lives inside `streamrec serve` (its worker runs beside the "
                              "API); run workers apart with event_bus.type = \"redis\" "
                              "(STREAMREC_EVENT_BUS__TYPE=redis, STREAMREC_EVENT_BUS__URL=redis://...)")
        name = name or f"{socket.gethostname()}-{os.getpid()}"
        bus = open_event_bus(settings.event_bus)
        store = open_online_store(settings.online_store)
        stop = stop_on_signals()
        if seconds is not None:
            threading.Timer(seconds, stop.set).start()
        began = time.perf_counter()
        from streamrec.realtime.landing import EventLanding

        landing = EventLanding(settings.data_dir / "incoming" / "live") if land else None
        running = Worker(bus, store, name, count=batch, landing=landing)
        console.print(f"worker [bold]{name}[/] in group '{running.consumer.group}' on {settings.event_bus.type} → "
                      f"online store {settings.online_store.type}; SIGTERM or Ctrl-C stops it")
        exporter = None
        if metrics_port is not None:
            from streamrec.realtime.metrics import serve_worker_metrics

            exporter = serve_worker_metrics(running, bus, metrics_port, metrics_host)
            console.print(f"  metrics: http://{metrics_host}:{metrics_port}/metrics")
        try:
            counts = running.run(stop)
        finally:
            if exporter is not None:
                exporter.shutdown()
                exporter.server_close()
            running.close()
        took = time.perf_counter() - began
        console.print(f"stopped after {took:.1f} s: applied {counts.get('applied', 0):,}, duplicates "
                      f"{counts.get('duplicates', 0):,}, ignored {counts.get('ignored', 0):,} (not engagements), "
                      f"{running.outages} backend outages waited out"
                      + (f"; {landing.written:,} events landed in {landing.folder}" if landing else ""))


def show_live_event(state, user: str) -> dict:
    """The embedded worker at work: `user`'s list, then a `complete` of its first title accepted as POST /v1/events
    accepts it (validated, onto the bus, applied beside the API), then the list again. Prints both; returns them."""
    from datetime import timedelta

    from rich.table import Table

    from streamrec.serving import answers

    world, model = state.world, state.holder.current
    before = answers.one_list(world, model, user, 10, None)
    if not before.items:
        console.print(f"no list for {user}: nothing to show")
        return {}
    watched = before.items[0]
    event = {"event_id": f"demo-live-{user}", "user_id": user, "item_id": watched, "type": "complete",
             "ts": world.clock() - timedelta(seconds=1), "fraction": 1.0}
    began = time.perf_counter()
    checked = world.validator.check([event])
    if world.landing is not None:  # as POST /v1/events does: kept for the event store first
        world.landing(checked.valid)
    world.bus.publish(checked.valid)
    after = answers.one_list(world, model, user, 10, None)
    fresh_ms = (time.perf_counter() - began) * 1000
    console.print(f"user {user} finished {watched} live → the next list {fresh_ms:.1f} ms later, no retraining:")
    table = Table()
    table.add_column("#", justify="right")
    table.add_column("before")
    table.add_column("after")
    for i in range(max(len(before.items), len(after.items))):
        old = before.items[i] if i < len(before.items) else ""
        new = after.items[i] if i < len(after.items) else ""
        table.add_row(str(i + 1), f"[strike]{old}[/]" if old == watched else old,
                      f"[green]{new}[/]" if new and new not in before.items else new)
    console.print(table)
    console.print(f"accepted {len(checked.valid)} event, applied {world.applier.counts['applied']} by the worker "
                  f"beside the API; {watched} {'is gone' if watched not in after.items else 'is STILL listed'}")
    return {"before": before.items, "after": after.items, "watched": watched, "fresh_ms": fresh_ms}
