"""Pretrained word vectors as text-classification features: a text is the weighted mean of its words' vectors.

A TF-IDF model knows only the words of its training texts: with 200 labels it has never seen most
words of a new review. Pretrained vectors (GloVe) place an unseen "abysmal" beside the "awful" it
has seen, so the mean vector of a text carries its sentiment over (the classic neural bag of words).

- ``WordVectors(words, vectors)``: lower-cased words and their vectors, kept as float16 (100,000
  GloVe 100-d words: 20 MB), most frequent first. ``pool(texts)`` is the weighted mean of the unit
  vectors of each text's tokens (the TF-IDF token pattern, lower-cased; rarer words weigh more, a word
  without a vector takes its stem's; a text without one gets zeros). ``save``/``load`` write and read
  an ``.npz`` of plain arrays (``allow_pickle=False``), made once by ``ml-backend word-vectors``.
  Pickled with a model, the vectors travel with it; unpickling gives back the instance this process
  already holds for the same content.
- ``VectorTextClassifier``: ``TextClassifier`` with the pooled vector, standardised on the training
  texts and scaled to unit expected norm (like each l2-normalised TF-IDF part), as one more feature
  part: alone (``features="none"``) or beside word and character n-grams. Prediction stays on the
  fast path (one gather of the vectors of the known tokens and a sparse product).
- ``vector_candidates(vectors)``: the candidates model selection adds when the backend has vectors;
  ``single_choice_candidates(vectors)`` the whole list a training run selects from.
"""

from __future__ import annotations

import hashlib
import itertools
import weakref
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import csr_matrix

from ls_companion.files import atomic_writer
from ls_companion.modelselect import Candidate
from ls_companion.textclassifier import _CACHE_WORDS, FloatArray, TextClassifier, _tokens, text_candidates

#: A word's weight in its text's vector is rank / (rank + WEIGHT_RANK), rank 1 being the file's first (most
#: frequent) word: SIF weighting (Arora et al. 2017, a / (a + p(w)) with p(w) from Zipf's law, a = 3e-5),
#: so the 2,500 most frequent words count less than half and the rare, telling ones about fully.
WEIGHT_RANK = 2500
#: Endings taken off a word that has no vector, in order, to give it its stem's ("adorableness" ->
#: "adorable", "admirations" -> "admiration"); none that turns the meaning round ("-less").
SUFFIXES = (
    ("iness", "y"), ("ily", "y"), ("ies", "y"), ("ied", "y"), ("ness", ""), ("ments", ""), ("ment", ""),
    ("ly", ""), ("ing", ""), ("ing", "e"), ("ed", ""), ("ed", "e"), ("d", ""), ("es", ""), ("s", ""),
    ("er", ""), ("est", ""),
)  # fmt: skip
#: Shortest stem a suffix may leave.
_MIN_STEM = 3


class WordVectors:
    """Lower-cased word -> its pretrained vector (float16), and the mean vector of a text."""

    def __init__(self, words: Sequence[str], vectors: NDArray[np.floating[Any]]) -> None:
        if len(vectors.shape) != 2 or vectors.shape[0] != len(words):
            raise ValueError(f"vectors of shape {vectors.shape} for {len(words)} words")
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float16)
        self._blob = np.frombuffer("\n".join(words).encode("utf-8"), dtype=np.uint8)
        self._index = {word: k for k, word in enumerate(words)}
        self.digest = _digest(self._blob, self.vectors)
        rank = np.arange(1, len(words) + 1, dtype=np.float64)
        self._weights = rank / (rank + WEIGHT_RANK)
        # the norms summed in float64 without a float64 copy of the matrix (160 MB at peak for 100k words)
        norms = np.sqrt(np.einsum("ij,ij->i", self.vectors, self.vectors, dtype=np.float64))
        self._unit = 1.0 / np.maximum(norms, 1e-12)[:, None]
        self._stems = _Stems(self._index)
        _LOADED.setdefault(self.digest, self)

    def __len__(self) -> int:
        return len(self._index)

    @property
    def dimensions(self) -> int:
        return int(self.vectors.shape[1])

    def pool(self, texts: Sequence[str], *, weighted: bool = True) -> FloatArray:
        """(n_texts, dimensions): each text's known tokens' unit vectors, averaged with the WEIGHT_RANK
        weights; a token without a vector takes its stem's (SUFFIXES); zeros for a text without one.
        ``weighted=False``: the plain mean of the raw vectors of the tokens found as they are (how
        models trained before the weighting pool)."""
        tokens, rows = _tokens([text.lower() for text in texts])
        ids = np.fromiter(map(self._index.get, tokens, itertools.repeat(-1)), np.int64, len(tokens))
        if weighted and (missing := np.flatnonzero(ids < 0)).size:
            if len(self._stems) > _CACHE_WORDS:
                self._stems = _Stems(self._index)
            ids[missing] = list(map(self._stems.__getitem__, [tokens[i] for i in missing]))
        kept = ids >= 0
        rows, ids = rows[kept], ids[kept]
        weights = self._weights[ids] if weighted else np.ones(len(ids))
        totals = np.bincount(rows, weights=weights if weighted else None, minlength=len(texts))
        means = csr_matrix(
            (weights / totals[rows], (rows, np.arange(len(ids)))), shape=(len(texts), len(ids))
        )
        scale = self._unit[ids] if weighted else 1.0
        pooled: FloatArray = np.asarray(means @ (self.vectors[ids].astype(np.float64) * scale))
        return pooled

    def save(self, path: Path) -> None:
        """Write the vectors file atomically: a reader never sees half of one."""
        with atomic_writer(path) as out:
            np.savez(out, words=self._blob, vectors=self.vectors)

    @classmethod
    def load(cls, path: Path) -> WordVectors:
        """The vectors of a file ``save`` wrote (ValueError: not such a file)."""
        try:
            with np.load(path, allow_pickle=False) as data:
                return _shared(data["words"], data["vectors"])
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"{path} is not a word-vectors file ({exc})") from None

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return _shared, (self._blob, self.vectors)


_LOADED: weakref.WeakValueDictionary[str, WordVectors] = weakref.WeakValueDictionary()


def _digest(blob: NDArray[np.uint8], vectors: NDArray[np.float16]) -> str:
    return hashlib.sha256(blob.tobytes() + vectors.tobytes()).hexdigest()


def _shared(blob: NDArray[np.uint8], vectors: NDArray[np.float16]) -> WordVectors:
    """The instance of this content this process holds already, else a new one."""
    found = _LOADED.get(_digest(blob, np.ascontiguousarray(vectors, dtype=np.float16)))
    if found is None:
        found = WordVectors(bytes(blob).decode("utf-8").split("\n"), vectors)
        _LOADED[found.digest] = found
    return found


class _Stems(dict[str, int]):
    """A word without a vector -> the row of its stem's (-1: none), found on first sight (SUFFIXES)."""

    def __init__(self, index: dict[str, int]) -> None:
        super().__init__()
        self.index = index

    def __missing__(self, word: str) -> int:
        found = -1
        for suffix, replacement in SUFFIXES:
            if word.endswith(suffix) and len(word) - len(suffix) >= _MIN_STEM:
                found = self.index.get(word[: -len(suffix)] + replacement, -1)
                if found >= 0:
                    break
        self[word] = found
        return found


class VectorTextClassifier(TextClassifier):
    """``TextClassifier`` whose features end with the text's pooled word vector, standardised."""

    def __init__(
        self, kind: Literal["single", "multi"] = "single", *, vectors: WordVectors, **options: Any
    ) -> None:
        super().__init__(kind, **options)
        self.vectors = vectors

    def fit(
        self, texts: Sequence[str], labels: Sequence[str] | Sequence[Sequence[str]]
    ) -> VectorTextClassifier:
        self.weighted_ = True
        pooled = self.vectors.pool(texts)
        self.center_ = pooled.mean(axis=0)
        # unit variance per dimension, then 1/sqrt(d): about unit norm, like each TF-IDF part
        self.scale_ = np.maximum(pooled.std(axis=0), 1e-6) * np.sqrt(self.vectors.dimensions)
        super().fit(texts, labels)
        return self

    def _extra_features(self, texts: Sequence[str]) -> list[csr_matrix]:
        # a model pickled before the weighting (no weighted_) pools as it was trained
        pooled = self.vectors.pool(texts, weighted=self.__dict__.get("weighted_", False))
        return [csr_matrix((pooled - self.center_) / self.scale_)]


class _MakeWithVectors:
    """A vector candidate's ``make``. A stored ``SelectedModel`` keeps its candidates but never makes one
    again, so this pickles as the digest of its vectors, not the 20 MB of them: a version whose winner
    is a TF-IDF candidate stays small (a winning vector model carries its own copy)."""

    def __init__(self, vectors: WordVectors | None, digest: str, options: dict[str, Any]) -> None:
        self.vectors, self.digest, self.options = vectors, digest, options

    def __call__(self) -> VectorTextClassifier:
        if self.vectors is None:
            raise ValueError(f"the word vectors {self.digest[:12]} of this candidate are not loaded")
        return VectorTextClassifier("single", vectors=self.vectors, **self.options)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return _make_with_vectors, (self.digest, self.options)


def _make_with_vectors(digest: str, options: dict[str, Any]) -> _MakeWithVectors:
    return _MakeWithVectors(_LOADED.get(digest), digest, options)


def vector_candidates(vectors: WordVectors) -> tuple[Candidate, ...]:
    """The pooled vectors alone (C=1: measured on the sentiment set and WNUT-17 at 50-1,000 labels, 100
    dense features want more regularisation than C=10) and beside word + character n-grams (C=10),
    both class-balanced."""
    grid = (("vectors-balanced-C1", "none", 1.0), ("union+vectors-balanced-C10", "union", 10.0))
    return tuple(
        Candidate(
            name,
            _MakeWithVectors(vectors, vectors.digest, {"features": f, "C": c, "class_weight": "balanced"}),
        )
        for name, f, c in grid
    )


@lru_cache(maxsize=2)
def candidates_with(path: Path | None) -> tuple[Candidate, ...]:
    """``single_choice_candidates`` with the vectors of the WORD_VECTORS file at ``path`` (None: none),
    read once per process (ValueError: not a word-vectors file)."""
    return single_choice_candidates(WordVectors.load(path) if path is not None else None)


def single_choice_candidates(vectors: WordVectors | None) -> tuple[Candidate, ...]:
    """What a single-choice training run selects from: the TF-IDF candidates, then, with vectors,
    theirs. Last, so that where the search budget binds (many labels, where the vectors add least) the
    TF-IDF candidates are scored as without vectors (measured on sms_spam at 300 labels: placed right
    after the default, they pushed the best TF-IDF candidates out of the budget)."""
    return text_candidates("single") + (vector_candidates(vectors) if vectors is not None else ())
