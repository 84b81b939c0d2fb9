"""Kill -9 a real ingestion process at random moments, many times: nothing lost, nothing stored twice.

After every kill the store must hold only whole batches (events and quarantine rows add up to what the
manifest says, no event_id twice). At the end, after one uninterrupted run, the counts are exact.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv

FILES, ROWS = 5, 20_000
KILLS = 25


def make_files(folder: Path) -> tuple[set[str], int]:
    """Event files with overlapping ids across files and some invalid rows; returns (valid ids, invalid rows)."""
    rng = random.Random(11)
    valid_ids: set[str] = set()
    invalid = 0
    for f in range(FILES):
        ids, types, ts = [], [], []
        for i in range(ROWS):
            overlap = rng.random() < 0.1  # an id that another file also carries
            event_id = f"e{rng.randrange(5_000)}" if overlap else f"f{f}-{i}"
            bad = rng.random() < 0.02
            ids.append(event_id)
            types.append("nonsense" if bad else "play")
            ts.append("2024-05-01T10:00:00Z")
        # A bad row's id may equal a valid row's id elsewhere; quarantine is per row, dedup per valid id.
        for event_id, kind in zip(ids, types):
            if kind == "play":
                valid_ids.add(event_id)
            else:
                invalid += 1
        table = pa.table({"event_id": ids, "user_id": [f"u{i % 97}" for i in range(ROWS)],
                          "item_id": [f"t{i % 311}" for i in range(ROWS)], "type": types, "ts": ts})
        pacsv.write_csv(table, folder / f"part-{f:02d}.csv")
    return valid_ids, invalid


def check_whole_batches(db: Path) -> int:
    """The store holds whole batches only; returns the number of batches."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        if "events" not in tables:  # killed before the store's first transaction: an empty store
            assert not tables, f"a store with only some tables: {sorted(tables)}"
            return 0
        (events, distinct), = con.execute("SELECT count(*), count(DISTINCT event_id) FROM events").fetchall()
        (quarantine,), = con.execute("SELECT count(*) FROM quarantine").fetchall()
        (batches, stored, quarantined), = con.execute(
            "SELECT count(*), coalesce(sum(stored), 0), coalesce(sum(quarantined), 0) FROM batches").fetchall()
        (orphans,), = con.execute(
            "SELECT count(*) FROM events WHERE batch_id NOT IN (SELECT batch_id FROM batches)").fetchall()
    finally:
        con.close()
    assert events == distinct, "an event was stored twice"
    assert events == stored and quarantine == quarantined, "a batch was written partially"
    assert orphans == 0
    return batches


def kill_runs(tmp_path: Path, kills: int, seed: int = 5) -> dict:
    """`kills` runs of `streamrec ingest` killed with SIGKILL at random moments (the store checked after each), then
    one uninterrupted run whose counts must be exact. Returns the counts (bench/reliability.py records them)."""
    files_dir = tmp_path / "in"
    files_dir.mkdir()
    valid_ids, invalid = make_files(files_dir)
    data_dir = tmp_path / "data"
    db = data_dir / "events.duckdb"
    cmd = [sys.executable, "-m", "streamrec", "--data-dir", str(data_dir), "ingest", str(files_dir)]
    env = {**os.environ, "STREAMREC_INGEST__UNKNOWN_TITLES": "accept"}

    # How long an uninterrupted run takes, so kills land anywhere inside one.
    started = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    full_run = time.perf_counter() - started
    db.unlink()

    rng = random.Random(seed)
    killed = checked = partial_stores = 0
    while killed < kills:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.05, full_run))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait()
        batches = check_whole_batches(db) if db.exists() else 0
        checked += 1
        partial_stores += 0 < batches < FILES
        if batches == FILES:
            db.unlink()  # everything landed before the kill: start over so later kills hit batches again
            Path(str(db) + ".wal").unlink(missing_ok=True)

    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert check_whole_batches(db) == FILES
    con = duckdb.connect(str(db), read_only=True)
    stored_ids = [r[0] for r in con.execute("SELECT event_id FROM events").fetchall()]
    (quarantined,), = con.execute("SELECT count(*) FROM quarantine").fetchall()
    con.close()
    lost, extra = valid_ids - set(stored_ids), set(stored_ids) - valid_ids
    assert not lost and not extra and len(stored_ids) == len(set(stored_ids))
    assert quarantined == invalid
    return {"kills": killed, "stores_checked": checked, "stores_with_some_batches": partial_stores,
            "full_run_s": round(full_run, 2), "valid_events": len(valid_ids), "stored": len(stored_ids),
            "lost": len(lost), "stored_twice": len(stored_ids) - len(set(stored_ids)), "quarantined": quarantined,
            "invalid_rows": invalid}


def test_sigkill_during_ingestion_loses_and_duplicates_nothing(tmp_path: Path):
    counts = kill_runs(tmp_path, KILLS)
    assert counts["kills"] == KILLS and counts["lost"] == 0 and counts["stored_twice"] == 0
