"""Assignment by hashing: uniform over variants (chi-square over 1M ids), sticky, independent across layers, slices
of a layer mutually exclusive, eligibility and the experiment window respected; definitions validated."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import numpy as np
import pytest
from scipy import stats

from streamrec.errors import ConfigError
from streamrec.experiments.assign import Assigner, unit_hash
from streamrec.experiments.config import ExperimentConfig
from streamrec.settings import load_settings

AT = datetime(2026, 6, 1, 12)


def experiment(name: str, weights=(1, 1), **fields) -> ExperimentConfig:
    return ExperimentConfig(name=name, variants=[{"name": f"v{i}", "weight": w} for i, w in enumerate(weights)],
                            **fields)


def test_variants_are_uniform_by_weight_over_a_million_ids():
    assigner = Assigner([experiment("ab", weights=(1, 1, 2))])
    e = assigner.by_name["ab"]
    counts = Counter(assigner.variant_of(e, f"u{i}") for i in range(1_000_000))
    observed = [counts[v] for v in ("v0", "v1", "v2")]
    expected = [250_000, 250_000, 500_000]
    assert stats.chisquare(observed, expected).pvalue > 0.001, observed
    skewed = [int(o * f) for o, f in zip(observed, (1.01, 1.0, 0.995))]  # a 1% bias is visible at this size
    assert stats.chisquare(skewed, np.array(expected) * sum(skewed) / 1_000_000).pvalue < 0.001


def test_assignment_is_sticky_and_a_new_salt_reshuffles():
    a, again = Assigner([experiment("ab")]), Assigner([experiment("ab")])
    users = [f"u{i}" for i in range(2000)]
    first = [a.assign(u, AT) for u in users]
    assert first == [again.assign(u, AT + timedelta(days=3)) for u in users]
    salted = Assigner([experiment("ab", salt="round-2")])
    moved = sum(x[0].variant != y[0].variant for x, y in zip(first, (salted.assign(u, AT) for u in users)))
    assert 800 < moved < 1200  # about half change variant


def test_layers_are_independent_and_a_layer_s_experiments_never_share_a_user():
    assigner = Assigner([experiment("ranker", layer="ranking", traffic=0.5),
                         experiment("ranker2", layer="ranking", traffic=0.5),
                         experiment("rows", layer="homepage")])
    pairs = Counter()
    for i in range(40_000):
        got = {a.layer: a for a in assigner.assign(f"u{i}", AT)}
        assert len(got) == 2 and got["ranking"].experiment in ("ranker", "ranker2")
        pairs[(got["ranking"].experiment, got["ranking"].variant, got["homepage"].variant)] += 1
    table = np.array([[pairs[(e, v, "v0")], pairs[(e, v, "v1")]] for e in ("ranker", "ranker2") for v in ("v0", "v1")])
    assert stats.chi2_contingency(table).pvalue > 0.001  # the homepage variant says nothing of the ranking one
    assert abs(table[:2].sum() / table.sum() - 0.5) < 0.02


def test_traffic_eligibility_and_window():
    part = Assigner([experiment("part", traffic=0.2)])
    share = np.mean([bool(part.assign(f"u{i}", AT)) for i in range(20_000)])
    assert 0.18 < share < 0.22
    eu = Assigner([experiment("eu", regions=["EU"])])
    assert eu.assign("u1", AT, region="EU") and not eu.assign("u1", AT, region="US")
    new = Assigner([experiment("new", new_users_only=True, new_user_days=7)])
    assert new.assign("u1", AT, signup=AT - timedelta(days=2)) and not new.assign("u1", AT, signup=AT - timedelta(days=30))
    assert not new.assign("u1", AT)  # signup unknown: not a new user
    window = Assigner([experiment("w", start="2026-06-01T00:00:00Z", stop="2026-06-08T00:00:00Z")])
    assert window.assign("u1", AT) and not window.assign("u1", AT - timedelta(days=1))
    assert not window.assign("u1", datetime(2026, 6, 8))


def test_hash_is_uniform_enough_for_slices():
    values = np.array([unit_hash(f"layer:x:u{i}") for i in range(100_000)])
    assert stats.kstest(values, "uniform").pvalue > 0.001


def test_definitions_are_validated_with_the_mistake_named():
    with pytest.raises(ConfigError, match="variant names repeat"):
        load_settings(experiments=[{"name": "e", "variants": [{"name": "a"}, {"name": "a"}]}])
    with pytest.raises(ConfigError, match="more than all of their traffic"):
        load_settings(experiments=[experiment("a", traffic=0.6).model_dump(), experiment("b", traffic=0.6).model_dump()])
    with pytest.raises(ConfigError, match="experiment names repeat"):
        load_settings(experiments=[experiment("a", layer="x").model_dump(), experiment("a", layer="y").model_dump()])
    with pytest.raises(ConfigError, match="variants"):
        load_settings(experiments=[{"name": "solo", "variants": [{"name": "a"}]}])
