"""Every model in the registry passes this suite; models are discovered, so a new one cannot skip it."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Any, Literal, get_args, get_origin

import annotated_types as at
import numpy as np
import pytest
from scipy import sparse

import streamrec.models as zoo
from streamrec.data.interactions import Interactions
from streamrec.errors import ChecksumError, ConfigError, DataError, NotFound
from streamrec.models import MODELS, create_model, load_model
from streamrec.models.base import Recommender

K = 10


def planted(n_users: int = 240, n_items: int = 100, n_groups: int = 4, per_user: int = 10,
            seed: int = 0) -> tuple[Interactions, np.ndarray]:
    """Users in taste groups watching Zipf-popular titles mostly of their group; one watched title held out each.

    Returns:
        (training interactions with weights and times, held-out item column per user)
    """
    rng = np.random.default_rng(seed)
    group_of_item = np.arange(n_items) % n_groups
    popularity = 1.0 / (1.0 + np.arange(n_items)) ** 0.6
    rows, cols, held = [], [], np.empty(n_users, dtype=np.int64)
    for user, group in enumerate(rng.integers(0, n_groups, n_users)):
        p = popularity * np.where(group_of_item == group, 1.0, 0.05)
        items = rng.choice(n_items, size=per_user + 1, replace=False, p=p / p.sum())
        held[user] = items[0]
        rows += [user] * per_user
        cols += items[1:].tolist()
    weights = rng.uniform(0.2, 3.0, len(rows)).astype(np.float32)
    times = rng.uniform(1.7e9, 1.7e9 + 90 * 86_400, len(rows))
    matrix = sparse.csr_matrix((weights, (rows, cols)), shape=(n_users, n_items), dtype=np.float32)
    last_ts = sparse.csr_matrix((times, (rows, cols)), shape=(n_users, n_items))
    data = Interactions(matrix, np.array([f"u{i:04d}" for i in range(n_users)], dtype=object),
                        np.array([f"t{i:03d}" for i in range(n_items)], dtype=object), last_ts)
    return data, held


def learned_state(model: Recommender) -> dict[str, Any]:
    """Copies of everything fit set (attributes ending in '_'), for before/after comparisons."""
    state: dict[str, Any] = {}
    for name, value in vars(model).items():
        if sparse.issparse(value):
            state[name] = ("sparse", value.shape, value.data.copy(), value.indices.copy(), value.indptr.copy())
        elif isinstance(value, np.ndarray):
            state[name] = ("array", value.copy())
        elif name == "config":
            state[name] = ("config", value.model_dump())
        else:
            state[name] = ("other", value)
    return state


def same_state(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if a.keys() != b.keys():
        return False
    for name in a:
        kind, *x = a[name]
        _, *y = b[name]
        if kind == "sparse":
            if x[0] != y[0] or not all(np.array_equal(p, q) for p, q in zip(x[1:], y[1:], strict=True)):
                return False
        elif kind == "array":
            if x[0].dtype != y[0].dtype or not np.array_equal(x[0], y[0]):
                return False
        elif x != y:
            return False
    return True


def invalid_values(config_type: type) -> list[tuple[str, Any]]:
    """(field, value) pairs breaking each declared bound or choice of a config class."""
    cases: list[tuple[str, Any]] = []
    for field_name, field in config_type.model_fields.items():
        for bound in field.metadata:
            if isinstance(bound, at.Gt):
                cases.append((field_name, bound.gt))
            elif isinstance(bound, at.Ge):
                cases.append((field_name, bound.ge - 1))
            elif isinstance(bound, at.Lt):
                cases.append((field_name, bound.lt))
            elif isinstance(bound, at.Le):
                cases.append((field_name, bound.le + 1))
        if get_origin(field.annotation) is Literal:
            cases.append((field_name, "no-such-choice-" + "|".join(map(str, get_args(field.annotation)))))
    return cases


@pytest.fixture(scope="module")
def world() -> tuple[Interactions, np.ndarray]:
    return planted()


@pytest.fixture(scope="module", params=sorted(MODELS))
def fitted(request, world) -> Recommender:
    return create_model(request.param).fit(world[0])


# --- the registry ------------------------------------------------------------------------------------

def test_every_recommender_in_the_package_is_registered():
    for info in pkgutil.iter_modules(zoo.__path__):
        module = importlib.import_module(f"streamrec.models.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Recommender) and not inspect.isabstract(cls) and cls.__module__ == module.__name__:
                assert MODELS.get(cls.name) is cls, f"{cls.__qualname__} in {module.__name__} is not in MODELS"
    assert {"popularity", "item_knn", "ease", "als", "bpr", "rp3beta"} <= set(MODELS)


def test_unknown_model_name_lists_the_known_ones():
    with pytest.raises(ConfigError, match="known models: .*ease"):
        create_model("no-such-model")


# --- per model ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(MODELS))
class TestConfig:
    def test_config_is_typed_and_documented(self, name):
        config_type = MODELS[name].config_type
        assert config_type.model_config.get("extra") == "forbid"
        for field_name, field in config_type.model_fields.items():
            assert field.description, f"{name}.{field_name} has no description"
        create_model(name)  # defaults are valid

    def test_invalid_hyperparameters_raise_config_error(self, name):
        for field_name, value in invalid_values(MODELS[name].config_type) + [("no_such_field", 1)]:
            with pytest.raises(ConfigError, match=field_name):
                create_model(name, {field_name: value})

    def test_empty_training_data_raises_data_error(self, name):
        empty = Interactions(sparse.csr_matrix((3, 4), dtype=np.float32), np.array(["a", "b", "c"], dtype=object),
                             np.array(["w", "x", "y", "z"], dtype=object))
        with pytest.raises(DataError):
            create_model(name).fit(empty)

    def test_single_user_works_or_says_why(self, name, world):
        data = world[0]
        one = Interactions(data.matrix[:1], data.user_ids[:1], data.item_ids, data.last_ts[:1])
        try:
            model = create_model(name).fit(one)
        except DataError as exc:
            assert "user" in str(exc)
            return
        scores = model.score(one.matrix, users=np.array([0]))
        assert scores.shape == (1, one.n_items) and np.isfinite(scores).all()

    def test_deterministic_with_a_seed(self, name, world):
        first, second = create_model(name).fit(world[0]), create_model(name).fit(world[0])
        assert same_state(learned_state(first), learned_state(second))
        np.testing.assert_array_equal(first.score(world[0].matrix), second.score(world[0].matrix))

    def test_unfitted_model_refuses_to_score(self, name, world):
        with pytest.raises(NotFound):
            create_model(name).score(world[0].matrix)


class TestFitted:
    def test_fit_returns_self_with_learned_state(self, world):
        for name in MODELS:
            model = create_model(name)
            assert model.fit(world[0]) is model
            assert model.is_fitted and len(model.item_ids_) == world[0].n_items

    def test_score_shape_dtype_finite(self, fitted, world):
        data = world[0]
        for users in (np.arange(data.n_users), None):
            scores = fitted.score(data.matrix, users=users)
            assert scores.shape == (data.n_users, data.n_items)
            assert scores.dtype == np.float32 and np.isfinite(scores).all()

    def test_unknown_users_get_finite_scores(self, fitted, world):
        data = world[0]
        history = sparse.vstack([sparse.csr_matrix((2, data.n_items), dtype=np.float32), data.matrix[:3]]).tocsr()
        for users in (None, np.full(5, -1), np.array([-1, -1, 0, 1, -1])):
            scores = fitted.score(history, users=users)
            assert scores.shape == (5, data.n_items) and np.isfinite(scores).all()

    def test_history_over_other_items_is_rejected(self, fitted, world):
        with pytest.raises(DataError, match="item columns"):
            fitted.score(sparse.csr_matrix((2, world[0].n_items + 1), dtype=np.float32))

    def test_recommend_excludes_seen_and_sorts(self, fitted, world):
        data = world[0]
        users = np.arange(data.n_users)
        items, values = fitted.recommend(data.matrix, k=K, users=users)
        scores = fitted.score(data.matrix, users=users)
        assert items.shape == values.shape == (data.n_users, K)
        for row in range(data.n_users):
            assert len(set(items[row].tolist())) == K
            assert not set(items[row].tolist()) & set(data.matrix[row].indices.tolist())
            assert (np.diff(values[row]) <= 0).all()
            np.testing.assert_array_equal(values[row], scores[row, items[row]])

    def test_scoring_does_not_mutate(self, fitted, world):
        data = world[0]
        before = learned_state(fitted)
        fitted.score(data.matrix)
        fitted.score(data.matrix, users=np.arange(data.n_users))
        fitted.recommend(data.matrix[:7], k=K)
        assert same_state(before, learned_state(fitted))

    def test_save_load_round_trip(self, fitted, world, tmp_path):
        data = world[0]
        fitted.save(tmp_path / "m")
        for loaded in (load_model(tmp_path / "m"), type(fitted).load(tmp_path / "m")):
            assert type(loaded) is type(fitted) and loaded.config == fitted.config
            assert same_state(learned_state(fitted), learned_state(loaded))
            for users in (None, np.arange(data.n_users)):
                np.testing.assert_array_equal(loaded.score(data.matrix, users), fitted.score(data.matrix, users))

    def test_corrupt_arrays_raise_checksum_error(self, fitted, tmp_path):
        folder = fitted.save(tmp_path / "m")
        raw = bytearray((folder / "arrays.npz").read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        (folder / "arrays.npz").write_bytes(bytes(raw))
        with pytest.raises(ChecksumError):
            load_model(folder)

    def test_beats_random_on_held_out_items(self, fitted, world):
        data, held = world
        items, _ = fitted.recommend(data.matrix, k=K, users=np.arange(data.n_users))
        hit_rate = np.mean([held[u] in items[u] for u in range(data.n_users)])
        unseen = data.n_items - np.diff(data.matrix.indptr)
        random_hit_rate = np.mean(K / unseen)
        assert hit_rate > 2 * random_hit_rate, f"{fitted.name}: HR@{K} {hit_rate:.3f} vs random {random_hit_rate:.3f}"
