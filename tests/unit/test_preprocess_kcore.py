"""k-core filtering: rounds on a hand-built graph, and the core's properties against a reference under hypothesis."""

from __future__ import annotations

from collections import Counter

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamrec.errors import DataError, NotFound
from streamrec.preprocess import KCoreRound, kcore_filter


def make_db(pairs: list[tuple[str, str]]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("CREATE TABLE ia (user_id VARCHAR, item_id VARCHAR, weight DOUBLE)")
    if pairs:
        con.executemany("INSERT INTO ia VALUES (?, ?, 1.0)", [list(p) for p in pairs])
    return con


def rows(con: duckdb.DuckDBPyConnection, table: str) -> set[tuple[str, str]]:
    return set(con.execute(f"SELECT user_id, item_id FROM {table}").fetchall())


def reference_core(pairs: set[tuple[str, str]], min_user: int, min_item: int) -> set[tuple[str, str]]:
    """The textbook loop, one pair at a time: what the SQL must agree with."""
    left = set(pairs)
    while True:
        users = Counter(u for u, _ in left)
        items = Counter(i for _, i in left)
        keep = {(u, i) for u, i in left if users[u] >= min_user and items[i] >= min_item}
        if keep == left:
            return left
        left = keep


def test_rounds_until_stable():
    # u3 has one title; dropping it leaves title c with one user, whose removal leaves u2 with one title ...
    pairs = [("u1", "a"), ("u1", "b"), ("u2", "a"), ("u2", "b"), ("u2", "c"), ("u3", "c"), ("u4", "c"), ("u4", "d")]
    con = make_db(pairs)
    result = kcore_filter(con, "ia", 2, 2, output="core", temporary=True)
    assert rows(con, "core") == {("u1", "a"), ("u1", "b"), ("u2", "a"), ("u2", "b")}
    assert result.rounds == [
        KCoreRound(1, users_removed=1, items_removed=1, rows_removed=2),  # u3; d (with u4's d)
        KCoreRound(2, users_removed=1, items_removed=0, rows_removed=1),  # u4 (left with c only)
        KCoreRound(3, users_removed=0, items_removed=1, rows_removed=1),  # c (only u2 now)
    ]
    assert (result.rows_before, result.rows_after) == (8, 4)
    assert (result.users_before, result.users_after, result.items_before, result.items_after) == (4, 2, 4, 2)
    assert [d[0] for d in con.execute("SELECT * FROM core").description] == ["user_id", "item_id", "weight"]


def test_one_core_keeps_everything_in_zero_rounds():
    con = make_db([("u1", "a"), ("u2", "b")])
    result = kcore_filter(con, "ia", 1, 1, output="core", temporary=True)
    assert result.rounds == [] and result.rows_after == 2


def test_everything_can_go():
    con = make_db([("u1", "a"), ("u2", "b")])
    result = kcore_filter(con, "ia", 2, 1, output="core")
    assert result.rows_after == 0 and rows(con, "core") == set()


def test_bad_inputs_are_named():
    con = make_db([])
    with pytest.raises(NotFound, match="nope"):
        kcore_filter(con, "nope", 2, 2)
    con.execute("CREATE TABLE other (user_id VARCHAR)")
    with pytest.raises(DataError, match="item_id"):
        kcore_filter(con, "other", 2, 2)
    with pytest.raises(ValueError):
        kcore_filter(con, "ia", 0, 2)


graphs = st.sets(st.tuples(st.sampled_from([f"u{n}" for n in range(8)]), st.sampled_from("abcdefgh")), max_size=40)


@settings(max_examples=40, deadline=None)
@given(pairs=graphs, min_user=st.integers(1, 4), min_item=st.integers(1, 4))
def test_core_properties(pairs, min_user, min_item):
    con = make_db(sorted(pairs))
    result = kcore_filter(con, "ia", min_user, min_item, output="core", temporary=True)
    core = rows(con, "core")
    assert core <= pairs  # never adds rows
    assert core == reference_core(pairs, min_user, min_item)  # the maximal core, not just any subset
    assert all(n >= min_user for n in Counter(u for u, _ in core).values())
    assert all(n >= min_item for n in Counter(i for _, i in core).values())
    assert result.rows_before - sum(r.rows_removed for r in result.rounds) == result.rows_after == len(core)
    again = kcore_filter(con, "core", min_user, min_item, output="core2", temporary=True)
    assert rows(con, "core2") == core and again.rounds == []  # idempotent
