"""`streamrec demo`: the whole system end to end on a synthetic streaming world."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import typer

from streamrec.cli.context import settings_of
from streamrec.cli.ui import console, progress_bar


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        ctx: typer.Context,
        size: str = typer.Option("small", help="world size preset: tiny, small, medium or ml20m"),
        seed: int = typer.Option(7, help="random seed of the world"),
        fresh: bool = typer.Option(True, help="start from an empty data folder (DATA_DIR/demo)"),
        serve: bool = typer.Option(True, help="end by serving the API on 127.0.0.1 with the demo's pipeline "
                                              "(--no-serve: stop after the report)"),
    ) -> None:
        """Generate a world, ingest it (with a file of broken events), preprocess, build the feature snapshot, train
        and compare the model zoo, register the champion, evaluate the ranked pipeline stage by stage, and print
        what each stage did."""
        from streamrec.cli import (candidates_cmds, features_cmds, ingest_cmds, preprocess_cmds, rank_cmds, train_cmds,
                                   experiment_cmds, worker_cmds)
        from streamrec.evaluation import write_report
        from streamrec.training import interactions_from_store, train_and_register
        from streamrec.data.synthetic import WorldConfig, generate_world
        from streamrec.events.runner import ingest_paths
        from streamrec.storage.events import open_event_store

        settings = settings_of(ctx)
        root = settings.data_dir / "demo"
        if fresh and root.exists():
            shutil.rmtree(root)
        settings = settings.model_copy(update={"data_dir": root})
        world = root / "world"
        began = time.perf_counter()

        console.rule(f"1. generate a synthetic streaming world ({size})")
        with progress_bar("simulating days") as bar:
            info = generate_world(WorldConfig.preset(size, seed=seed), world, overwrite=True, on_progress=bar)
        console.print(f"{info.counts.get('events', 0):,} events, {info.counts.get('users', 0):,} users, "
                      f"{info.counts.get('titles', 0):,} titles → {world}")

        console.rule("2. ingest: validate, quarantine, dedup, store exactly once")
        broken = _broken_file(root / "incoming" / "late-and-broken.csv", world)
        started = time.perf_counter()
        with open_event_store(settings) as store, progress_bar("ingesting files") as bar:
            summary = ingest_paths(store, [world, broken], settings.ingest,
                                   quality=ingest_cmds.quality_of(settings), on_progress=bar)
            again = ingest_paths(store, [world], settings.ingest)  # re-ingesting is a no-op
        ingest_cmds.print_ingest_summary(summary, time.perf_counter() - started, settings.event_store_path)
        console.print(f"re-ingesting the world: {sum(b.skipped for b in again.batches)} of {len(again.batches)} "
                      "files skipped by checksum, 0 events stored twice")

        console.rule("3. preprocess: bots, sessions, weights, k-core")
        preprocess_cmds.print_report(preprocess_cmds.run(settings))

        console.rule("4. features: every user's and title's declared features, point in time")
        features_cmds.print_build(features_cmds.build(settings))

        console.rule("5. train the model zoo, compare on a temporal split, register the best as champion")
        table = interactions_from_store(settings)
        with progress_bar("evaluating models") as bar:
            out = train_and_register(table, settings, item_genres=train_cmds.item_genres(settings), on_progress=bar)
        console.print(train_cmds.comparison_table(out.evaluation, out.metric))
        report = write_report(out.evaluation, root / "reports" / "evaluation.html")
        console.print(f"champion: {out.best} (registry version {out.version}, {out.promote_reason}); "
                      f"report: {report}")

        console.rule("6. ranked pipeline: candidates from every source, filters, LightGBM ranker on point-in-time "
                     "features, diversity; registered")
        trained = candidates_cmds.run_pipeline(settings)
        candidates_cmds.print_pipeline(trained)

        console.rule("7. one request through the registered pipeline, as serving answers it")
        user = str(trained.report.user_ids[0]) if trained.report.user_ids is not None else None
        if user is not None and trained.version is not None:
            result, timings = rank_cmds.rank_user(settings, user, model=str(trained.version))
            rank_cmds.print_ranked(result, timings)
        console.rule("8. a live event: the worker beside the API applies it, the next list reflects it")
        model = str(trained.version) if trained.version is not None else settings.serving.model
        served = settings.model_copy(update={"serving": settings.serving.model_copy(
            update={"model": model, "clock": "data"})})
        from streamrec.serving import build_state

        state = build_state(served)
        if user is not None:
            worker_cmds.show_live_event(state, user)
        if trained.version is not None and out.version is not None and str(out.version) != str(trained.version):
            console.rule(f"9. a simulated A/B: the ranked pipeline (v{trained.version}) against the best single model "
                         f"(v{out.version}, {out.best}), viewers with their true taste, then the analysis")
            experiment_cmds.demo_ab(served, str(trained.version), str(out.version), world, days=3, seed=seed)
        console.rule("10. monitor: data quality, feature and score drift against the training-time reference, play "
                     "rate per variant, concentration and coverage of what was served")
        from streamrec.monitoring.run import monitoring_report as run_monitor
        from streamrec.monitoring.report import render as render_monitor

        checked = run_monitor(settings)
        console.print(render_monitor(checked))
        console.print(f"`streamrec --data-dir {root} monitor` would exit {checked.exit_code} "
                      "(0 quiet, 1 alert, 2 error)")
        console.rule(f"done in {time.perf_counter() - began:.1f}s — data in {root}")
        if serve:
            from streamrec.cli.serve_cmds import run_server

            console.rule("11. serve the API (the synthetic world's clock: just after its newest event)")
            run_server(served, state)


def _broken_file(path: Path, world: Path) -> Path:
    """A small CSV of events arriving late, with typical faults, so the demo shows quarantine at work."""
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    sample = pq.read_table(next((world / "events").glob("*.parquet")), columns=["event_id", "user_id", "item_id"])
    first = sample.slice(0, 1).to_pylist()[0]
    user, item = first["user_id"], first["item_id"]
    lines = [
        "event_id,user_id,item_id,type,ts,fraction,rating",
        f"{first['event_id']},{user},{item},play,2024-01-01T00:00:00Z,,",  # already stored: a duplicate
        f"late-1,{user},{item},play,2024-03-01T20:00:00Z,,",
        f"late-2,{user},{item},progress,2024-03-01T20:30:00Z,0.4,",
        f"late-3,{user},{item},watch,2024-03-01T20:30:00Z,,",  # unknown event type
        f"late-4,{user},{item},progress,2024-03-01T20:30:00Z,1.7,",  # fraction out of range
        f"late-5,,{item},play,2024-03-01T20:30:00Z,,",  # no user
        f"late-6,{user},no-such-title,play,2024-03-01T20:30:00Z,,",  # not in the catalog
        f"late-7,{user},{item},rating,2031-01-01T00:00:00Z,,4",  # from the future
        f"late-2,{user},{item},progress,2024-03-01T20:30:00Z,0.4,",  # repeated in the file
    ]
    path.write_text("\n".join(lines) + "\n")
    return path
