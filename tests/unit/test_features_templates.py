"""Feature templates: the default grid expands to valid, uniquely named features that duplicate no built-in one,
invalid combinations are left out, and generated features compute offline exactly as defined (point in time)."""

from __future__ import annotations

from datetime import timedelta

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from pydantic import ValidationError

from streamrec.events.schema import EVENT_TYPES
from streamrec.features import BUILTIN, Feature, point_in_time
from streamrec.features.templates import DEFAULT_TEMPLATES, FeatureTemplate, candidates
from tests.unit.test_features_offline import T0, brute_force


def rich_events(seed: int, n: int = 500) -> pa.Table:
    """Every event type, with the numeric fields each carries (watched seconds and fraction, rating values)."""
    rng = np.random.default_rng(seed)
    types = rng.choice(list(EVENT_TYPES), n)
    watched = np.isin(types, ["progress", "complete"])
    fraction = np.where(watched, rng.uniform(0, 1, n), np.nan)
    rating = np.where(types == "rating", rng.integers(1, 11, n) / 2, np.nan)
    ts = [T0 + timedelta(seconds=int(s)) for s in rng.integers(-120 * 86_400, 0, n)]  # beyond the 90-day window
    return pa.table({
        "event_id": [f"e{i}" for i in range(n)],
        "user_id": rng.choice([f"u{i}" for i in range(7)], n),
        "item_id": rng.choice([f"t{i}" for i in range(6)], n),
        "type": types,
        "ts": pa.array(ts, pa.timestamp("us")),
        "watched_s": pa.array(np.where(watched, fraction * 5400, np.nan), pa.float64(), from_pandas=True),
        "fraction": pa.array(fraction, pa.float64(), from_pandas=True),
        "rating": pa.array(rating, pa.float64(), from_pandas=True),
    })


def sample(features: list[Feature]) -> list[Feature]:
    """A few generated features covering every aggregation, entity and window, and the event types in question."""
    by_name = {f.name: f for f in features}
    names = ["user_add_to_list_count_7d", "title_impression_count_1d", "user_rating_count_90d",
             "title_complete_count_28d", "user_rating_mean_rating_28d", "title_progress_mean_fraction_90d",
             "user_watch_sum_watched_s_7d", "title_watch_sum_watched_s_28d", "user_add_to_list_days_since_last",
             "title_rating_days_since_last", "user_impression_days_since_last"]
    return [by_name[n] for n in names]


def test_the_default_grid_is_a_few_dozen_valid_uniquely_named_new_features():
    generated = candidates()
    names = [f.name for f in generated]
    assert 30 <= len(generated) <= 100
    assert len(set(names)) == len(names)
    assert all(isinstance(f, Feature) for f in generated)
    assert not set(names) & {f.name for f in BUILTIN}
    assert {f.entity for f in generated} == {"user", "title"}
    assert {f.aggregation for f in generated} == {"count", "sum", "mean", "days_since_last"}
    assert {t for f in generated for t in f.events} == set(EVENT_TYPES)
    assert {f.window_days for f in generated} == {1, 7, 28, 90, None}
    assert sample(generated)  # the systematic names
    # what BUILTIN already computes under another name is left out (user_plays_7d = plays counted over 7 days)
    assert "user_play_count_7d" not in names and "user_play_count_90d" in names
    assert "user_complete_count_28d" not in names and "user_complete_count_1d" in names
    every = [f for t in DEFAULT_TEMPLATES for f in t.expand()]
    assert len(every) > len(generated)


def test_invalid_combinations_are_left_out_and_bad_templates_refused():
    template = FeatureTemplate(events={"play": ("play",), "rating": ("rating",)},
                               aggregations=("mean", "days_since_last"), windows=(7, 28), entities=("user",))
    names = [f.name for f in template.expand()]
    # plays carry no value to average; recency has no window
    assert names == ["user_play_days_since_last", "user_rating_mean_rating_7d", "user_rating_mean_rating_28d",
                     "user_rating_days_since_last"]
    everything = FeatureTemplate(events={"all": tuple(EVENT_TYPES)}, aggregations=("count", "sum"),
                                 windows=(None,))
    assert [f.name for f in everything.expand()] == [
        "user_all_count_all", "user_all_sum_watched_s_all", "user_all_sum_fraction_all", "user_all_sum_rating_all",
        "title_all_count_all", "title_all_sum_watched_s_all", "title_all_sum_fraction_all",
        "title_all_sum_rating_all"]
    assert candidates([everything, everything], exclude=()) == everything.expand()  # duplicates once
    with pytest.raises(ValidationError, match="unknown or no event types"):
        FeatureTemplate(events={"x": ("watch",)}, aggregations=("count",))
    with pytest.raises(ValidationError, match="lower-case"):
        FeatureTemplate(events={"Big Group": ("play",)}, aggregations=("count",))
    with pytest.raises(ValidationError, match="between 1 and 3650"):
        FeatureTemplate(events={"play": ("play",)}, aggregations=("count",), windows=(0,))


@pytest.mark.parametrize("seed", [0, 1])
def test_generated_features_compute_point_in_time_as_defined(seed):
    events = rich_events(seed)
    chosen = sample(candidates())
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("events", events)
    for at in (T0 - timedelta(days=40), T0 + timedelta(hours=1)):
        for entity, key_col, keys in (("user", "user_id", [f"u{i}" for i in range(7)]),
                                      ("title", "item_id", [f"t{i}" for i in range(6)])):
            features = [f for f in chosen if f.entity == entity]
            spine = pa.table({key_col: keys, "ts": pa.array([at] * len(keys), pa.timestamp("us"))})
            got = point_in_time(con, spine, features).to_pylist()
            for key, row in zip(keys, got):
                for f in features:
                    want = brute_force(events, f, key, at)
                    if want is None:
                        assert row[f.name] is None, (at, key, f.name)
                    else:
                        assert row[f.name] == pytest.approx(want, rel=1e-9, abs=1e-9), (at, key, f.name)
