"""Settings: defaults, TOML profiles, environment variables, and clear errors."""

from __future__ import annotations

import pytest

from streamrec.errors import ConfigError
from streamrec.settings import load_settings


def test_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.ingest.unknown_titles == "quarantine"
    assert settings.event_store.type == "duckdb"
    assert settings.event_store_path == settings.data_dir / "events.duckdb"


def test_toml_profile_overrides_top_level(tmp_path):
    path = tmp_path / "streamrec.toml"
    path.write_text(
        'data_dir = "base"\n[ingest]\nmax_future_s = 10\n'
        '[profile.prod]\ndata_dir = "/srv/streamrec"\n[profile.prod.ingest]\nunknown_users = "quarantine"\n'
    )
    base = load_settings(path)
    prod = load_settings(path, profile="prod")
    assert str(base.data_dir) == "base" and base.ingest.unknown_users == "accept"
    assert str(prod.data_dir) == "/srv/streamrec" and prod.ingest.unknown_users == "quarantine"
    assert prod.ingest.max_future_s == 10  # inherited from the top level


def test_environment_beats_the_file(tmp_path, monkeypatch):
    path = tmp_path / "streamrec.toml"
    path.write_text('[ingest]\nunknown_titles = "quarantine"\n')
    monkeypatch.setenv("STREAMREC_INGEST__UNKNOWN_TITLES", "accept")
    assert load_settings(path).ingest.unknown_titles == "accept"


@pytest.mark.parametrize(
    "text, match",
    [
        ('[ingest]\nunknown_titles = "maybe"\n', "ingest.unknown_titles"),
        ('[ingest]\nno_such_key = 1\n', "no_such_key"),
        ('[event_store]\ntype = "oracle"\n', "event_store"),
        ("not toml at all [", "cannot read settings"),
    ],
)
def test_invalid_settings_name_the_key(tmp_path, text, match):
    path = tmp_path / "streamrec.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_settings(path)


def test_missing_profile_and_missing_file(tmp_path):
    path = tmp_path / "streamrec.toml"
    path.write_text("seed = 1\n")
    with pytest.raises(ConfigError, match=r"no \[profile.staging\]"):
        load_settings(path, profile="staging")
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "absent.toml")
