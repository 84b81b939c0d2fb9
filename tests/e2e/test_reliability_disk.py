"""A full disk under the event store, for real: `streamrec ingest` on a small tmpfs filled up (where this process may
mount one; a file-size limit on the ingesting process otherwise, and always as a second fault). The failing batch is
a clear one-line error (exit 2, no traceback), the store keeps exactly what it held, and once there is room again the
same files are stored exactly once."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
from tests.e2e.test_crash_ingest import check_whole_batches
from tests.helpers import tmpfs

SMALL, BIG = 2_000, 150_000
ENV = {**os.environ, "STREAMREC_INGEST__UNKNOWN_TITLES": "accept", "STREAMREC_EVENT_STORE__THREADS": "1"}


def event_file(path: Path, prefix: str, rows: int, bad_every: int = 0) -> tuple[Path, int]:
    """`rows` play events (every `bad_every`-th one of an unknown type); returns the path and the valid count."""
    types = ["nonsense" if bad_every and i % bad_every == 0 else "play" for i in range(rows)]
    pacsv.write_csv(pa.table({"event_id": [f"{prefix}{i}" for i in range(rows)],
                              "user_id": [f"u{i % 97}" for i in range(rows)], "item_id": [f"t{i % 311}" for i in range(rows)],
                              "type": types, "ts": ["2024-05-01T10:00:00Z"] * rows}), path)
    return path, types.count("play")


def ingest(data: Path, *files: Path, max_file_bytes: int | None = None) -> subprocess.CompletedProcess:
    """`streamrec ingest` in its own process; with `max_file_bytes`, no file it writes may grow past that (RLIMIT_FSIZE,
    SIGXFSZ ignored: the write fails with EFBIG, as a full disk fails it with ENOSPC)."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))

    return subprocess.run([sys.executable, "-m", "streamrec", "--data-dir", str(data), "--log-level", "warning",
                           "ingest", *map(str, files)], env=ENV, capture_output=True, text=True, timeout=300, check=False,
                          preexec_fn=limit if max_file_bytes else None)


def stored(db: Path) -> tuple[int, int, int]:
    """(events, quarantine rows, batches) of the store, after checking it holds whole batches only."""
    check_whole_batches(db)
    con = duckdb.connect(str(db), read_only=True)
    try:
        return tuple(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("events", "quarantine", "batches"))
    finally:
        con.close()


def full_disk_trial(root: Path, fault: str) -> dict:
    """Fill the disk under a store holding one batch (fault "tmpfs": a 24 MiB tmpfs with a filler file; "fsize": a
    file-size limit just over the store's size), ingest a big file, check, make room, ingest again. Returns what was
    seen (bench/reliability.py records it)."""
    inputs = root / "in"
    inputs.mkdir(parents=True, exist_ok=True)
    small, small_valid = event_file(inputs / "small.csv", "s", SMALL)
    big, big_valid = event_file(inputs / "big.csv", "b", BIG, bad_every=50)
    with tmpfs(root / "disk", 24) as mounted:
        if fault == "tmpfs" and not mounted:
            fault = "fsize"  # no mount allowed here: the same fault through the file-size limit
        data = root / "disk" / "data"
        first = ingest(data, small)
        assert first.returncode == 0, first.stderr[-2000:]
        db = data / "events.duckdb"
        before = stored(db)
        assert before == (small_valid, 0, 1)
        filler = root / "disk" / "filler"
        if fault == "tmpfs":
            free = os.statvfs(db.parent).f_bavail * os.statvfs(db.parent).f_frsize
            with open(filler, "wb") as out:  # leave 256 KiB: the big batch needs megabytes
                out.truncate(0)
                out.write(b"\0" * max(free - 256 * 1024, 0))
            failed = ingest(data, big)
        else:
            failed = ingest(data, big, max_file_bytes=db.stat().st_size + 256 * 1024)
        message = failed.stderr.strip()
        assert failed.returncode == 2, (failed.returncode, message[-3000:])
        assert "Traceback" not in message and message.startswith("error:"), message[-3000:]
        assert ("No space left on device" if fault == "tmpfs" else "File too large") in message, message
        assert "nothing from" in message and str(big) in message.replace("\n", ""), message
        after_fault = stored(db)
        assert after_fault == before, "the failed batch changed the store"
        filler.unlink(missing_ok=True)
        again = ingest(data, small, big)
        assert again.returncode == 0, again.stderr[-2000:]
        final = stored(db)
        assert final == (small_valid + big_valid, BIG - big_valid, 2), final
    return {"fault": fault, "error": " ".join(message.split())[:300], "store_before": before,
            "store_after_fault": after_fault, "store_after_retry": final, "exit_code": failed.returncode}


def test_a_full_tmpfs_under_the_event_store_is_a_clear_error_and_the_store_stays_whole(tmp_path):
    full_disk_trial(tmp_path, "tmpfs")


def test_a_file_size_limit_hit_mid_batch_is_a_clear_error_and_the_store_stays_whole(tmp_path):
    full_disk_trial(tmp_path, "fsize")
