"""`train`, `evaluate` and `recommend` through the CLI, on the event store and on a plain CSV."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from streamrec.cli.app import app

runner = CliRunner()


def planted_csv(path: Path, users: int = 60, items: int = 40, seed: int = 0) -> Path:
    """Two taste groups: users of group g rate items of group g; a timestamp per row."""
    rng = np.random.default_rng(seed)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["uid", "iid", "stars", "when"])
        for u in range(users):
            group = u % 2
            liked = [i for i in range(items) if i % 2 == group]
            for i in rng.choice(liked, size=8, replace=False):
                writer.writerow([f"u{u}", f"i{i}", int(rng.integers(3, 6)), 1_700_000_000 + int(rng.integers(0, 10**6))])
    return path


CSV_COLS = ["--user-col", "uid", "--item-col", "iid", "--rating-col", "stars", "--ts-col", "when"]


def test_train_on_a_csv_registers_a_champion_and_recommend_uses_it(tmp_path):
    data = planted_csv(tmp_path / "ratings.csv")
    base = ["--data-dir", str(tmp_path / "d")]
    result = runner.invoke(app, [*base, "train", "--csv", str(data), *CSV_COLS, "--models", "popularity,ease",
                                 "--split", "stratified"])
    assert result.exit_code == 0, result.output
    assert "model comparison" in result.output and "first champion" in result.output
    from streamrec.monitoring.reference import find_reference, read_scores

    reference = find_reference(tmp_path / "d", "1")  # saved for monitoring: the model's top-10 scores, no store
    assert reference is not None and reference.version == "1" and not reference.features
    scores = read_scores(reference)
    assert scores.size == reference.scores == 600 and np.isfinite(scores).all()
    out = tmp_path / "recs.parquet"
    rec = runner.invoke(app, [*base, "recommend", "--csv", str(data), *CSV_COLS, "--out", str(out), "--k", "5"])
    assert rec.exit_code == 0, rec.output
    table = pq.read_table(out).to_pandas()
    assert table.groupby("user_id").size().eq(5).all() and table.user_id.nunique() == 60
    # seen items are excluded, and the planted taste shows: recommended items match the user's group
    seen = {(r.uid, r.iid) for r in __import__("pandas").read_csv(data).itertuples()}
    assert not any((r.user_id, r.item_id) for r in table.itertuples() if (r.user_id, r.item_id) in seen)
    same_group = [int(r.user_id[1:]) % 2 == int(r.item_id[1:]) % 2 for r in table.itertuples()]
    assert np.mean(same_group) > 0.9


def test_recommend_for_listed_and_unknown_users_falls_back_to_popular(tmp_path):
    data = planted_csv(tmp_path / "ratings.csv")
    base = ["--data-dir", str(tmp_path / "d")]
    assert runner.invoke(app, [*base, "train", "--csv", str(data), *CSV_COLS, "--models", "ease", "--split",
                               "stratified", "--no-register"]).exit_code == 0
    folder = next(p for p in (tmp_path / "d" / "models").glob("ease-*") if p.is_dir())
    users = tmp_path / "users.txt"
    users.write_text("u1\nnewcomer\n")
    out = tmp_path / "recs.csv"
    rec = runner.invoke(app, [*base, "recommend", "--csv", str(data), *CSV_COLS, "--users", str(users),
                              "--model", str(folder), "--out", str(out)])
    assert rec.exit_code == 0, rec.output
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["source"] for r in rows if r["user_id"] == "newcomer"} == {"popular"}
    assert {r["source"] for r in rows if r["user_id"] == "u1"} == {"model"}


def test_evaluate_writes_an_html_report(tmp_path):
    data = planted_csv(tmp_path / "ratings.csv")
    report = tmp_path / "report.html"
    result = runner.invoke(app, ["--data-dir", str(tmp_path / "d"), "evaluate", "--csv", str(data), *CSV_COLS,
                                 "--models", "popularity,item_knn", "--split", "stratified", "--report", str(report)])
    assert result.exit_code == 0, result.output
    html = report.read_text()
    assert "item_knn" in html and "data:image/png;base64" in html


@pytest.mark.parametrize(
    "args, message",
    [
        (["--models", "nope"], "unknown model(s) ['nope']"),
        (["--user-col", "user"], "missing column(s) ['user']"),
    ],
)
def test_bad_input_is_a_clear_error(tmp_path, args, message):
    data = planted_csv(tmp_path / "ratings.csv")
    cols = dict(zip(CSV_COLS[::2], CSV_COLS[1::2]))
    cols.update(dict(zip(args[::2], args[1::2])))
    flat = [x for kv in cols.items() for x in kv if kv[0] != "--models"]
    extra = ["--models", cols["--models"]] if "--models" in cols else []
    result = runner.invoke(app, ["--data-dir", str(tmp_path / "d"), "train", "--csv", str(data), *flat, *extra,
                                 "--split", "stratified", "--no-register"])
    assert result.exit_code != 0
    assert message in str(result.exception)


def test_train_without_data_says_what_to_run(tmp_path):
    result = runner.invoke(app, ["--data-dir", str(tmp_path), "train"])
    assert result.exit_code != 0 and "streamrec ingest" in str(result.exception)
