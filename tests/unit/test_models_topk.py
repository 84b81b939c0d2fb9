"""top_k (shared by every model's recommend) against a stable full sort."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from streamrec.models.base import top_k

SCORES = arrays(np.float32, st.tuples(st.integers(1, 6), st.integers(1, 40)),
                elements=st.sampled_from([-np.inf, -1.0, 0.0, 0.5, 1.0, 2.0]))


@given(SCORES, st.integers(0, 50))
def test_matches_a_stable_sort_with_ties_to_the_lower_index(scores, k):
    idx, values = top_k(scores, k)
    expected = np.argsort(-scores, axis=1, kind="stable")[:, : min(k, scores.shape[1])]
    assert idx.dtype == np.int64
    np.testing.assert_array_equal(idx, expected)
    np.testing.assert_array_equal(values, np.take_along_axis(scores, expected, axis=1))
