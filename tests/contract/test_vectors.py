"""Every vector index backend passes this suite; a subclass only says how to make one (and whether it is exact).

Brute-force numpy (`reference`) is the truth: the exact index must equal it, approximate ones reach a recall.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from scipy import sparse

from streamrec.errors import ChecksumError, ConfigError, DataError, NotFound
from streamrec.storage.vectors import (
    MISSING,
    ExactIndex,
    FaissIndexConfig,
    VectorIndex,
    load_vector_index,
    make_vector_index,
    open_vector_index,
)
from streamrec.storage.vectors.faiss import FaissIndex  # faiss: the `ann` extra, in the test extra `make test` installs

N, D = 5000, 64
RNG = np.random.default_rng(7)
VECTORS = RNG.standard_normal((N, D)).astype(np.float32)
QUERIES = RNG.standard_normal((200, D)).astype(np.float32)
SPARSE_IDS = np.sort(RNG.choice(10**9, size=N, replace=False))[RNG.permutation(N)]  # non-contiguous, shuffled


def reference(vectors: np.ndarray, queries: np.ndarray, k: int, ids: np.ndarray | None = None,
              excluded: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Brute force: full scores, excluded (m × n mask) to -inf, stable sort by (-score, id)."""
    ids = np.arange(len(vectors)) if ids is None else ids
    order = np.argsort(ids, kind="stable")
    scores = (queries @ vectors.T)[:, order]
    if excluded is not None:
        scores[excluded[:, order]] = -np.inf
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return ids[order][top], np.take_along_axis(scores, top, axis=1)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)]))


class VectorIndexContract:
    """Behaviour every VectorIndex has. Subclasses provide `make()` and say whether results are exact."""

    exact: bool = True

    @pytest.fixture(scope="class")
    @classmethod
    def built(cls):
        return cls.make().build(VECTORS, SPARSE_IDS)

    def test_satisfies_the_protocol(self, built):
        assert isinstance(built, VectorIndex)
        assert len(built) == N and built.dim == D

    def test_matches_brute_force(self, built):
        ids, scores = built.search(QUERIES, 10)
        truth, truth_scores = reference(VECTORS, QUERIES, 10, SPARSE_IDS)
        assert ids.shape == scores.shape == (200, 10) and ids.dtype == np.int64 and scores.dtype == np.float32
        if self.exact:
            np.testing.assert_array_equal(ids, truth)
            np.testing.assert_allclose(scores, truth_scores, rtol=1e-4, atol=1e-4)
        else:
            assert recall(ids, truth) >= 0.95

    def test_ids_map_back_and_scores_are_their_inner_products(self, built):
        ids, scores = built.search(QUERIES[:20], 25)
        row_of = {int(i): r for r, i in enumerate(SPARSE_IDS)}
        vectors = VECTORS[[[row_of[int(i)] for i in row] for row in ids]]  # (20, 25, D)
        np.testing.assert_allclose(scores, np.einsum("mkd,md->mk", vectors, QUERIES[:20]), rtol=1e-4, atol=1e-4)
        assert (np.diff(scores, axis=1) <= 0).all()  # best first

    @pytest.mark.parametrize("form", ["ids", "mask", "shared_mask", "sparse"])
    def test_exclusions_are_honoured(self, built, form):
        m, k = 30, 10
        truth, _ = reference(VECTORS, QUERIES[:m], k, SPARSE_IDS)
        excluded = np.zeros((m, N), bool)  # columns in build order
        position = {int(i): j for j, i in enumerate(SPARSE_IDS)}
        for row in range(m):  # the true top 5 of every query, and every 7th item
            excluded[row, [position[int(i)] for i in truth[row, :5]]] = True
        excluded[:, ::7] = True
        if form == "shared_mask":
            excluded[:] = excluded.any(axis=0)
        exclude = {
            "ids": [set(SPARSE_IDS[row].tolist()) | {-5, 10**12} for row in excluded],  # unknown ids are ignored
            "mask": excluded,
            "shared_mask": excluded[0],
            "sparse": sparse.csr_matrix(excluded),
        }[form]
        ids, _ = built.search(QUERIES[:m], k, exclude=exclude)
        for row in range(m):
            assert not set(ids[row].tolist()) & set(SPARSE_IDS[excluded[row]].tolist())
        want, _ = reference(VECTORS, QUERIES[:m], k, SPARSE_IDS, excluded)
        if self.exact:
            np.testing.assert_array_equal(ids, want)
        else:
            assert recall(ids, want) >= 0.9

    def test_too_few_left_after_exclusions_pads_with_missing(self):
        index = self.make().build(VECTORS[:6], np.array([10, 20, 30, 40, 50, 60]))
        ids, scores = index.search(QUERIES[:2], 5, exclude=[{10, 20, 30}, set()])
        assert ids.shape == (2, 5)
        assert set(ids[0, :3].tolist()) == {40, 50, 60} and (ids[0, 3:] == MISSING).all()
        assert np.isneginf(scores[0, 3:]).all() and np.isfinite(scores[0, :3]).all()
        assert (ids[1] != MISSING).all() and np.isfinite(scores[1]).all()

    def test_k_larger_than_the_catalog_returns_every_item(self, built):
        ids, scores = built.search(QUERIES[:3], N + 100)
        assert ids.shape == (3, N)
        for row in ids:
            assert sorted(row.tolist()) == sorted(SPARSE_IDS.tolist())
        assert (np.diff(scores, axis=1) <= 0).all()

    def test_k_zero_and_no_queries(self, built):
        assert built.search(QUERIES[:4], 0)[0].shape == (4, 0)
        assert built.search(np.zeros((0, D), np.float32), 5)[0].shape == (0, 5)

    def test_ties_go_to_the_lower_id(self):
        vectors = np.ones((6, 4), np.float32)
        index = self.make().build(vectors, np.array([50, 10, 40, 20, 60, 30]))
        ids, _ = index.search(np.ones((1, 4), np.float32), 3)
        if self.exact:
            assert ids.tolist() == [[10, 20, 30]]
        else:  # a graph walk may stop at any of the tied items; those it returns are in id order, every time
            assert ids[0].tolist() == sorted(ids[0].tolist())
            np.testing.assert_array_equal(ids, index.search(np.ones((1, 4), np.float32), 3)[0])

    def test_one_dimensional_query_is_one_query(self, built):
        ids, _ = built.search(QUERIES[0], 5)
        np.testing.assert_array_equal(ids, built.search(QUERIES[:1], 5)[0])

    def test_empty_and_unbuilt_indexes_are_clear_errors(self):
        with pytest.raises(DataError, match="no vectors"):
            self.make().build(np.zeros((0, D), np.float32))
        unbuilt = self.make()
        assert len(unbuilt) == 0
        with pytest.raises(NotFound, match="call build"):
            unbuilt.search(QUERIES[:1], 5)
        with pytest.raises(NotFound):
            unbuilt.save("nowhere")

    @pytest.mark.parametrize("vectors, ids, match", [
        (np.full((3, 4), np.nan, np.float32), None, "finite"),
        (np.ones((3, 4), np.float32), np.array([1, 1, 2]), "distinct"),
        (np.ones((3, 4), np.float32), np.array([-1, 1, 2]), "≥ 0"),
        (np.ones((3, 4), np.float32), np.array([1, 2]), "3 integer ids"),
        (np.ones(4, np.float32), None, "2-d"),
    ])
    def test_invalid_build_input_is_rejected(self, vectors, ids, match):
        with pytest.raises(DataError, match=match):
            self.make().build(vectors, ids)

    def test_invalid_search_input_is_rejected(self, built):
        with pytest.raises(DataError, match="shape"):
            built.search(np.ones((2, D + 1), np.float32), 5)
        with pytest.raises(DataError, match="k"):
            built.search(QUERIES[:1], -1)
        with pytest.raises(DataError, match="mask"):
            built.search(QUERIES[:2], 5, exclude=np.zeros((2, 3), bool))
        with pytest.raises(DataError, match="2 queries"):
            built.search(QUERIES[:2], 5, exclude=[{1}])

    def test_save_load_round_trip(self, built, tmp_path):
        built.save(tmp_path / "index")
        assert all(not name.endswith((".pkl", ".pickle")) for name in (p.name for p in (tmp_path / "index").iterdir()))
        loaded = load_vector_index(tmp_path / "index")
        assert type(loaded) is type(built) and loaded.config == built.config and len(loaded) == N
        for exclude in (None, [{int(SPARSE_IDS[0])}] * 20):
            a, sa = built.search(QUERIES[:20], 10, exclude=exclude)
            b, sb = loaded.search(QUERIES[:20], 10, exclude=exclude)
            np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(sa, sb)

    def test_a_changed_file_fails_its_checksum(self, built, tmp_path):
        folder = built.save(tmp_path / "index")
        manifest = json.loads((folder / "manifest.json").read_text())
        for name in manifest["files"]:
            target = folder / name
            original = target.read_bytes()
            tampered = bytearray(original)
            tampered[-1] ^= 0xFF
            target.write_bytes(bytes(tampered))
            with pytest.raises(ChecksumError, match=name):
                load_vector_index(folder)
            target.write_bytes(original)
        load_vector_index(folder)  # untouched again: loads

    def test_missing_or_foreign_folder_is_a_clear_error(self, built, tmp_path):
        with pytest.raises(NotFound, match="manifest"):
            load_vector_index(tmp_path)
        folder = built.save(tmp_path / "index")
        other = ExactIndex if built.kind != "exact" else FaissIndex
        with pytest.raises(ConfigError, match=f"'{built.kind}' vector index"):
            other.load(folder)


class TestExactIndex(VectorIndexContract):
    @classmethod
    def make(cls):
        return make_vector_index("exact", block_mb=1)  # several query blocks even at this size


class TestFaissFlat(VectorIndexContract):
    @classmethod
    def make(cls):
        return make_vector_index("faiss", structure="flat")


class TestFaissHNSW(VectorIndexContract):
    exact = False

    @classmethod
    def make(cls):
        return make_vector_index("faiss", structure="hnsw", m=32, ef_construction=80, ef_search=128)


class TestFaissHNSWL2Reduction(VectorIndexContract):
    exact = False

    @classmethod
    def make(cls):
        return open_vector_index({"type": "faiss", "structure": "hnsw", "metric": "l2_reduction", "ef_search": 512})


# --- the seam around the backends ----------------------------------------------------------------------
def test_factory_rejects_unknown_kinds_and_parameters():
    with pytest.raises(ConfigError, match="unknown vector index kind 'annoy'"):
        make_vector_index("annoy")
    with pytest.raises(ConfigError, match="ef_search"):
        make_vector_index("faiss", ef_search=0)
    with pytest.raises(ConfigError, match="no_such"):
        make_vector_index("exact", no_such=1)
    with pytest.raises(ConfigError, match="invalid vector index config"):
        open_vector_index({"type": "nope"})


def test_auto_structure_is_flat_for_small_catalogs_and_hnsw_above():
    small = make_vector_index("faiss", flat_below=100).build(VECTORS[:99])
    large = make_vector_index("faiss", flat_below=100).build(VECTORS[:100])
    assert (small.structure, large.structure) == ("flat", "hnsw")
    assert open_vector_index(FaissIndexConfig(structure="flat")).config.structure == "flat"


def test_the_core_imports_and_searches_without_faiss():
    code = (
        "import sys; sys.modules['faiss'] = None\n"  # import faiss now fails, as when the extra is missing
        "import numpy as np\n"
        "from streamrec.errors import ConfigError\n"
        "from streamrec.storage.vectors import make_vector_index\n"
        "index = make_vector_index('exact').build(np.eye(3, dtype=np.float32))\n"
        "assert index.search(np.eye(3, dtype=np.float32), 1)[0].ravel().tolist() == [0, 1, 2]\n"
        "try:\n"
        "    make_vector_index('faiss').build(np.eye(3, dtype=np.float32))\n"
        "except ConfigError as exc:\n"
        "    assert 'streamrec[ann]' in str(exc), exc\n"
        "else:\n"
        "    raise SystemExit('faiss backend built without faiss')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_als_item_factors_through_the_index_equal_the_model_recommendations():
    """The fit for the candidate pipeline: ALS item factors indexed, user factors as queries, seen excluded."""
    from streamrec.models.als import ALS
    from tests.contract.test_models import planted

    data, _ = planted()
    model = ALS(factors=16, iterations=5).fit(data)
    users = np.arange(40)
    history = data.matrix[users]
    want, _ = model.recommend(history, k=20, users=users)
    for kind in ("exact", "faiss"):
        index = make_vector_index(kind).build(model.item_factors_)  # ids: item columns
        ids, _ = index.search(model.user_factors_[users], 20, exclude=history)
        np.testing.assert_array_equal(ids, want)
