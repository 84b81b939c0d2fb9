"""`streamrec models list|show|promote|rollback|download` on a real MLflow sqlite store under --data-dir."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from streamrec.cli.app import app
from streamrec.errors import ChecksumError, NotFound
from streamrec.registry import Registry
from streamrec.settings import RegistryConfig

runner = CliRunner()


def write_saved_model(folder: Path, weight: float) -> Path:
    """The three files `Recommender.save` writes, written directly."""
    folder.mkdir(parents=True)
    np.savez(folder / "arrays.npz", weights_=np.full(3, weight, dtype=np.float32), item_ids_=np.array(["a", "b", "c"]))
    (folder / "config.json").write_text(json.dumps({"model": "popularity", "config": {"half_life_days": weight}}))
    (folder / "checksums.json").write_text("{}")
    return folder


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """A data dir whose registry holds v1 and v2 (one migrated sqlite store for the module)."""
    data_dir = tmp_path_factory.mktemp("data")
    registry = Registry(RegistryConfig(), data_dir)
    for version, weight in ((1, 7.0), (2, 30.0)):
        run = registry.log_training_run(write_saved_model(data_dir.parent / f"model{version}", weight),
                                        data_snapshot=f"ix-{version:016d}", metrics={"NDCG@10": weight / 100})
        assert registry.register(run.run_id) == version
    return data_dir


def models(data_dir: Path, *args: str):
    # wide enough that Rich does not wrap table cells (it falls back to 80 columns without a terminal)
    return runner.invoke(app, ["--data-dir", str(data_dir), "models", *args], env={"COLUMNS": "200"})


def test_promote_show_rollback_list_and_download_through_the_cli(data_dir, tmp_path):
    listed = models(data_dir, "list")
    assert listed.exit_code == 0, listed.output
    assert "v2" in listed.output and "v1" in listed.output and "popularity" in listed.output

    first = models(data_dir, "promote", "1")
    assert first.exit_code == 0, first.output
    assert "champion" in first.output and "v1" in first.output
    second = models(data_dir, "promote", "v2")
    assert second.exit_code == 0, second.output
    assert "previous champion" in second.output
    again = models(data_dir, "promote", "champion")
    assert again.exit_code == 0 and "already the champion" in again.output

    shown = models(data_dir, "show", "champion")
    assert shown.exit_code == 0, shown.output
    for expected in ("v2", "ix-0000000000000002", "NDCG_at_10", "0.3", "half_life_days", "sha256 arrays.npz",
                     "code version"):
        assert expected in shown.output, expected

    back = models(data_dir, "rollback")
    assert back.exit_code == 0, back.output
    assert "rolled back" in back.output
    registry = Registry(RegistryConfig(), data_dir)
    assert (registry.resolve("champion"), registry.resolve("challenger")) == (1, 2)
    listed = models(data_dir, "list")
    assert "champion" in listed.output and "challenger" in listed.output

    out = tmp_path / "champion"
    fetched = models(data_dir, "download", "champion", "--out", str(out))
    assert fetched.exit_code == 0, fetched.output
    assert "files verified" in fetched.output
    assert np.load(out / "arrays.npz")["weights_"][0] == 7.0


def test_unknown_alias_is_a_domain_error(data_dir):
    result = models(data_dir, "show", "staging")
    assert result.exit_code != 0
    assert isinstance(result.exception, NotFound) and "@staging' not found" in str(result.exception)


def test_tampered_model_fails_the_download(data_dir, tmp_path):
    registry = Registry(RegistryConfig(), data_dir)
    info = registry.show(1)
    stored = Path(info.source.removeprefix("file://")) / "config.json"
    original = stored.read_bytes()
    stored.write_bytes(original.replace(b"7.0", b"8.0"))
    try:
        result = models(data_dir, "download", "1", "--out", str(tmp_path / "m"))
        assert isinstance(result.exception, ChecksumError)
        assert not (tmp_path / "m").exists()
    finally:
        stored.write_bytes(original)


def test_a_registered_model_name_without_versions_lists_nothing(data_dir):
    result = runner.invoke(app, ["--data-dir", str(data_dir), "models", "list"],
                           env={"STREAMREC_REGISTRY__MODEL_NAME": "nothing-here"})
    assert result.exit_code == 0, result.output
    assert "no versions of 'nothing-here'" in result.output


@pytest.mark.parametrize("verb", ["list", "show", "promote", "rollback", "download"])
def test_each_verb_has_help(verb):
    result = runner.invoke(app, ["models", verb, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output
