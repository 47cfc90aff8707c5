"""predict() takes pairs as sentence-transformers does: any sequence of (query, document)
pairs, each any ordered sequence of two str, and still refuses non-str items."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

PAIRS = [("what is the boundary layer", "the boundary layer on a flat plate"),
         ("heat transfer", "heat conduction in composite slabs"),
         ("shock waves", "")]


def test_numpy_pandas_and_iterators_equal_a_list_of_tuples(ce):
    want = ce.predict(PAIRS)
    as_array = np.array(PAIRS)  # 2-D array of str: rows are numpy arrays of numpy.str_
    assert as_array.shape == (3, 2)
    np.testing.assert_array_equal(ce.predict(as_array), want)
    np.testing.assert_array_equal(ce.predict(np.array(PAIRS, dtype=object)), want)
    frame = pd.DataFrame(PAIRS, columns=["query", "document"])
    np.testing.assert_array_equal(ce.predict(list(zip(frame["query"], frame["document"]))), want)
    np.testing.assert_array_equal(ce.predict(zip(frame["query"], frame["document"])), want)
    np.testing.assert_array_equal(ce.predict(frame[["query", "document"]].to_numpy()), want)
    np.testing.assert_array_equal(ce.predict([list(p) for p in PAIRS]), want)
    # one pair as a 1-D array is one pair, as a tuple is
    assert ce.predict(np.array(PAIRS[0])) == pytest.approx(float(want[0]), abs=1e-6)


@pytest.mark.parametrize(
    "sentences, message",
    [
        (np.array([["q", 1]], dtype=object), r"sentences\[0\]\[1\] must be str, got int"),
        (np.array([[1.5, 2.5]]), r"sentences\[0\]\[0\] must be str, got float64"),
        ([{"q", "d"}], r"sentences\[0\] must be a \(query, document\) pair .* got set"),
        ([b"qd"], r"sentences\[0\] must be a \(query, document\) pair .* got bytes"),
    ],
)
def test_non_str_items_are_refused(ce, sentences, message):
    with pytest.raises(TypeError, match=message):
        ce.predict(sentences)


def test_three_columns_are_not_a_pair(ce):
    with pytest.raises(ValueError, match=r"sentences\[0\] has 3 elements"):
        ce.predict(np.array([["q", "d", "e"]]))
