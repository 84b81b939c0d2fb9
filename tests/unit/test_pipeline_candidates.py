"""Candidate generation: quotas, the union with every source's score and rank, provenance, recall."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from streamrec.data.interactions import Interactions
from streamrec.errors import ConfigError
from streamrec.models import create_model
from streamrec.pipeline import FixedListSource, ModelSource, candidate_recall, gather


def data(seed: int = 0, n_users: int = 40, n_items: int = 30) -> Interactions:
    rng = np.random.default_rng(seed)
    dense = (rng.random((n_users, n_items)) < 0.2).astype(np.float32)
    return Interactions(sparse.csr_matrix(dense), np.array([f"u{i}" for i in range(n_users)], dtype=object),
                        np.array([f"t{i}" for i in range(n_items)], dtype=object))


def test_union_keeps_each_sources_rank_and_score_and_the_first_source_as_origin():
    train = data()
    ease = create_model("ease", l2=10.0, num_threads=1).fit(train)
    pop = create_model("popularity").fit(train)
    new = FixedListSource("new_releases", np.array([29, 28, 27, 26, 25]), train.n_items)
    sources = [ModelSource("ease", ease), ModelSource("trending", pop), new]
    quotas = {"ease": 5, "trending": 3, "new_releases": 2}
    rows = np.arange(train.n_users)
    cands = gather(sources, quotas, train.matrix, rows)
    seen = train.matrix.toarray() > 0
    assert not seen[cands.row, cands.col].any()  # nothing already watched
    assert len(np.unique(cands.row * train.n_items + cands.col)) == len(cands.row)  # each (row, title) once
    for s, (source, name) in enumerate(zip(sources, quotas)):
        cols, scores = source.propose(train.matrix, rows, quotas[name])
        proposed = cands.rank[s] >= 0
        assert np.bincount(cands.row[proposed], minlength=train.n_users).max() <= quotas[name]
        for r in (0, 7, 21):
            mine = proposed & (cands.row == r)
            order = np.argsort(cands.rank[s][mine])
            assert cands.col[mine][order].tolist() == [c for c, v in zip(cols[r], scores[r]) if np.isfinite(v)]
            np.testing.assert_allclose(cands.score[s][mine][order], scores[r][np.isfinite(scores[r])])
    # provenance: the first source in the given order that proposed the title
    first = np.argmax(cands.rank >= 0, axis=0)
    np.testing.assert_array_equal(cands.origin, first)
    per_row = cands.per_row(train.n_users)
    assert all(len(c) <= sum(quotas.values()) for c in per_row)
    assert sum(len(c) for c in per_row) == len(cands.row)


def test_recall_per_source_and_combined_matches_a_direct_count():
    train = data(1)
    ease = create_model("ease", l2=10.0, num_threads=1).fit(train)
    pop = create_model("popularity").fit(train)
    cands = gather([ModelSource("ease", ease), ModelSource("trending", pop)], {"ease": 4, "trending": 4},
                   train.matrix, np.arange(train.n_users))
    rng = np.random.default_rng(3)
    relevant = sparse.csr_matrix((rng.random((train.n_users, train.n_items + 2)) < 0.1).astype(np.float32))
    recall = candidate_recall(cands, relevant)
    pairs = set(zip(*relevant.nonzero()))
    for s, name in enumerate(cands.sources):
        mine = {(r, c) for r, c, k in zip(cands.row, cands.col, cands.rank[s]) if k >= 0}
        assert recall[name] == pytest.approx(len(pairs & mine) / len(pairs))
    assert recall["all"] == pytest.approx(len(pairs & set(zip(cands.row, cands.col))) / len(pairs))
    assert recall["all"] >= max(recall["ease"], recall["trending"])


def test_sources_need_distinct_names_and_a_quota():
    train = data()
    pop = create_model("popularity").fit(train)
    with pytest.raises(ConfigError, match="need a quota"):
        gather([ModelSource("trending", pop)], {}, train.matrix)
    with pytest.raises(ConfigError, match="distinct names"):
        gather([ModelSource("a", pop), ModelSource("a", pop)], {"a": 2}, train.matrix)


def test_new_releases_are_the_titles_released_in_the_window_newest_first():
    from datetime import date, datetime

    import pyarrow as pa

    from streamrec.pipeline.sources import new_release_cols

    titles = pa.table({"item_id": ["a", "b", "c", "d", "x"],
                       "release_date": pa.array([date(2026, 1, 1), date(2026, 2, 20), date(2026, 3, 1),
                                                 date(2026, 3, 5), date(2026, 2, 25)], pa.date32())})
    cols = new_release_cols(titles, np.array(["a", "b", "c", "d"], dtype=object), datetime(2026, 3, 2), days=30)
    assert cols.tolist() == [2, 1]  # c then b; a is too old, d not out yet, x is not in the training vocabulary
    assert new_release_cols(None, np.array(["a"], dtype=object), datetime(2026, 3, 2), 30).tolist() == []


def test_continue_watching_lists_started_unfinished_titles_latest_first_and_skips_seen():
    from datetime import datetime, timedelta

    import duckdb
    import pyarrow as pa

    from streamrec.evaluation.runner import prepare
    from streamrec.evaluation.splits import Split
    from streamrec.pipeline.candidates import PerUserListSource
    from streamrec.pipeline.sources import continue_watching

    t0 = datetime(2026, 5, 1)
    train = pa.table({"user_id": ["u1", "u1", "u2"], "item_id": ["a", "b", "c"], "weight": [1.0, 1.0, 1.0]})
    test = pa.table({"user_id": ["u1", "u2"], "item_id": ["c", "a"], "weight": [1.0, 1.0]})
    data = prepare(Split("t", train, test))
    events = pa.table({
        "user_id": ["u1", "u1", "u1", "u1", "u2", "u1"],
        "item_id": ["c", "b", "a", "a", "a", "c"],
        "type": ["progress", "progress", "progress", "complete", "play", "progress"],
        "fraction": [0.3, 0.5, 0.2, 1.0, None, 0.95],
        "ts": pa.array([t0 - timedelta(hours=5), t0 - timedelta(hours=1), t0 - timedelta(hours=9),
                        t0 - timedelta(hours=8), t0 - timedelta(hours=2), t0 + timedelta(hours=1)],
                       pa.timestamp("us")),
    })
    con = duckdb.connect()
    con.register("events", events)
    lists = continue_watching(con, data, t0, "events")
    user_row = {u: i for i, u in enumerate(data.user_ids)}
    item = {c: i for i, c in enumerate(data.train.item_ids)}
    # u1: b (1 h ago), c (5 h ago; finished only after t0), not a (completed); u2: a (played, never finished)
    assert lists[user_row["u1"]].tolist() == [item["b"], item["c"]]
    assert lists[user_row["u2"]].tolist() == [item["a"]]
    cols, _ = PerUserListSource("continue_watching", lists, data.train.n_items).propose(
        data.history, data.rows, 5)
    assert cols[user_row["u1"]].tolist()[:2] == [item["c"], -1]  # b is in u1's training history: seen, dropped


def test_impressed_but_unwatched_titles_join_the_training_candidates_without_a_source():
    from datetime import datetime, timedelta

    import duckdb
    import pyarrow as pa

    from streamrec.evaluation.runner import prepare
    from streamrec.evaluation.splits import Split
    from streamrec.pipeline.stages import with_impressed

    t0 = datetime(2026, 5, 1)
    train = pa.table({"user_id": ["u1", "u2"], "item_id": ["a", "b"], "weight": [1.0, 1.0]})
    test = pa.table({"user_id": ["u1"], "item_id": ["c"], "weight": [1.0]})
    data = prepare(Split("t", train, test))
    only_a = FixedListSource("editorial", np.array([data.train.item_index["a"]]), data.train.n_items)
    cands = gather([only_a], {"editorial": 1}, data.history, data.rows)  # u2 gets a; u1 has seen a
    at = lambda h: t0 + timedelta(hours=h)  # noqa: E731
    events = pa.table({"user_id": ["u1", "u1", "u1", "u1", "u2"], "item_id": ["b", "c", "c", "a", "a"],
                       "type": ["impression", "impression", "play", "impression", "impression"],
                       "ts": pa.array([at(1), at(2), at(3), at(4), at(-5)], pa.timestamp("us"))})
    con = duckdb.connect()
    con.register("events", events)
    out = with_impressed(con, cands, data, t0, at(10), "events")
    items = data.train.item_ids
    added = {(data.user_ids[r], items[c]) for r, c, o in zip(out.row, out.col, out.origin) if o < 0}
    # u1 was shown b (added: shown, not played), c (unknown to training) and a (in u1's history); u2's impression
    # came before the period
    assert added == {("u1", "b")}
    assert np.all(np.diff(out.row) >= 0) and len(out.row) == len(cands.row) + len(added)
    assert np.isnan(out.score[:, out.origin < 0]).all() and (out.rank[:, out.origin < 0] == -1).all()


@pytest.mark.parametrize("kind", ["exact", "faiss"])
def test_als_through_a_vector_index_proposes_what_the_model_ranks(kind):
    """The exact index is the reference (the same titles as ALS's own top-k, seen ones excluded); faiss (flat on a
    small catalog, HNSW forced here) must find nearly all of them."""
    from streamrec.pipeline.candidates import VectorSource
    from streamrec.storage.vectors import make_vector_index

    train = data(seed=3, n_users=60, n_items=200)
    model = create_model("als", factors=16, iterations=5).fit(train)
    params = {"structure": "hnsw", "m": 16, "ef_search": 128} if kind == "faiss" else {}
    index = make_vector_index(kind, **params).build(model.item_factors_)
    history = train.matrix.tocsr()
    users = np.arange(history.shape[0])
    direct_cols, _ = ModelSource("als", model).propose(history, users, 20)
    via_cols, via_scores = VectorSource("als", model, index).propose(history, users, 20)
    seen = [set(history.indices[history.indptr[r]:history.indptr[r + 1]]) for r in users]
    assert all(not set(via_cols[r][via_cols[r] >= 0]) & seen[r] for r in users)
    overlap = np.mean([len(set(direct_cols[r]) & set(via_cols[r])) / 20 for r in users])
    assert overlap == 1.0 if kind == "exact" else overlap >= 0.9
    assert (np.diff(via_scores, axis=1) <= 1e-6).all()


def test_sources_propose_block_by_block_exactly_as_all_rows_at_once(monkeypatch):
    """Dense rows × titles scores are built a few rows at a time (memory), with the same proposals."""
    from streamrec.models import _neighbors

    train = data(seed=4, n_users=23)
    ease = create_model("ease", l2=10.0, num_threads=1).fit(train)
    sources = [ModelSource("ease", ease), FixedListSource("new_releases", np.array([29, 3, 28, 5]), train.n_items)]
    rows = np.arange(train.n_users)
    whole = [source.propose(train.matrix, rows, 6) for source in sources]
    monkeypatch.setattr(_neighbors, "BLOCK_ELEMENTS", 2 * train.n_items)  # blocks of 2 rows: 12 of them
    blocked = [source.propose(train.matrix, rows, 6) for source in sources]
    for (cols, scores), (got_cols, got_scores) in zip(whole, blocked):
        assert got_cols.shape == (train.n_users, 6)
        np.testing.assert_array_equal(got_cols, cols)
        np.testing.assert_array_equal(got_scores, scores)
