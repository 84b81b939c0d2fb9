"""`streamrec models ...`: the model registry — list and show versions, promote to champion, roll back, download."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from streamrec.cli.context import settings_of
from streamrec.cli.ui import console, summary_table

app = typer.Typer(
    help="The model registry (MLflow): versions with lineage, aliases champion (served) and challenger (rollback).",
    no_args_is_help=True,
)

REF_HELP = "version number (3 or v3) or alias (champion, challenger)"


def _open(ctx: typer.Context) -> "Registry":  # noqa: F821 (imported lazily: MLflow is slow to import)
    from streamrec.registry import open_registry

    return open_registry(settings_of(ctx))


def _lineage_table(title: str, rows: list[tuple[str, str]]) -> Table:
    """Like summary_table, but long values (URIs, sha256) fold instead of being cut off."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("what", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    for key, value in rows:
        table.add_row(key, value)
    return table


def _short_code(version: str) -> str:
    """'git:<40 hex>-dirty' → 'git:<8 hex>-dirty' (`models show` prints it in full)."""
    if not version.startswith("git:"):
        return version
    commit, _, dirty = version[4:].partition("-")
    return f"git:{commit[:8]}" + (f"-{dirty}" if dirty else "")


def _version(v: int | None) -> str:
    return "-" if v is None else f"v{v}"


@app.command("list")
def list_versions(ctx: typer.Context) -> None:
    """List the registered versions, newest first, with their aliases and lineage."""
    registry = _open(ctx)
    versions = registry.list_versions()
    if not versions:
        console.print(f"no versions of '{escape(registry.name)}' at {escape(registry.where)} yet")
        return
    table = Table(title=f"{registry.name} ({registry.where})", title_justify="left")
    for column in ("version", "aliases", "model", "data snapshot", "code version", "created (UTC)"):
        table.add_column(column, no_wrap=column in ("version", "aliases", "model", "created (UTC)"),
                         overflow="fold")
    for info in versions:
        table.add_row(f"v{info.version}", ", ".join(info.aliases) or "-", info.model, info.data_snapshot,
                      _short_code(info.code_version), info.created.strftime("%Y-%m-%d %H:%M"))
    console.print(table)


@app.command("show")
def show(ctx: typer.Context, ref: str = typer.Argument(..., help=REF_HELP)) -> None:
    """Show one version: lineage (run, data snapshot, code version, created, checksums), params and metrics."""
    info = _open(ctx).show(ref)
    lineage = [
        ("registered model", info.name), ("version", f"v{info.version}"), ("aliases", ", ".join(info.aliases) or "-"),
        ("model", info.model), ("run id", info.run_id), ("data snapshot", info.data_snapshot),
        ("code version", info.code_version), ("created (UTC)", info.created.strftime("%Y-%m-%d %H:%M:%S")),
        ("source", info.source), *((f"sha256 {name}", sha) for name, sha in info.checksums.items()),
    ]
    if info.description:
        lineage.insert(3, ("description", info.description))
    console.print(_lineage_table(f"{info.name} v{info.version}", lineage))
    if info.params:
        console.print(summary_table("params", sorted(info.params.items())))
    if info.metrics:
        console.print(summary_table("metrics", [(k, f"{v:.6g}") for k, v in sorted(info.metrics.items())]))


@app.command("promote")
def promote(ctx: typer.Context, ref: str = typer.Argument(..., help=REF_HELP)) -> None:
    """Make a version the champion (served); the previous champion becomes challenger, the rollback target."""
    registry = _open(ctx)
    change = registry.promote(ref)
    if not change.changed:
        console.print(f"v{change.champion} is already the champion of '{escape(registry.name)}'; nothing changed")
        return
    console.print(summary_table("promoted", [
        ("registered model", registry.name), ("champion", f"v{change.champion}"),
        ("previous champion", _version(change.previous_champion)), ("challenger", _version(change.challenger)),
    ]))


@app.command("rollback")
def rollback(ctx: typer.Context) -> None:
    """Make the challenger (the previous champion) champion again; the demoted version becomes challenger."""
    registry = _open(ctx)
    change = registry.rollback()
    console.print(summary_table("rolled back", [
        ("registered model", registry.name), ("champion", f"v{change.champion}"),
        ("challenger (demoted)", _version(change.challenger)),
    ]))


@app.command("download")
def download(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help=REF_HELP),
    out: Path = typer.Option(..., "--out", "-o", help="folder to write the model into (must be absent or empty)"),
) -> None:
    """Fetch a version's saved model folder and verify its sha256 checksums against the registry."""
    registry = _open(ctx)
    started = time.perf_counter()
    version = registry.resolve(ref)
    path = registry.download(version, out)
    console.print(summary_table("downloaded", [
        ("registered model", registry.name), ("version", f"v{version}"), ("folder", str(path.resolve())),
        ("files verified", len(list(p for p in path.rglob("*") if p.is_file()))),
        ("seconds", f"{time.perf_counter() - started:.2f}"),
    ]))
