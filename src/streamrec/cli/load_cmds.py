"""`streamrec data load|download`: MovieLens and generic event files into a data set folder."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from streamrec.cli.ui import console, progress_bar, summary_table

load_app = typer.Typer(
    help="Load real data (MovieLens, or any events file) into a data set folder.", no_args_is_help=True
)


@load_app.command("movielens")
def load_movielens(
    path: Path = typer.Argument(..., help="a MovieLens folder or .zip (ml-100k, ml-1m, ml-10m ... ml-latest-small)"),
    out: Path = typer.Option(..., "--out", "-o", help="the data set folder to write"),
    variant: str | None = typer.Option(
        None,
        "--variant",
        help="ml-100k, ml-1m, ml-10m, ml-20m, ml-25m, ml-32m, ml-latest, ml-latest-small "
        "(default: detected from the files)",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace OUT if it exists"),
) -> None:
    """Load a MovieLens release: ratings become rating events; movies, users and tags the catalog."""
    from streamrec.data.movielens import movielens_to_dataset

    start = time.perf_counter()
    with progress_bar("writing events") as update:
        info = movielens_to_dataset(path, out, variant=variant, overwrite=overwrite, on_progress=update)
    _summary(f"Loaded {info.source}", info.counts, start, out)


@load_app.command("file")
def load_file(
    path: Path = typer.Argument(..., help="an events file: .csv, .tsv, .parquet or .jsonl (CSV may be .gz)"),
    out: Path = typer.Option(..., "--out", "-o", help="the data set folder to write"),
    fmt: str | None = typer.Option(None, "--format", help="csv, tsv, parquet or jsonl (default: from the name)"),
    user_col: str | None = typer.Option(None, "--user-col", help="user id column (default: user_id, userId ...)"),
    item_col: str | None = typer.Option(None, "--item-col", help="item id column (default: item_id, movieId ...)"),
    ts_col: str | None = typer.Option(None, "--ts-col", help="event time column (default: ts, timestamp ...)"),
    rating_col: str | None = typer.Option(None, "--rating-col", help="rating column (events become ratings)"),
    type_col: str | None = typer.Option(None, "--type-col", help="event type column (default: rating or play)"),
    event_id_col: str | None = typer.Option(None, "--event-id-col", help="event id column (default: row hash)"),
    watched_col: str | None = typer.Option(None, "--watched-col", help="seconds watched column"),
    fraction_col: str | None = typer.Option(None, "--fraction-col", help="share of the runtime watched column"),
    ts_unit: str = typer.Option("auto", "--ts-unit", help="auto, s, ms, us, ns (epoch numbers) or iso"),
    ts_format: str | None = typer.Option(None, "--ts-format", help="strptime format of string times"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace OUT if it exists"),
) -> None:
    """Load any events file, naming its columns; unnamed ones are looked up among common names."""
    from pydantic import ValidationError as PydanticValidationError

    from streamrec.data.tabular import ColumnMapping, file_to_dataset
    from streamrec.errors import ConfigError

    try:
        mapping = ColumnMapping(
            user=user_col,
            item=item_col,
            timestamp=ts_col,
            rating=rating_col,
            type=type_col,
            event_id=event_id_col,
            watched_s=watched_col,
            fraction=fraction_col,
            timestamp_unit=ts_unit,  # type: ignore[arg-type]
            timestamp_format=ts_format,
        )
    except PydanticValidationError as exc:
        raise ConfigError(f"column mapping: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}") from None
    start = time.perf_counter()
    with progress_bar("writing events") as update:
        info = file_to_dataset(path, out, mapping, fmt=fmt, overwrite=overwrite, on_progress=update)
    mapped = ", ".join(f"{field}={column}" for field, column in info.params["mapping"].items())
    _summary(f"Loaded {info.source}", {**info.counts, "columns": mapped}, start, out)


def download(
    name: str = typer.Argument(..., help="the release, e.g. ml-latest-small, ml-25m"),
    dest: Path = typer.Option(Path("."), "--dest", help="folder for NAME.zip"),
    base_url: str | None = typer.Option(None, "--base-url", help="where the zips are (default: GroupLens)"),
    sha256: str | None = typer.Option(None, "--sha256", help="expected SHA-256 (default: check GroupLens' .md5)"),
) -> None:
    """Download a MovieLens zip and verify its checksum (needs internet access)."""
    from streamrec.data.download import GROUPLENS_URL, download_movielens

    start = time.perf_counter()
    with progress_bar(f"downloading {name}") as update:
        path = download_movielens(name, dest, base_url=base_url or GROUPLENS_URL, sha256=sha256, on_progress=update)
    check = "sha256" if sha256 else "md5 from the server"
    _summary(f"Downloaded {name}", {"bytes": path.stat().st_size, "checksum": f"{check}, ok"}, start, path)
    console.print(f"next: streamrec data load movielens {path} --out DIR")


def _summary(title: str, rows: dict, start: float, where: Path) -> None:
    seconds = time.perf_counter() - start
    events = rows.get("events")
    extra = [("seconds", f"{seconds:.2f}")]
    if isinstance(events, int) and seconds > 0:
        extra.append(("events/s", f"{events / seconds:,.0f}"))
    console.print(summary_table(title, [*rows.items(), *extra, ("output", str(where))]))


def register(app: typer.Typer) -> None:
    """Add the load/download verbs to the `data` group."""
    app.add_typer(load_app, name="load")
    app.command("download")(download)
