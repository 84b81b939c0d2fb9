"""The filter stage: each rule, its reason, and a property check that no forbidden title ever passes."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamrec.data.catalog import MATURITY_LEVELS
from streamrec.pipeline import REASONS, CatalogFilter, FilterPolicy, UserContext

T0 = datetime(2026, 6, 1)


def catalog() -> tuple[pa.Table, pa.Table]:
    titles = pa.table({"item_id": ["kids", "teen", "adult", "nowhere", "gone", "soon", "unknown_rating"],
                       "maturity": ["all", "13+", "18+", "all", "all", "all", None]})
    availability = pa.table({
        "item_id": ["kids", "teen", "adult", "gone", "soon", "unknown_rating", "kids", "not_in_catalog"],
        "region": ["DE", "DE", "DE", "DE", "DE", "DE", "US", "DE"],
        "start_ts": pa.array([T0 - timedelta(days=30)] * 4 + [T0 + timedelta(days=1), T0 - timedelta(days=30),
                              T0 - timedelta(days=30), T0 - timedelta(days=30)], pa.timestamp("us")),
        "end_ts": pa.array([None, None, None, T0, None, None, None, None], pa.timestamp("us")),
    })
    return titles, availability


def test_each_rule_removes_what_it_should_with_its_reason():
    titles, availability = catalog()
    f = CatalogFilter(titles, availability, FilterPolicy(blocklist=["teen"]))
    user = UserContext(region="DE", maturity_limit="16+", watched={"kids": T0 - timedelta(days=1)},
                       hidden=frozenset({"soon"}))
    kept, removed = f.apply(["kids", "teen", "adult", "nowhere", "gone", "soon", "unknown_rating", "ghost"], user, T0)
    assert kept == []
    assert removed == {"blocklist": 1, "maturity": 2, "region": 3, "hidden": 0, "watched": 1, "unknown": 1}
    # adult and unknown_rating (strictest by default) exceed 16+; nowhere has no window, gone ended at T0 (end is
    # exclusive), soon starts tomorrow (region wins over hidden: reasons are attributed in REASONS order)
    allowed, reason = f.allowed(user, T0)
    assert {f.item_ids[i]: REASONS[r] for i, r in enumerate(reason)} == {
        "kids": "watched", "teen": "blocklist", "adult": "maturity", "nowhere": "region", "gone": "region",
        "soon": "region", "unknown_rating": "maturity"}


def test_a_permissive_user_sees_what_is_available_in_their_region_only():
    titles, availability = catalog()
    f = CatalogFilter(titles, availability)
    kept, _ = f.apply(list(f.item_ids), UserContext(region="DE", maturity_limit="18+"), T0)
    assert kept == ["kids", "teen", "adult", "unknown_rating"]
    assert f.apply(list(f.item_ids), UserContext(region="US", maturity_limit="18+"), T0)[0] == ["kids"]
    assert f.apply(list(f.item_ids), UserContext(region=None, maturity_limit="18+"), T0)[0] == []
    everywhere = CatalogFilter(titles, None, FilterPolicy(require_availability=False))
    assert everywhere.apply(["nowhere"], UserContext(maturity_limit="18+"), T0)[0] == ["nowhere"]


def test_rewatch_policy_brings_titles_back_after_the_delay():
    titles, availability = catalog()
    user = UserContext(region="DE", maturity_limit="18+",
                       watched={"kids": T0 - timedelta(days=40), "teen": T0 - timedelta(days=2)})
    never = CatalogFilter(titles, availability)
    assert never.apply(["kids", "teen"], user, T0)[0] == []
    later = CatalogFilter(titles, availability, FilterPolicy(rewatch_after_days=30))
    assert later.apply(["kids", "teen"], user, T0)[0] == ["kids"]


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_no_forbidden_title_ever_passes(data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    n = 40
    items = [f"t{i}" for i in range(n)]
    maturity = rng.choice([*MATURITY_LEVELS, None], n).tolist()
    titles = pa.table({"item_id": items, "maturity": maturity})
    rows = rng.integers(0, n, 60)
    regions = rng.choice(["DE", "US", "FR"], 60)
    starts = [T0 + timedelta(days=int(d)) for d in rng.integers(-20, 20, 60)]
    ends = [None if rng.random() < 0.3 else s + timedelta(days=int(d)) for s, d in zip(starts, rng.integers(1, 30, 60))]
    availability = pa.table({"item_id": [items[i] for i in rows], "region": regions,
                             "start_ts": pa.array(starts, pa.timestamp("us")), "end_ts": pa.array(ends, pa.timestamp("us"))})
    blocklist = rng.choice(items, 3, replace=False).tolist()
    policy = FilterPolicy(blocklist=blocklist, rewatch_after_days=data.draw(st.sampled_from([None, 7.0])))
    user = UserContext(region=data.draw(st.sampled_from(["DE", "US", "XX"])),
                       maturity_limit=data.draw(st.sampled_from(MATURITY_LEVELS)),
                       watched={items[i]: T0 - timedelta(days=int(d)) for i, d in zip(rng.integers(0, n, 8),
                                                                                     rng.integers(0, 15, 8))},
                       hidden=frozenset(rng.choice(items, 4).tolist()))
    kept, removed = CatalogFilter(titles, availability, policy).apply(items, user, T0)
    limit = MATURITY_LEVELS.index(user.maturity_limit)

    def may_show(i: int) -> bool:  # the rules, written out directly
        item = items[i]
        windows = [(s, e) for r, g, s, e in zip(rows, regions, starts, ends) if r == i and g == user.region]
        watched_recently = item in user.watched and (
            policy.rewatch_after_days is None
            or (T0 - user.watched[item]).total_seconds() < policy.rewatch_after_days * 86_400)
        return (item not in blocklist and item not in user.hidden
                and MATURITY_LEVELS.index(maturity[i] or "18+") <= limit
                and any(s <= T0 and (e is None or T0 < e) for s, e in windows) and not watched_recently)

    assert kept == [item for i, item in enumerate(items) if may_show(i)]  # nothing forbidden, nothing lost
    assert len(kept) + sum(removed.values()) == n
