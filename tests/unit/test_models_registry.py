"""The registry: create by name with overrides, load by the saved name."""

from __future__ import annotations

import json

import pytest

from streamrec.errors import ConfigError, NotFound
from streamrec.models import MODELS, create_model, load_model
from tests.contract.test_models import planted


def test_overrides_win_over_config():
    model = create_model("ease", {"l2": 10.0, "max_items": 99}, l2=20.0)
    assert model.config.l2 == 20.0 and model.config.max_items == 99


def test_every_name_maps_to_its_class():
    for name, cls in MODELS.items():
        assert cls.name == name and isinstance(create_model(name), cls)


def test_load_missing_folder_is_not_found(tmp_path):
    with pytest.raises(NotFound):
        load_model(tmp_path / "nothing")


def test_load_unknown_saved_model_names_known_ones(tmp_path):
    folder = create_model("popularity").fit(planted()[0]).save(tmp_path / "m")
    meta = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**meta, "model": "gone"}))
    with pytest.raises(ConfigError, match="known models"):
        load_model(folder)


def test_class_load_refuses_another_models_folder(tmp_path):
    folder = create_model("popularity").fit(planted()[0]).save(tmp_path / "m")
    with pytest.raises(ConfigError, match="popularity"):
        MODELS["ease"].load(folder)
