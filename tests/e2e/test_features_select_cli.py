"""`streamrec features select` on a real tiny world, then `streamrec pipeline --features` with what it wrote."""

from __future__ import annotations

import json
import shutil

from typer.testing import CliRunner

from streamrec.cli.app import app
from streamrec.errors import NotFound
from streamrec.features.selection import load_selection
from streamrec.features.templates import candidates

runner = CliRunner()


def test_select_help_names_the_options_and_list_shows_the_candidates():
    result = runner.invoke(app, ["features", "select", "--help"])
    assert result.exit_code == 0, result.output
    for option in ("--out", "--max-tries", "--max-selected", "--tolerance"):
        assert option in result.output
    assert "--features" in runner.invoke(app, ["pipeline", "--help"]).output
    listed = runner.invoke(app, ["features", "list", "--candidates"])
    assert listed.exit_code == 0 and "user_add_to_list_count_7d" in listed.output
    assert "user_plays_7d" not in listed.output and "user_plays_7d" in runner.invoke(app, ["features", "list"]).output


def test_select_writes_the_set_and_the_pipeline_uses_it(tiny_world_store, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(tiny_world_store, data / "events.duckdb")
    result = runner.invoke(app, ["--data-dir", str(data), "features", "select", "--max-tries", "2"])
    assert result.exit_code == 0, result.output
    for text in ("feature selection: candidates tried", "validation NDCG@10, built-in features",
                 "test period (not read) from", "candidates generated"):
        assert text in result.output
    path = data / "features" / "selected.json"
    doc = json.loads(path.read_text())
    assert len(doc["report"]["steps"]) == 2 and len(doc["report"]["candidates"]) > 30
    selected = load_selection(path)
    assert [f.name for f in selected] == doc["report"]["selected"]
    # the pipeline with at least one generated feature (the first one tried, whatever selection kept)
    extra = doc["report"]["steps"][0]["name"]
    chosen = next(f for f in candidates() if f.name == extra)
    (tmp_path / "one.json").write_text(json.dumps({"features": [chosen.model_dump(mode="json")]}))
    result = runner.invoke(app, ["--data-dir", str(data), "pipeline", "--features", str(tmp_path / "one.json")])
    assert result.exit_code == 0, result.output
    assert f"built-in + 1 from {tmp_path / 'one.json'}" in result.output.replace("\n", "")
    assert "ranked pipeline vs best single source" in result.output
    missing = runner.invoke(app, ["--data-dir", str(data), "pipeline", "--features", str(tmp_path / "nope.json")])
    assert isinstance(missing.exception, NotFound)
