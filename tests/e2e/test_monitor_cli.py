"""`streamrec monitor` on a store filled by `streamrec ingest` and snapshots from `streamrec features build`:
exit 0 when quiet, 1 when a data-quality, drift or online alert fires, 2 on an error."""

from __future__ import annotations

import json

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from tests.helpers import event, write_csv
from typer.testing import CliRunner

from streamrec.cli.app import app
from streamrec.errors import ConfigError

runner = CliRunner()
COLUMNS = ["event_id", "user_id", "item_id", "type", "ts", "fraction"]


def day_rows(prefix: str, day: int, n: int = 300) -> list[dict]:
    """n events within one day (so none is late): plays and completes of 40 users on 30 titles."""
    rows = []
    for i in range(n):
        kind = "complete" if i % 3 == 0 else "play"
        rows.append(event(f"{prefix}{i}", user_id=f"u{(i * 7) % 40}", item_id=f"t{(i * 11) % 30}", type=kind,
                          ts=f"2026-01-{day:02d}T{i % 20:02d}:{i % 60:02d}:00Z",
                          fraction=0.5 + (i % 5) / 10 if kind == "complete" else None))
    return rows


def cli(data_dir, *args):
    return runner.invoke(app, ["--data-dir", str(data_dir), *map(str, args)])


@pytest.fixture
def data_dir(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    for day in (1, 2):
        path = write_csv(tmp_path / f"day{day}.csv", day_rows(f"d{day}-", day), columns=COLUMNS)
        result = cli(root, "ingest", path)
        assert result.exit_code == 0, result.output
    result = cli(root, "features", "build", "--out", root / "reference")
    assert result.exit_code == 0, result.output
    result = cli(root, "features", "build")  # the current snapshot, in DATA_DIR/features
    assert result.exit_code == 0, result.output
    return root


def test_quiet_store_and_unchanged_features_exit_0(data_dir):
    result = cli(data_dir, "monitor", "--reference", data_dir / "reference", "--json")
    assert result.exit_code == 0, result.output
    assert "data quality: latest ingestion batches" in result.output and "drift:" in result.output
    assert "no alerts" in result.output
    row = next(line for line in result.output.splitlines() if "user.user_plays_28d" in line)
    assert "0.000" in row and "ok" in row  # the feature was compared, not skipped
    assert json.loads(result.output[result.output.rindex("\n[") + 1:]) == []


def test_a_rejection_spike_exits_1(data_dir, tmp_path):
    bad = [event(f"bad{i}", type="watch", ts="2026-01-03T10:00:00Z") for i in range(50)]
    path = write_csv(tmp_path / "day3.csv", day_rows("d3-", 3, n=250) + bad, columns=COLUMNS)
    assert cli(data_dir, "ingest", path).exit_code == 0
    result = cli(data_dir, "monitor", "--json")
    assert result.exit_code == 1, result.output
    assert "rejection_rate" in result.output and "bad_enum 50" in result.output
    assert "drift: not checked" in result.output
    alerts = json.loads(result.output[result.output.rindex("\n[") + 1:])
    assert [(a["kind"], a["severity"]) for a in alerts] == [("rejection_rate", "alert")]
    assert cli(data_dir, "monitor", "--batches", 1).exit_code == 1  # the latest batch alone is the spike
    relaxed = tmp_path / "relaxed.toml"
    relaxed.write_text("[quality]\nmax_rejection_rate = 0.25\n")
    assert cli(data_dir, "monitor", "--thresholds", relaxed).exit_code == 0


def test_drifted_features_exit_1(data_dir):
    current = data_dir / "features" / "users.parquet"
    table = pq.read_table(current)
    index = table.column_names.index("user_plays_28d")
    table = table.set_column(index, "user_plays_28d", pc.multiply(table.column("user_plays_28d"), 10))
    pq.write_table(table, current)
    result = cli(data_dir, "monitor", "--reference", data_dir / "reference", "--current", data_dir / "features",
                 "--json")
    assert result.exit_code == 1, result.output
    alerts = json.loads(result.output[result.output.rindex("\n[") + 1:])
    assert {(a["kind"], a["name"]) for a in alerts if a["severity"] == "alert"} == {
        ("psi", "user.user_plays_28d"), ("ks", "user.user_plays_28d")}


def test_bad_invocations_are_clear_errors(data_dir, tmp_path):
    result = cli(data_dir, "monitor", "--current", data_dir / "features")
    assert isinstance(result.exception, ConfigError)
    empty = tmp_path / "nothing"
    empty.mkdir()
    result = cli(empty, "monitor")
    assert isinstance(result.exception, ConfigError) and "streamrec ingest" in str(result.exception)


def served_lists(data_dir, day: int, shift: float, n: int = 200, version: str = "5") -> None:
    """n lists of 10 titles served on 2026-01-DAY by model `version`, scores drawn around `shift`."""
    from datetime import datetime, timedelta

    import numpy as np

    from streamrec.monitoring.served import ServedLog, served_folder

    rng = np.random.default_rng(day)
    log = ServedLog(served_folder(data_dir))
    for j in range(n):
        log.record(datetime(2026, 1, day, 8) + timedelta(seconds=j), f"r{day}-{j}", "list", version, None, "default",
                   None, [f"t{(j + i) % 30}" for i in range(10)], np.sort(rng.normal(shift, 1.0, 10))[::-1].tolist())
    log.close()


def test_the_training_reference_is_found_and_served_scores_compared(data_dir):
    import duckdb
    import numpy as np
    import pyarrow as pa

    from streamrec.monitoring.reference import save_reference

    rng = np.random.default_rng(0)
    scores = pa.table({"user_id": [f"u{i // 10}" for i in range(4000)], "rank": [i % 10 + 1 for i in range(4000)],
                       "score": np.sort(rng.normal(0.0, 1.0, (400, 10)))[:, ::-1].ravel()})
    with duckdb.connect(str(data_dir / "events.duckdb"), read_only=True) as con:
        save_reference(data_dir, data_dir / "models" / "ease-1", "ease", scores, version=5, con=con)
    served_lists(data_dir, 10, shift=0.0)
    result = cli(data_dir, "monitor", "--json")
    assert result.exit_code == 0, result.output
    assert "reference: ease ease-1 (registry version 5)" in result.output
    assert "score drift: training-time reference" in result.output and "drift: reference" in result.output
    assert "what was recommended per day" in result.output and "2026-01-10" in result.output
    served_lists(data_dir, 14, shift=1.5)  # the model's scores move up: its inputs changed
    result = cli(data_dir, "monitor", "--days", 1, "--json")
    assert result.exit_code == 1, result.output
    alerts = json.loads(result.output[result.output.rindex("\n[") + 1:])
    assert {(a["kind"], a["name"]) for a in alerts if a["severity"] == "alert"} == {("psi", "score"), ("ks", "score")}
    served_lists(data_dir, 15, shift=0.0, version="6")  # another model served lately: its scores are not compared
    result = cli(data_dir, "monitor", "--days", 0.5)
    assert result.exit_code == 0, result.output
    assert "score drift: not checked (the reference is of ease-1, the lists served lately came from 6)" in \
        result.output.replace("\n", " ").replace("  ", " ")
