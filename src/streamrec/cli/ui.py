"""Terminal output shared by the CLI verbs: one Rich console, progress bars, summary tables."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

# Not a terminal (CI logs, pipes): wide enough that comparison tables are not cut.
_probe = Console()
console = Console(stderr=False, highlight=False, width=None if _probe.is_terminal else 160)
err_console = Console(stderr=True, highlight=False)

ProgressCallback = Callable[[int, int], None]  # (done, total)


@contextmanager
def progress_bar(description: str) -> Iterator[ProgressCallback]:
    """A Rich progress bar; yields a callback `(done, total)` that library code calls as it works."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False, disable=not console.is_terminal) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def summary_table(title: str, rows: Mapping[str, Any] | list[tuple[str, Any]]) -> Table:
    """A two-column table of name → value, for the 'what I did' summary every verb prints."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    for key, value in rows.items() if isinstance(rows, Mapping) else rows:
        table.add_row(str(key), f"{value:,}" if isinstance(value, int) else str(value))
    return table
