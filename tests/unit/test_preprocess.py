"""Preprocessing: sessions, bot flagging and the whole run (one transaction, deterministic) on hand-built events."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import count, pairwise
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import streamrec.preprocess.pipeline as pipeline_module
from streamrec.errors import ConfigError, DataError, NotFound
from streamrec.events.schema import EVENT_ARROW_SCHEMA, events_table_ddl
from streamrec.preprocess import BOT_COLUMNS, flag_bots, run_preprocess, session_summary, sessionize
from streamrec.settings import PreprocessConfig

T0 = datetime(2024, 1, 1)
_ids = count()


def ev(user: str, item: str, type_: str, t: float, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": f"e{next(_ids):07d}",
        "user_id": user,
        "item_id": item,
        "type": type_,
        "ts": T0 + timedelta(seconds=t),
        **fields,
    }


def make_db(rows: list[dict[str, Any]], con: duckdb.DuckDBPyConnection | None = None) -> duckdb.DuckDBPyConnection:
    con = con or duckdb.connect()
    con.execute(events_table_ddl("events"))
    batch = pa.Table.from_pylist(rows, schema=EVENT_ARROW_SCHEMA)  # noqa: F841 - read by DuckDB by name
    con.execute("INSERT INTO events BY NAME SELECT * FROM batch")
    return con


def normal_user(user: str, n_titles: int = 20, start_s: float = 0) -> list[dict[str, Any]]:
    """A person: a page of impressions, then a play and progress on a title every 40 minutes (60+ events)."""
    rows = []
    for k in range(n_titles):
        t = start_s + k * 2400
        rows += [ev(user, f"t{(k + j) % 30}", "impression", t, position=j, request_id=f"{user}-r{k}") for j in range(2)]
        rows += [
            ev(user, f"t{k % 30}", "play", t + 5),
            ev(user, f"t{k % 30}", "progress", t + 1200, fraction=0.5, watched_s=1195.0),
        ]
    return rows


# ---- sessions -----------------------------------------------------------------------------------------------


def test_sessions_split_at_gaps_longer_than_gap_s():
    con = make_db([ev("a", "x", "play", t) for t in (0, 100, 1900, 3701)] + [ev("b", "x", "play", 50)])
    view = sessionize(con, "events", 1800)
    got = con.execute(
        f"SELECT user_id, epoch(ts) - epoch(TIMESTAMP '2024-01-01'), session_id, session_seq "
        f"FROM {view} ORDER BY user_id, ts"
    ).fetchall()
    assert got == [
        ("a", 0, "a:1", 1),
        ("a", 100, "a:1", 1),
        ("a", 1900, "a:1", 1),  # a gap of exactly 1800 stays
        ("a", 3701, "a:2", 2),
        ("b", 50, "b:1", 1),
    ]
    summary = session_summary(con, view)
    assert con.execute(f"SELECT session_id, n_events, duration_s FROM {summary}").fetchall() == [
        ("a:1", 3, 1900.0),
        ("a:2", 1, 0.0),
        ("b:1", 1, 0.0),
    ]


def test_sessionize_materialized_keeps_every_column():
    con = make_db([ev("a", "x", "progress", 0, fraction=0.2, watched_s=60.0)])
    table = sessionize(con, "events", 60, output="s", materialize=True)
    cols = [d[0] for d in con.execute(f"SELECT * FROM {table}").description]
    assert cols[:3] == ["event_id", "user_id", "item_id"] and cols[-2:] == ["session_seq", "session_id"]


@settings(max_examples=40, deadline=None)
@given(
    times=st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 20_000)), min_size=1, max_size=40),
    gap=st.integers(1, 5000),
)
def test_sessions_partition_each_users_events(times, gap):
    con = make_db([ev(u, "x", "play", t) for u, t in times])
    view = sessionize(con, "events", gap)
    got = con.execute(f"SELECT user_id, epoch_us(ts) // 1000000, session_id, session_seq FROM {view}").fetchall()
    assert len(got) == len(times)  # every event exactly once
    base = int(T0.timestamp())
    by_user: dict[str, list[tuple[int, str, int]]] = {}
    for user, t, sid, seq in got:
        assert sid == f"{user}:{seq}"  # a session never spans users
        by_user.setdefault(user, []).append((t - base, sid, seq))
    for events in by_user.values():
        events.sort(key=lambda e: (e[0], e[2]))
        assert events[0][2] == 1
        for (t1, _, s1), (t2, _, s2) in pairwise(events):
            assert s2 == (s1 + 1 if t2 - t1 > gap else s1)  # a new session exactly at each long gap


# ---- bots -----------------------------------------------------------------------------------------------------


def bot_rows() -> list[dict[str, Any]]:
    """One user with 10,000 events in 10 minutes (plays and progress over 100 titles)."""
    return [
        ev("bot", f"t{k % 100}", "play" if k % 2 else "progress", k * 0.06, fraction=None if k % 2 else 0.1)
        for k in range(10_000)
    ]


@pytest.fixture
def store_with_bot() -> duckdb.DuckDBPyConnection:
    rows = bot_rows()
    for n in range(5):
        rows += normal_user(f"person{n}", start_s=n * 300)
    return make_db(rows)


def test_bot_is_flagged_and_people_are_not(store_with_bot):
    con = store_with_bot
    flag_bots(con, "events", PreprocessConfig(), output="flagged", temporary=True)
    assert [d[0] for d in con.execute("SELECT * FROM flagged").description] == list(BOT_COLUMNS)
    got = con.execute("SELECT user_id, reason, n_events, max_actions_per_min, max_titles_per_hour FROM flagged")
    assert got.fetchall() == [("bot", "event_rate,titles_per_hour", 10_000, 1000, 100)]


def test_run_preprocess_removes_the_bot_and_reports_it(store_with_bot):
    con = store_with_bot
    report = run_preprocess(con, PreprocessConfig())
    assert (report.events_in, report.users_in) == (10_000 + 5 * 80, 6)
    assert (report.bot_users, report.bot_events) == (1, 10_000)
    assert report.bot_reasons == {"event_rate": 1, "titles_per_hour": 1}
    assert con.execute("SELECT count(*) FROM interactions WHERE user_id = 'bot'").fetchone() == (0,)
    assert con.execute("SELECT count(DISTINCT user_id) FROM interactions").fetchone() == (5,)
    assert con.execute("SELECT count(*) FROM impressions_only WHERE user_id = 'bot'").fetchone() == (0,)
    assert report.interactions_out == con.execute("SELECT count(*) FROM interactions").fetchone()[0] > 0


def test_watch_time_bot():
    # 100 titles reported fully watched (2h each) within one day, at a pace of four titles an hour
    rows = []
    for k in range(100):
        rows += [
            ev("binger", f"t{k}", "play", k * 800),
            ev("binger", f"t{k}", "complete", k * 800 + 700, watched_s=7200.0, fraction=1.0),
        ]
    got = run_preprocess(con := make_db(rows), PreprocessConfig())
    assert got.bot_reasons == {"watch_time": 1}
    assert con.execute("SELECT max_watched_s_per_window FROM bots").fetchone() == (7200.0 * 100,)


def test_cumulative_progress_of_one_title_is_counted_once():
    # a 3-hour film reported every 10 minutes: position grows to 10,800 s, not 10,800 s per report
    rows = [ev("viewer", "film", "play", 0)] + [
        ev("viewer", "film", "progress", k * 600, watched_s=k * 600.0, fraction=k / 18) for k in range(1, 19)
    ] * 3  # the same viewing three times (three copies of each report stay cumulative)
    con = make_db(rows)
    flag_bots(con, "events", PreprocessConfig(bot_min_events=1), output="b", temporary=True)
    assert con.execute("SELECT count(*) FROM b").fetchone() == (0,)


def test_titles_per_hour_bot_and_threshold():
    rows = [ev("zapper", f"t{k}", "play", k * 30) for k in range(100)]  # 100 titles in 50 minutes, 2 a minute
    con = make_db(rows)
    flag_bots(con, "events", PreprocessConfig(), output="b", temporary=True)
    assert con.execute("SELECT reason, max_titles_per_hour FROM b").fetchall() == [("titles_per_hour", 100)]
    flag_bots(con, "events", PreprocessConfig(bot_max_titles_per_hour=100), output="b", temporary=True)
    assert con.execute("SELECT count(*) FROM b").fetchone() == (0,)


def test_small_users_are_not_judged():
    con = make_db([ev("quick", f"t{k}", "play", k * 0.1) for k in range(49)])  # fast, but under bot_min_events
    flag_bots(con, "events", PreprocessConfig(), output="b", temporary=True)
    assert con.execute("SELECT count(*) FROM b").fetchone() == (0,)


def test_impressions_of_one_page_count_as_one_action():
    # 40 pages of 30 titles within a minute: 1,200 impressions but 40 actions
    rows = [
        ev("browser", f"t{j}", "impression", p, position=j, request_id=f"r{p}") for p in range(40) for j in range(30)
    ]
    con = make_db(rows)
    flag_bots(con, "events", PreprocessConfig(), output="b", temporary=True)
    assert con.execute("SELECT count(*) FROM b").fetchone() == (0,)
    flag_bots(con, "events", PreprocessConfig(bot_max_events_per_min=39), output="b", temporary=True)
    assert con.execute("SELECT reason, max_actions_per_min FROM b").fetchall() == [("event_rate", 40)]


def test_rating_bursts_count_only_when_configured():
    con = make_db([ev("ml_user", f"m{k}", "rating", k * 0.2, rating=4.0) for k in range(300)])  # 300/min
    flag_bots(con, "events", PreprocessConfig(), output="b", temporary=True)
    assert con.execute("SELECT count(*) FROM b").fetchone() == (0,)
    cfg = PreprocessConfig(bot_rate_types=["rating"])
    flag_bots(con, "events", cfg, output="b", temporary=True)
    assert con.execute("SELECT reason, max_actions_per_min FROM b").fetchall() == [("event_rate", 300)]


# ---- the whole run ------------------------------------------------------------------------------------------


def _tables(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[Any, ...]]]:
    return {t: con.execute(f"SELECT * FROM {t}").fetchall() for t in ("bots", "interactions", "impressions_only")}


def test_run_is_deterministic_and_applies_kcore():
    rows = bot_rows()
    for n in range(6):
        rows += normal_user(f"p{n}", n_titles=5 + 4 * n, start_s=n * 77)
    cfg = PreprocessConfig(min_user_interactions=10, min_item_interactions=2)
    first, second = make_db(rows), make_db(list(reversed(rows)))
    r1, r2 = run_preprocess(first, cfg), run_preprocess(second, cfg)
    assert _tables(first) == _tables(second)
    assert {k: v for k, v in r1.as_dict().items() if "seconds" not in k} == {
        k: v for k, v in r2.as_dict().items() if "seconds" not in k
    }
    assert r1.users_before_kcore == 6 and r1.users_after_kcore == 4  # p0 (5 titles) and p1 (9) are too sparse
    assert r1.kcore_rounds and r1.interactions_out < r1.interactions_before_kcore
    users = con_users = first.execute("SELECT user_id, count(*) FROM interactions GROUP BY 1").fetchall()
    assert all(n >= 10 for _, n in users) and len(con_users) == 4
    assert len(r1.summary_lines()) == 5


def test_a_failed_run_leaves_the_previous_tables(store_with_bot, monkeypatch):
    con = store_with_bot
    run_preprocess(con, PreprocessConfig())
    before = _tables(con)
    con.execute("INSERT INTO events (event_id, user_id, item_id, type, ts) VALUES ('new', 'p9', 'z', 'play', ?)", [T0])

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(pipeline_module, "kcore_filter", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        run_preprocess(con, PreprocessConfig(bot_max_events_per_min=1, bot_min_events=1))
    assert _tables(con) == before
    leftovers = con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = 'temp'").fetchone()
    assert leftovers == (0,)
    monkeypatch.undo()
    run_preprocess(con, PreprocessConfig())  # the connection is usable again
    assert con.execute("SELECT count(*) FROM interactions WHERE user_id = 'p9'").fetchone() == (1,)


def test_run_inside_the_callers_transaction_is_committed_by_the_caller(store_with_bot):
    con = store_with_bot
    con.begin()
    run_preprocess(con, PreprocessConfig())
    con.rollback()
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'interactions'").fetchone() == (0,)


def test_run_on_a_staged_view():
    con = make_db(normal_user("a") + normal_user("b"))
    con.execute("CREATE TEMP VIEW batch AS SELECT * FROM events WHERE user_id = 'a'")
    report = run_preprocess(con, PreprocessConfig(), source="batch")
    assert report.events_in == 80 and report.users_after_kcore == 1


def test_bad_sources_are_named():
    con = make_db([])
    with pytest.raises(NotFound, match="missing"):
        run_preprocess(con, PreprocessConfig(), source="missing")
    con.execute("CREATE TABLE thin AS SELECT user_id, item_id FROM events")
    with pytest.raises(DataError, match="thin: missing column"):
        run_preprocess(con, PreprocessConfig(), source="thin")
    with pytest.raises(ConfigError):
        run_preprocess(con, PreprocessConfig(), source="events; DROP TABLE events")
