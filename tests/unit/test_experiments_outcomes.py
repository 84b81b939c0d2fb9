"""Per-user outcomes of an experiment from its exposure/outcome log: attribution, watch time, pre-period, cutoffs."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings, strategies as st

from streamrec.errors import DataError
from streamrec.experiments.outcomes import OUTCOME_SCHEMA, OutcomeQuery, user_outcomes

T0 = datetime(2024, 3, 1)
# the exposure/outcome log's layout (streamrec.experiments.exposure writes it)
SCHEMA = pa.schema([("ts", pa.timestamp("us")), ("user_id", pa.string()), ("experiment", pa.string()),
                    ("variant", pa.string()), ("type", pa.string()), ("item_id", pa.string()),
                    ("request_id", pa.string()), ("watched_s", pa.float64())])


def row(hours: float, user: str, type_: str, item: str | None = None, request: str | None = None,
        watched: float | None = None, experiment: str | None = "exp", variant: str | None = "a") -> dict:
    return {"ts": T0 + timedelta(hours=hours), "user_id": user, "experiment": experiment, "variant": variant,
            "type": type_, "item_id": item, "request_id": request, "watched_s": watched}


def table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def make_log(users: int = 2000, days: int = 14, lift: float = 0.0, weights: tuple[float, float] = (1.0, 1.0),
             seed: int = 0, name: str = "exp", start: datetime = T0, pre_days: int = 7) -> pa.Table:
    """A realistic log, vectorized: lognormal activity, Zipf titles, users arriving over the period, pre-period
    history (experiment null) and in-experiment sessions (exposure, 8 impressions, plays, progress/complete).
    `lift` multiplies the treatment's (variant "b") play probability and watch time."""
    rng = np.random.default_rng(seed)
    activity = rng.lognormal(-0.7, 1.0, users)  # sessions per day
    taste = rng.lognormal(0.0, 0.5, users)  # heavier viewers watch longer
    arrival = np.minimum((rng.exponential(days / 4, users)), days - 0.01)
    variant = np.where(rng.random(users) < weights[1] / sum(weights), "b", "a")
    ts, user, typ, item, req, watched, exp_col = [], [], [], [], [], [], []
    n_pre = rng.poisson(activity * pre_days)
    n_in = rng.poisson(activity * (days - arrival)) + 1  # every exposed user has the exposing session
    end = np.full(users, float(days))
    for pre, count, lo, hi in ((True, n_pre, arrival - pre_days, arrival), (False, n_in, arrival, end)):
        u = np.repeat(np.arange(users), count)
        first = np.zeros(len(u), bool)
        if not pre:
            first[np.concatenate([[0], np.cumsum(count)[:-1]])] = True
        s_ts = np.where(first, arrival[u], lo[u] + rng.random(len(u)) * (hi[u] - lo[u]))
        sid = np.arange(len(u)) + (0 if pre else 10**7)
        boost = np.where(~pre & (variant[u] == "b"), 1.0 + lift, 1.0)
        if not pre:  # exposure
            ts.append(s_ts)
            user.append(u)
            typ.append(np.full(len(u), "exposure"))
            item.append(np.full(len(u), None))
            req.append(sid)
            watched.append(np.full(len(u), np.nan))
            exp_col.append(np.ones(len(u), bool))
        k = 8
        su, sts, ssid, sb = np.repeat(u, k), np.repeat(s_ts, k), np.repeat(sid, k), np.repeat(boost, k)
        titles = rng.zipf(1.3, len(su)) % 500
        if not pre:
            ts.append(sts + 1 / 86400)
            user.append(su)
            typ.append(np.full(len(su), "impression"))
            item.append(titles)
            req.append(ssid)
            watched.append(np.full(len(su), np.nan))
            exp_col.append(np.ones(len(su), bool))
        played = rng.random(len(su)) < 0.06 * sb * np.minimum(taste[su], 3)
        p_ts = sts + rng.uniform(0.01, 0.3, len(su))
        pu, pt, pi, preq, pb = su[played], p_ts[played], titles[played], ssid[played], sb[played]
        from_rec = rng.random(len(pu)) < 0.5
        runtime = rng.lognormal(np.log(45 * 60), 0.6, len(pu)) * pb * taste[pu] ** 0.3
        ts += [pt, pt + runtime / 86400 / 2]
        user += [pu, pu]
        typ += [np.full(len(pu), "play"), np.full(len(pu), "progress")]
        item += [pi, pi]
        req += [np.where(from_rec & ~pre, preq, -1), np.full(len(pu), -1)]
        watched += [np.full(len(pu), np.nan), runtime]
        exp_col += [np.full(len(pu), not pre), np.full(len(pu), not pre)]
    t = np.concatenate(ts)
    us = np.concatenate(user)
    requests = np.concatenate(req).astype(object)
    items = np.concatenate(item).astype(object)
    in_exp = np.concatenate(exp_col)
    order = np.argsort(t, kind="stable")
    ts_us = (np.datetime64(start, "us") + (t * 86_400e6).astype("timedelta64[us]"))[order]
    cols = {
        "ts": pa.array(ts_us, pa.timestamp("us")),
        "user_id": pa.array([f"u{x:05d}" for x in us[order]]),
        "experiment": pa.array(np.where(in_exp, name, None)[order], pa.string()),
        "variant": pa.array(np.where(in_exp, variant[us], None)[order], pa.string()),
        "type": pa.array(np.concatenate(typ)[order]),
        "item_id": pa.array([None if x is None else f"t{x}" for x in items[order]], pa.string()),
        "request_id": pa.array([None if (x is None or x < 0) else f"r{x}" for x in requests[order]], pa.string()),
        "watched_s": pa.array(np.concatenate(watched)[order], pa.float64(), from_pandas=True),
    }
    return pa.table(cols, schema=SCHEMA)


def test_attribution_watch_time_and_pre_period():
    log = table([
        row(-30, "u1", "play", "x"), row(-29.5, "u1", "progress", "x", watched=600),
        row(-29, "u1", "complete", "x", watched=1200),  # pre-period: 1 play, 20 minutes
        row(0, "u1", "exposure", request="q1"), row(0.1, "u1", "impression", "y", request="q1"),
        row(1, "u1", "play", "y"), row(1.5, "u1", "progress", "y", watched=300),  # after an impression of y
        row(2, "u1", "play", "z", request="q1"),  # carries the exposure's request id
        row(30, "u1", "play", "y"), row(31, "u1", "complete", "y", watched=900),  # 30 h after: not attributed
        row(3, "u1", "play", "w", request="other"),  # unknown request, title never shown: not attributed
        row(5, "u2", "exposure", request="q2", variant="b"), row(6, "u2", "impression", "k", request="q2"),
        row(7, "u2", "play", "k", request="q2", experiment=None), row(7, "u2", "play", "k", request="q2"),  # same
        row(8, "u3", "play", "k"),  # never exposed: not in the table
        row(9, "u4", "exposure", request="q4", experiment="other"),  # another experiment
    ])
    out = {r["user_id"]: r for r in user_outcomes(log, "exp", T0 + timedelta(days=3)).to_pylist()}
    assert set(out) == {"u1", "u2"}
    u1 = out["u1"]
    assert (u1["variant"], u1["exposures"], u1["impressions"], u1["plays"]) == ("a", 1, 1, 2)
    assert u1["watch_minutes"] == pytest.approx((300 + 900) / 60)  # all plays after exposure count for watch time
    assert (u1["pre_plays"], u1["pre_watch_minutes"]) == (1, pytest.approx(20.0))
    u2 = out["u2"]
    assert (u2["variant"], u2["plays"], u2["impressions"]) == ("b", 1, 1)


def test_cutoff_ignores_later_rows_and_late_exposures():
    log = table([row(0, "u1", "exposure", request="q"), row(0.5, "u1", "impression", "y"),
                 row(1, "u1", "play", "y"), row(2, "u1", "progress", "y", watched=120),
                 row(10, "u2", "exposure", request="q2")])
    early = user_outcomes(log, "exp", T0 + timedelta(hours=1.5)).to_pylist()
    assert [r["user_id"] for r in early] == ["u1"]
    assert (early[0]["plays"], early[0]["watch_minutes"]) == (1, 0.0)
    later = user_outcomes(log, "exp", T0 + timedelta(hours=11)).to_pylist()
    assert [r["user_id"] for r in later] == ["u1", "u2"] and later[0]["watch_minutes"] == pytest.approx(2.0)


def test_time_zone_aware_cutoff_and_window_parameters():
    log = table([row(0, "u1", "exposure"), row(0.5, "u1", "impression", "y"), row(3, "u1", "play", "y")])
    aware = T0.replace(tzinfo=timezone.utc) + timedelta(hours=4)
    assert user_outcomes(log, "exp", aware).to_pylist()[0]["plays"] == 1
    assert user_outcomes(log, "exp", aware, attribution_window=timedelta(hours=2)).to_pylist()[0]["plays"] == 0


def test_users_in_two_variants_are_counted():
    log = table([row(0, "u1", "exposure", variant="a"), row(1, "u1", "exposure", variant="b")])
    (r,) = user_outcomes(log, "exp", T0 + timedelta(days=1)).to_pylist()
    assert (r["variant"], r["variants"], r["exposures"]) == ("a", 2, 2)


def test_schema_and_missing_columns():
    out = user_outcomes(make_log(users=50, days=3), "exp", T0 + timedelta(days=3))
    assert out.schema == OUTCOME_SCHEMA and out.num_rows == 50
    with pytest.raises(DataError, match="missing columns: watched_s"):
        user_outcomes(make_log(users=5, days=2).drop_columns(["watched_s"]), "exp", T0)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), cut=st.floats(0.5, 6.0))
def test_counts_grow_with_the_cutoff_and_plays_never_exceed_impressions_plus_requests(seed: int, cut: float):
    log = make_log(users=60, days=6, seed=seed)
    a = {r["user_id"]: r for r in user_outcomes(log, "exp", T0 + timedelta(days=cut)).to_pylist()}
    b = {r["user_id"]: r for r in user_outcomes(log, "exp", T0 + timedelta(days=cut + 0.5)).to_pylist()}
    assert set(a) <= set(b)
    for u, r in a.items():
        for c in ("exposures", "impressions", "plays", "watch_minutes"):
            assert b[u][c] >= r[c] - 1e-9
        assert r["pre_plays"] == b[u]["pre_plays"]  # the pre-period is fixed by the first exposure
        assert r["plays"] >= 0 and r["watch_minutes"] >= 0


def assert_looks_match_single_cutoffs(log: pa.Table, cutoffs: list[datetime], **kwargs) -> None:
    """at_looks (one pass) gives, for every look, exactly the table `at` gives for that cutoff alone."""
    query = OutcomeQuery(log)
    try:
        got = query.at_looks("exp", cutoffs, **kwargs)
        want = [query.at("exp", c, **kwargs) for c in cutoffs]
    finally:
        query.close()
    assert len(got) == len(want)
    for cutoff, g, w in zip(cutoffs, got, want):
        assert g.schema == OUTCOME_SCHEMA and g.num_rows == w.num_rows, cutoff
        for column in OUTCOME_SCHEMA.names:
            if column.endswith("minutes"):
                np.testing.assert_allclose(g[column].to_numpy(), w[column].to_numpy(), rtol=1e-12, atol=1e-9)
            else:
                assert g[column].to_pylist() == w[column].to_pylist(), (cutoff, column)


EDGE_LOG = [
    # u1: pre-period rows (one play outside the 14-day pre-period), then exposure under a, later b (two looks later)
    row(-24 * 20, "u1", "play", "old", experiment=None), row(-24 * 20 + 1, "u1", "progress", "old", watched=50.0,
                                                              experiment=None),
    row(-30, "u1", "play", "x", experiment=None), row(-29, "u1", "complete", "x", watched=1200, experiment=None),
    row(0, "u1", "exposure", request="q1"), row(0.1, "u1", "impression", "y", request="q1"),
    row(1, "u1", "play", "y"), row(1.5, "u1", "progress", "y", watched=300),
    row(23, "u1", "progress", "y", watched=200),  # lower position: the running max keeps 300
    row(25, "u1", "progress", "y", watched=900),  # straddles the day-1 cutoff: the play gains at the next look
    row(26, "u1", "play", "y", request="q1"), row(27, "u1", "progress", "y", watched=60),  # second play of y
    row(50, "u1", "exposure", variant="b", request="q1b"),
    row(51, "u1", "play", "z", request="q1b"),  # attributed by the second exposure's request id
    row(52, "u1", "exposure", variant="b", request="q1c"),
    # u2: duplicate rows, exposed on day 2 with a pre-period
    row(30, "u2", "play", "k", experiment=None), row(31, "u2", "progress", "k", watched=100.0, experiment=None),
    row(49, "u2", "exposure", request="q2", variant="b"), row(49, "u2", "exposure", request="q2", variant="b"),
    row(49.5, "u2", "impression", "k", request="q2"), row(49.5, "u2", "impression", "k", request="q2"),
    row(50, "u2", "play", "k", request="q2"), row(50, "u2", "play", "k", request="q2"),
    row(50, "u2", "play", "k", request="q2", experiment=None),
    row(70, "u2", "complete", "k", watched=1800), row(70, "u2", "complete", "k", watched=1800),
    # u3: nothing on day 3 (no look there), exposed on day 4 with a null variant, on day 5 under a
    row(97, "u3", "exposure", variant=None), row(122, "u3", "exposure", variant="a"),
    row(98.5, "u3", "play", "m", request="none"),  # not attributed
    row(99, "u3", "exposure", experiment="other"),  # another experiment
    row(100, "u4", "play", "k"),  # never exposed
]


@pytest.mark.parametrize("hours", [[24, 48, 72, 96, 120, 144], [12, 24.5, 50.5, 51, 75, 100], [1000], [0, 200]])
def test_every_look_matches_its_single_cutoff_on_edge_cases(hours: list[float]):
    assert_looks_match_single_cutoffs(table(EDGE_LOG), [T0 + timedelta(hours=h) for h in hours])
    assert_looks_match_single_cutoffs(table(EDGE_LOG), [T0 + timedelta(hours=h) for h in hours],
                                      attribution_window=timedelta(hours=2), pre_period=timedelta(days=1))


def test_at_looks_follows_the_order_of_its_cutoffs_and_takes_aware_times():
    cutoffs = [T0 + timedelta(days=3), T0 + timedelta(days=1), T0 + timedelta(days=3)]
    assert_looks_match_single_cutoffs(table(EDGE_LOG), cutoffs)
    query = OutcomeQuery(table(EDGE_LOG))
    aware = [c.replace(tzinfo=timezone.utc) for c in cutoffs]
    assert [t.to_pylist() for t in query.at_looks("exp", aware)] == [
        t.to_pylist() for t in query.at_looks("exp", cutoffs)]
    assert query.at_looks("exp", []) == []


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), cuts=st.lists(st.floats(0.2, 7.0), min_size=1, max_size=6))
def test_every_look_matches_its_single_cutoff_on_simulated_logs(seed: int, cuts: list[float]):
    log = make_log(users=80, days=6, seed=seed)
    assert_looks_match_single_cutoffs(log, sorted(T0 + timedelta(days=c) for c in cuts))
