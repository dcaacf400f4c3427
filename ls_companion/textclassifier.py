"""TF-IDF + logistic regression for single-choice and multi-label text classification.

Features are word n-grams, character n-grams within word boundaries (``char_wb``) or both side by side
(``union``: each part l2-normalized on its own); ``class_weight="balanced"`` reweights rare classes.
``text_candidates`` lists the fixed set of configurations a project's training run chooses from by
cross-validation (``ls_companion.modelselect``); the first is the default when labels are too few.

Prediction does not go through sklearn: ``TfidfVectorizer.transform`` and ``predict_proba`` spend
more time on generality and input validation than on the arithmetic (about half of a 1,000-task
batch, most of a single-task request). ``_fast_features`` recomputes exactly the fitted vectorizers'
features (same token pattern, lowercasing, word and char_wb n-grams, sublinear tf, idf and l2 norm; a
unit test compares them for every candidate) and the logits are sparse-dense products with the fitted
weights, so every candidate that can win is served by the fast path.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Sequence
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import csr_matrix, hstack
from scipy.special import expit, softmax
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from ls_companion.modelselect import Candidate

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
Features = Literal["word", "char", "union", "none"]

#: Logit used for a label that is always (or never) present in the training data.
_CONSTANT_LOGIT = 30.0
#: One-character words ("u", "2", "x") carry signal in short texts, so they are tokens too.
TOKEN_PATTERN = r"(?u)\b\w+\b"
#: Character n-gram lengths of the char and union features.
CHAR_RANGE = (2, 5)
#: Words whose character n-gram columns a classifier caches before starting over.
_CACHE_WORDS = 200_000


class TextClassifier:
    """Single-choice (softmax over classes) or multi-label (one sigmoid per class) text classifier.

    ``fit`` takes one label per text (single) or a list of labels per text (multi). An untrained
    classifier predicts nothing: ``predict_proba`` raises until ``fit`` has run.
    """

    def __init__(
        self,
        kind: Literal["single", "multi"] = "single",
        *,
        features: Features = "word",
        C: float = 10.0,
        class_weight: Literal["balanced"] | None = None,
        ngram_range: tuple[int, int] = (1, 2),
        min_df: int = 1,
        max_iter: int = 2000,
    ) -> None:
        self.kind = kind
        self.features = features
        self.C = C
        self.class_weight = class_weight
        self.ngram_range = ngram_range
        self.min_df = min_df
        self.max_iter = max_iter

    def fit(self, texts: Sequence[str], labels: Sequence[str] | Sequence[Sequence[str]]) -> TextClassifier:
        if len(texts) != len(labels):
            raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
        analyzers = {"word": ("word",), "char": ("char_wb",), "union": ("word", "char_wb"), "none": ()}[
            self.features
        ]
        self.vectorizers_ = tuple(
            TfidfVectorizer(
                analyzer=analyzer,
                ngram_range=self.ngram_range if analyzer == "word" else CHAR_RANGE,
                sublinear_tf=True,
                min_df=self.min_df,
                token_pattern=TOKEN_PATTERN if analyzer == "word" else None,
                dtype=np.float64,
            )
            for analyzer in analyzers
        )
        parts = [v.fit_transform(list(texts)) for v in self.vectorizers_] + self._extra_features(texts)
        matrix = parts[0] if len(parts) == 1 else hstack(parts, format="csr")
        if self.kind == "single":
            self._fit_single(matrix, [str(label) for label in labels])
        else:
            self._fit_multi(matrix, [[str(v) for v in row] for row in labels])
        self.vocabularies_ = tuple(dict(v.vocabulary_) for v in self.vectorizers_)
        self.idfs_ = tuple(np.asarray(v.idf_, dtype=np.float64) for v in self.vectorizers_)
        return self

    def _logistic(self, matrix: csr_matrix, target: object, solver: str) -> LogisticRegression:
        # liblinear's dual form is 10-30x faster when there are fewer texts than features (usual here).
        # liblinear visits the rows in a random order, seeded from NumPy's global RNG when random_state
        # is None: the same labels then gave weights differing by ~1e-5, enough to reorder tied
        # uncertainty ranks (a flaky reproducibility test); a fixed seed makes every fit repeatable.
        rows, columns = matrix.shape
        return LogisticRegression(
            C=self.C,
            max_iter=self.max_iter,
            solver=solver,
            dual=solver == "liblinear" and rows < columns,
            class_weight=self.class_weight,
            random_state=0,
        ).fit(matrix, target)

    def _fit_single(self, matrix: csr_matrix, labels: list[str]) -> None:
        classes = sorted(set(labels))
        if len(classes) < 2:
            raise ValueError("a single-choice classifier needs examples of at least two classes")
        # liblinear solves the binary case ~4x faster than lbfgs on sparse TF-IDF; lbfgs is multinomial.
        model = self._logistic(matrix, labels, "liblinear" if len(classes) == 2 else "lbfgs")
        self.classes_ = tuple(str(c) for c in model.classes_)
        self.coef_ = np.asarray(model.coef_, dtype=np.float64)
        self.intercept_ = np.asarray(model.intercept_, dtype=np.float64)

    def _fit_multi(self, matrix: csr_matrix, labels: list[list[str]]) -> None:
        classes = sorted({v for row in labels for v in row})
        if not classes:
            raise ValueError("a multi-label classifier needs at least one labeled example")
        coef = np.zeros((len(classes), matrix.shape[1]))
        intercept = np.zeros(len(classes))
        for k, name in enumerate(classes):
            target = np.array([name in row for row in labels], dtype=np.int64)
            if target.min() == target.max():  # always or never present: a constant is the best model
                intercept[k] = _CONSTANT_LOGIT if target[0] else -_CONSTANT_LOGIT
                continue
            model = self._logistic(matrix, target, "liblinear")
            coef[k] = model.coef_[0]
            intercept[k] = model.intercept_[0]
        self.classes_ = tuple(classes)
        self.coef_ = coef
        self.intercept_ = intercept

    def predict_proba(self, texts: Sequence[str]) -> FloatArray:
        """(n_texts, n_classes): a distribution per row (single) or independent probabilities (multi)."""
        if not hasattr(self, "coef_"):
            raise ValueError("the classifier is not trained")
        logits = np.zeros((len(texts), self.coef_.shape[0])) + self.intercept_
        offset = 0
        for features in self._fast_features(texts):
            width = features.shape[1]
            logits += np.asarray(features @ self.coef_[:, offset : offset + width].T)
            offset += width
        if self.kind == "multi":
            proba: FloatArray = expit(logits)
        elif self.coef_.shape[0] == 1:  # binary: sklearn keeps one weight row for the second class
            positive = expit(logits[:, 0])
            proba = np.column_stack([1.0 - positive, positive])
        else:
            proba = softmax(logits, axis=1)
        return proba

    def _fast_features(self, texts: Sequence[str]) -> list[csr_matrix]:
        """Each fitted TfidfVectorizer's output for ``texts`` (csr, l2-normalized rows), in order, then
        the extra features."""
        lowered = [text.lower() for text in texts]
        tfidf = [_tfidf(*self._term_ids(k, lowered), len(lowered), idf) for k, idf in enumerate(self.idfs_)]
        return tfidf + self._extra_features(texts)

    def _extra_features(self, texts: Sequence[str]) -> list[csr_matrix]:
        """Feature parts after the TF-IDF ones (none here; ``ls_companion.wordvectors`` adds pooled
        pretrained word vectors)."""
        return []

    def _term_ids(self, part: int, texts: list[str]) -> tuple[IntArray, IntArray]:
        """(row, column) of every in-vocabulary term occurrence of ``texts`` in feature part ``part``.

        Whole-batch numpy and C-level ``map`` instead of a Python loop per term. A word's character
        n-grams do not depend on its neighbours, so their columns are looked up once per word and
        cached (per process, bounded): that keeps character features about as fast as words."""
        vectorizer, vocabulary = self.vectorizers_[part], self.vocabularies_[part]
        low, high = vectorizer.ngram_range
        if vectorizer.analyzer != "char_wb":
            return _word_term_ids(texts, vocabulary, low, high)
        cache = self.__dict__.get("_word_ids")
        if cache is None or len(cache) > _CACHE_WORDS:
            cache = self.__dict__["_word_ids"] = _CharColumns(vocabulary, low, high)
        words_per_text = list(map(str.split, texts))
        per_word = list(map(cache.__getitem__, itertools.chain.from_iterable(words_per_text)))
        word_rows = np.repeat(np.arange(len(texts)), [len(w) for w in words_per_text])
        columns = np.frombuffer(b"".join(per_word), np.int64)
        return np.repeat(word_rows, np.array([len(c) for c in per_word], np.int64) >> 3), columns

    def __getstate__(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if k != "_word_ids"}


class _CharColumns(dict[str, bytes]):
    """A word's in-vocabulary character n-gram columns (int64 bytes: a batch's join in one copy, 5x
    faster than ``np.concatenate`` of arrays), computed on first sight."""

    def __init__(self, vocabulary: dict[str, int], low: int, high: int) -> None:
        super().__init__()
        self.vocabulary, self.low, self.high = vocabulary, low, high

    def __missing__(self, word: str) -> bytes:
        get = self.vocabulary.get
        grams = _char_wb_ngrams(word, self.low, self.high)
        found = [j for g in grams if (j := get(g)) is not None]
        columns = self[word] = np.array(found, dtype=np.int64).tobytes()
        return columns


def text_candidates(kind: Literal["single", "multi"] = "single") -> tuple[Candidate, ...]:
    """The fixed configurations a training run cross-validates, the default (today's model) first.

    Character n-grams catch spelling variants and obfuscation (sms spam), balanced weights rare
    classes; C is the inverse regularisation of the logistic regression."""
    grid: tuple[tuple[str, Features, float, Literal["balanced"] | None], ...] = (
        ("word-C10", "word", 10.0, None),
        ("word-balanced-C10", "word", 10.0, "balanced"),
        ("char-balanced-C10", "char", 10.0, "balanced"),
        ("union-balanced-C10", "union", 10.0, "balanced"),
        ("union-balanced-C30", "union", 30.0, "balanced"),
        ("union-balanced-C3", "union", 3.0, "balanced"),
        ("union-C10", "union", 10.0, None),
    )
    return tuple(
        Candidate(name, functools.partial(TextClassifier, kind, features=f, C=c, class_weight=w))
        for name, f, c, w in grid
    )


def _word_term_ids(
    texts: list[str], vocabulary: dict[str, int], low: int, high: int
) -> tuple[IntArray, IntArray]:
    """(row, column) of the in-vocabulary word n-grams (n in [low, high]) of lowercased ``texts``, as
    sklearn's word analyzer finds them: one regex pass and C-level ``map``s over the whole batch, the
    texts joined by a break that is a token of its own, so that no n-gram across two texts is found in
    a vocabulary (whose terms are words)."""
    tokens, token_rows = _tokens(texts)
    rows, columns = [], []
    for n in range(low, high + 1):
        grams = tokens if n == 1 else map(" ".join, zip(*(tokens[i:] for i in range(n)), strict=False))
        count = max(len(tokens) - n + 1, 0)
        found = np.fromiter(map(vocabulary.get, grams, itertools.repeat(-1)), np.int64, count)
        rows.append(token_rows[:count])
        columns.append(found)
    row, column = np.concatenate(rows), np.concatenate(columns)
    kept = column >= 0
    return row[kept], column[kept]


def _tokens(texts: list[str]) -> tuple[list[str], IntArray]:
    """The TOKEN_PATTERN tokens of all ``texts`` in one list, with a break token between two texts (no
    vocabulary holds it), and each token's text."""
    joined = _BREAK.join(texts)
    if joined.count(_BREAK) >= len(texts):  # a text holds the break itself: a non-word like a space
        joined = _BREAK.join([text.replace(_BREAK, " ") for text in texts])
    tokens = _TOKENS_OR_BREAK.findall(joined)
    return tokens, np.cumsum(np.fromiter(map(_BREAK.__eq__, tokens), bool, len(tokens)))


def _char_wb_ngrams(text: str, low: int, high: int) -> list[str]:
    """sklearn's char_wb analyzer: n-grams of each space-padded word; a short word counts once."""
    terms: list[str] = []
    for word in text.split():
        padded = " " + word + " "
        size = len(padded)
        for n in range(low, high + 1):
            if size <= n:
                terms.append(padded)
                break
            terms += [padded[i : i + n] for i in range(size - n + 1)]
    return terms


def _tfidf(rows: IntArray, columns: IntArray, n_rows: int, idf: FloatArray) -> csr_matrix:
    """Sublinear-tf × idf rows of the term occurrences (``rows``, ``columns``), l2-normalized, as sklearn
    computes them. One sort of row-major keys (32-bit when they fit: twice as fast) counts the terms
    per row, faster than ``sum_duplicates`` or ``np.unique``."""
    width = len(idf)
    keys = (rows * width + columns).astype(np.int32 if n_rows * width < 2**31 else np.int64)
    keys.sort()
    first = np.flatnonzero(np.diff(keys, prepend=-1))
    counts = np.diff(first, append=len(keys))
    keys = keys[first]
    indptr = np.searchsorted(keys, np.arange(n_rows + 1, dtype=keys.dtype) * width)
    row_of = np.repeat(np.arange(n_rows), np.diff(indptr))
    column = keys - row_of * width
    weights = (1.0 + np.log(counts)) * idf[column]
    norms = np.sqrt(np.bincount(row_of, weights=weights * weights, minlength=n_rows))
    return csr_matrix((weights / norms[row_of], column, indptr), shape=(n_rows, width))


#: Joins a batch's texts for ``_word_term_ids``; never part of a word token.
_BREAK = "\x00"
#: TOKEN_PATTERN's tokens (greedy ``\w+`` ends at word boundaries, so its ``\b``s only cost time: 30 %)
#: or a break.
_TOKENS_OR_BREAK = re.compile(r"\w+|" + _BREAK)
