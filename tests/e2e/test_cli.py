"""The `streamrec` command: help on every verb, clear errors, and the stages end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from streamrec.cli.app import app
from tests.helpers import event, write_csv

runner = CliRunner()


def all_command_paths() -> list[list[str]]:
    root = typer.main.get_command(app)
    paths: list[list[str]] = []

    def walk(command, prefix: list[str]) -> None:
        paths.append(prefix)
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(sub, prefix + [name])

    walk(root, [])
    return paths


@pytest.mark.parametrize("path", all_command_paths(), ids=lambda p: " ".join(p) or "streamrec")
def test_every_verb_has_help(path):
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_expected_verbs_exist():
    names = {" ".join(p) for p in all_command_paths()}
    assert {"ingest", "preprocess", "demo", "data generate", "store stats", "store quarantine", "store export",
            "features build", "features show", "features list", "candidates", "pipeline", "serve", "worker"} <= names


def streamrec(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streamrec", *args], cwd=cwd, capture_output=True, text=True)


def test_domain_errors_are_one_clear_line_without_traceback(tmp_path):
    result = streamrec("--data-dir", str(tmp_path), "ingest", str(tmp_path / "missing.csv"), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "missing.csv' not found" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_bad_settings_file_is_a_clear_error(tmp_path):
    (tmp_path / "streamrec.toml").write_text('[ingest]\nunknown_titles = "sometimes"\n')
    result = streamrec("store", "stats", cwd=tmp_path)
    assert result.returncode == 2 and "ingest.unknown_titles" in result.stderr


def test_ingest_store_and_export_through_the_cli(tmp_path):
    path = write_csv(tmp_path / "events.csv", [event("e1"), event("e2", type="nope"), event("e1")])
    data = ["--data-dir", str(tmp_path / "data")]
    result = runner.invoke(app, [*data, "ingest", str(path), "--unknown-titles", "accept"])
    assert result.exit_code == 0, result.output
    assert "events stored" in result.output and "bad_enum" in result.output
    stats = runner.invoke(app, [*data, "store", "stats"])
    assert stats.exit_code == 0 and "events" in stats.output
    quarantine = runner.invoke(app, [*data, "store", "quarantine"])
    assert "bad_enum" in quarantine.output and "unknown event type" in quarantine.output
    export = runner.invoke(app, [*data, "store", "export", "--out", str(tmp_path / "pq")])
    assert export.exit_code == 0 and any((tmp_path / "pq").iterdir())


def test_demo_runs_end_to_end(tmp_path, monkeypatch):
    import uvicorn

    served: dict = {}
    monkeypatch.setattr(uvicorn, "run", lambda target, **kwargs: served.update(target=target, **kwargs))
    result = runner.invoke(app, ["--data-dir", str(tmp_path), "demo", "--size", "tiny"])
    assert result.exit_code == 0, result.output
    assert served["host"] == "127.0.0.1" and served["target"].state.serving.holder.current.kind == "pipeline"
    assert "curl -s 'http://127.0.0.1:8000/v1/users/" in result.output
    for text in ("events stored", "quarantined: bad_enum", "files skipped by checksum", "interactions out",
                 "features build", "model comparison", "champion: ", "ranked pipeline vs best single source",
                 "registered the pipeline as version", "one request through the registered pipeline", "ranker ms",
                 "a live event: the worker beside the API", "live → the next list", "is gone", "a simulated A/B",
                 "simulated viewers", "experiment demo-ab", "sample ratio check", "decision: ", "10. monitor",
                 "score drift: training-time reference", "play rate of served lists per variant",
                 "concentration and catalog", "monitor` would exit"):
        assert text in result.output
    assert "STILL listed" not in result.output


def test_candidates_refuses_a_malformed_quota(tmp_path):
    from streamrec.errors import ConfigError

    result = runner.invoke(app, ["--data-dir", str(tmp_path), "candidates", "--quota", "ease=0"])
    assert isinstance(result.exception, ConfigError) and "SOURCE=N with N ≥ 1" in str(result.exception)
