"""`train_pipeline` registers the ranked pipeline like any model, with its HTML report (stages, recall, feature
importance); `streamrec rank USER` serves one request from the registered champion, explained."""

from __future__ import annotations

import shutil

import pyarrow.parquet as pq

from typer.testing import CliRunner

from streamrec.cli.app import app
from streamrec.errors import ConfigError
from streamrec.features import events_relation
from streamrec.pipeline.train import train_pipeline
from streamrec.registry import open_registry
from streamrec.settings import DuckDBEventStoreConfig, load_settings
from streamrec.storage.events.duckdb import DuckDBEventStore

runner = CliRunner()


def test_pipeline_is_registered_reported_and_served(tiny_world_store, tmp_path):
    shutil.copy(tiny_world_store, tmp_path / "events.duckdb")
    settings = load_settings(data_dir=tmp_path, pipeline={"ranker": {"n_estimators": 20}})
    with DuckDBEventStore(DuckDBEventStoreConfig(), tmp_path / "events.duckdb") as store:
        table = store.con.sql("SELECT user_id, item_id, weight, last_ts FROM interactions").to_arrow_table()
        user = table.column("user_id")[0].as_py()
        out = train_pipeline(store.con, table, settings, events_relation(store.con))
    assert out.version == 1 and out.promoted and out.bundle_dir.is_dir()
    from streamrec.monitoring.reference import find_reference, read_scores

    reference = find_reference(tmp_path, "1")  # for monitoring: the ranker's top-10 scores and the features
    assert reference.kind == "pipeline" and reference.model == out.bundle_dir.name and reference.features
    assert read_scores(reference).size == reference.scores > 0
    assert (reference.path / "users.parquet").exists() and (reference.path / "titles.parquet").exists()
    served_lists_match_the_reference(settings, table)
    page = out.html.read_text()
    for text in ("Stage by stage", "ranked pipeline", "Candidate recall", "feature importance", "data:image/png"):
        assert text in page
    champion = open_registry(settings).show("champion")
    assert champion.metrics["ndcg_at_10"] == out.report.ndcg["ranked pipeline"]
    assert champion.params["model"] == "pipeline"

    result = runner.invoke(app, ["--data-dir", str(tmp_path), "rank", user, "--k", "5"])
    assert result.exit_code == 0, result.output
    assert "ranked pipeline for" in result.output and "1. t" in result.output and "from " in result.output
    assert "none (ranked)" in result.output

    # batch top-k from the pipeline champion: each user answered as serving (and `rank`) answers them
    users = tmp_path / "users.txt"
    users.write_text(f"{user}\nnobody-knows-me\n")
    out_file = tmp_path / "recs.parquet"
    batch = runner.invoke(app, ["--data-dir", str(tmp_path), "recommend", "--users", str(users), "--k", "5",
                                "--out", str(out_file)])
    assert batch.exit_code == 0, batch.output
    recs = pq.read_table(out_file).to_pylist()
    mine = [r for r in recs if r["user_id"] == user]
    assert [r["rank"] for r in mine] == [1, 2, 3, 4, 5] and all(r["source"] for r in mine)
    ranked = [line.split("1. ", 1)[1].split()[0] for line in result.output.splitlines() if "1. t" in line]
    assert mine[0]["item_id"] == ranked[0]
    stranger = [r for r in recs if r["user_id"] == "nobody-knows-me"]
    assert len(stranger) == 5 and {r["source"] for r in stranger} == {"popular"}


def test_rank_refuses_a_single_model_clearly(tiny_world_store, tmp_path):
    shutil.copy(tiny_world_store, tmp_path / "events.duckdb")
    trained = runner.invoke(app, ["--data-dir", str(tmp_path), "train", "--models", "popularity"])
    assert trained.exit_code == 0, trained.output
    result = runner.invoke(app, ["--data-dir", str(tmp_path), "rank", "u1"])
    assert isinstance(result.exception, ConfigError)
    assert "single model, not a ranked pipeline" in str(result.exception)


def test_impression_negatives_join_the_rankers_training_when_asked(tiny_world_store, tmp_path):
    shutil.copy(tiny_world_store, tmp_path / "events.duckdb")
    settings = load_settings(data_dir=tmp_path, pipeline={"ranker": {"n_estimators": 20}, "impression_negatives": True})
    with DuckDBEventStore(DuckDBEventStoreConfig(), tmp_path / "events.duckdb") as store:
        table = store.con.sql("SELECT user_id, item_id, weight, last_ts FROM interactions").to_arrow_table()
        out = train_pipeline(store.con, table, settings, events_relation(store.con), register=False)
    assert out.report.counts["ranker_impression_negatives"] > 0 and out.version is None


def served_lists_match_the_reference(settings, table) -> None:
    """Lists served over HTTP by the registered champion land in the served-lists log, and `streamrec monitor`'s
    checks compare their scores with the training-time reference: same model, same data, no drift."""
    from fastapi.testclient import TestClient

    from streamrec.monitoring.run import monitoring_report as run
    from streamrec.serving import create_app

    settings = settings.model_copy(update={"serving": settings.serving.model_copy(update={"clock": "data"})})
    users = sorted(set(table.column("user_id").to_pylist()))[:150]
    with TestClient(create_app(settings)) as client:  # its shutdown writes the log
        for user in users:
            assert client.get(f"/v1/users/{user}/recommendations?k=10").status_code == 200
    report = run(settings)
    assert report.reference.startswith("pipeline ") and report.scores is not None
    assert report.scores.n_current > 500 and report.scores.psi < 0.2
    assert not [a for a in report.alerts if a.name == "score"], report.alerts
    assert report.concentration and report.concentration[-1].lists == len(users)
