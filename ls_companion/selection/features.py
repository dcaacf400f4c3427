"""Features for the clustering strategies: TF-IDF of the item texts, reduced to a few dense dimensions.

Hashing needs no vocabulary, so any chunk of a huge pool can be featurized on its own; the reduction
(truncated SVD) keeps k-means centroids small (``dims`` floats each instead of 2**18).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
from sklearn.preprocessing import normalize

from ls_companion.selection.pool import FloatArray

_HASHER = HashingVectorizer(
    n_features=2**18, alternate_sign=False, ngram_range=(1, 2), norm=None, dtype=np.float32
)
DEFAULT_DIMS = 64


def hashed_counts(texts: Sequence[str]) -> Any:
    """Sparse hashed word 1-2-gram counts (stateless: chunks of a pool can be done separately)."""
    return _HASHER.transform(texts)


def tfidf(counts: Any) -> Any:
    """TF-IDF (sublinear tf, idf over these rows) of hashed counts, rows l2-normalized."""
    return TfidfTransformer(sublinear_tf=True).fit_transform(counts)


def dense_features(matrix: Any, *, dims: int = DEFAULT_DIMS, seed: int = 0) -> FloatArray:
    """``matrix`` (dense or sparse) as dense rows of at most ``dims`` columns, l2-normalized.

    Wide or sparse input is reduced with truncated SVD (LSA), so that k-means on it stays cheap.
    """
    if hasattr(matrix, "tocsr"):  # hashed columns no row uses only slow the SVD down: drop them
        matrix = matrix.tocsr()
        matrix = matrix[:, np.unique(matrix.indices)]
    n_rows, n_cols = matrix.shape
    if not hasattr(matrix, "toarray") and n_cols <= dims:
        dense = np.asarray(matrix, dtype=np.float64)
    elif n_rows < 3 or n_cols < 3:
        dense = np.asarray(matrix.toarray() if hasattr(matrix, "toarray") else matrix, dtype=np.float64)
    else:
        components = max(1, min(dims, n_rows - 1, n_cols - 1))
        dense = TruncatedSVD(n_components=components, random_state=seed).fit_transform(matrix)
    result: FloatArray = normalize(np.asarray(dense, dtype=np.float64))
    return result


def text_features(texts: Sequence[str], *, dims: int = DEFAULT_DIMS, seed: int = 0) -> FloatArray:
    """Dense LSA features of a set of texts, ready for k-means."""
    return dense_features(tfidf(hashed_counts(texts)), dims=dims, seed=seed)
