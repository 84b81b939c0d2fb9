"""Small builders of event files for tests (the synthetic world is for bigger ones)."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

VALID_ROW = {"event_id": "e1", "user_id": "u1", "item_id": "t1", "type": "play", "ts": "2024-03-01T12:00:00Z"}


def event(event_id: str, **fields: Any) -> dict[str, Any]:
    row = dict(VALID_ROW, event_id=event_id)
    row.update(fields)
    return row


def write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str] | None = None) -> Path:
    columns = columns or sorted({k for r in rows for k in r}, key=lambda c: (c not in VALID_ROW, c))
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    return path


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def served_world(tiny_world_store: Path, root: Path, bundles: dict[str, int]) -> None:
    """A data dir for serving tests: a copy of the tiny world's event store and pipeline bundles fitted on it, one
    folder per name in `bundles` (name → ranker trees)."""
    import shutil

    from streamrec.features import events_relation
    from streamrec.pipeline.bundle import fit_bundle
    from streamrec.settings import DuckDBEventStoreConfig, PipelineConfig, RankerConfig
    from streamrec.storage.events.duckdb import DuckDBEventStore

    shutil.copy(tiny_world_store, root / "events.duckdb")
    with DuckDBEventStore(DuckDBEventStoreConfig(), root / "events.duckdb", read_only=True) as store:
        con = store.con
        table = con.sql("SELECT user_id, item_id, weight, last_ts FROM interactions").to_arrow_table()
        for name, trees in bundles.items():
            fit_bundle(con, table, events_relation(con), PipelineConfig(ranker=RankerConfig(n_estimators=trees))).save(
                root / name)


def most_active_users(db: Path, limit: int) -> list[str]:
    """The `limit` users with the most interactions in the event store at `db` (ties by id)."""
    from streamrec.settings import DuckDBEventStoreConfig
    from streamrec.storage.events.duckdb import DuckDBEventStore

    with DuckDBEventStore(DuckDBEventStoreConfig(), db, read_only=True) as store:
        return [r[0] for r in store.con.execute("SELECT user_id FROM interactions GROUP BY 1 ORDER BY count(*) DESC, 1 "
                                                "LIMIT ?", [limit]).fetchall()]


def users_and_regions(db: Path) -> tuple[list[str], dict[str, str]]:
    """Every user with interactions (sorted) and every profile's region, from the event store at `db`."""
    from streamrec.settings import DuckDBEventStoreConfig
    from streamrec.storage.events.duckdb import DuckDBEventStore

    with DuckDBEventStore(DuckDBEventStoreConfig(), db, read_only=True) as store:
        con = store.con
        users = [r[0] for r in con.execute("SELECT user_id FROM interactions GROUP BY 1 ORDER BY 1").fetchall()]
        return users, dict(con.execute("SELECT user_id, region FROM users").fetchall())


@contextlib.contextmanager
def tmpfs(folder: Path, mib: int) -> Iterator[bool]:
    """A tmpfs of `mib` MiB mounted on `folder`; yields False (and mounts nothing) where this process may not mount."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mib}m", "tmpfs", str(folder)],
                                                   capture_output=True, check=False).returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], check=True)


def wait_until(check, timeout_s: float = 10.0, what: str = "") -> float:
    """Seconds until `check()` is true (polled every 10 ms); AssertionError naming `what` after `timeout_s`."""
    began = time.monotonic()
    while time.monotonic() - began < timeout_s:
        if check():
            return time.monotonic() - began
        time.sleep(0.01)
    raise AssertionError(f"not within {timeout_s} s: {what}")
