"""Pretrained word vectors as text-classification features: a text is the mean of its words' vectors.

A TF-IDF model knows only the words of its training texts: with 200 labels it has never seen most
words of a new review. Pretrained vectors (GloVe) place an unseen "abysmal" beside the "awful" it
has seen, so the mean vector of a text carries its sentiment over (the classic neural bag of words).

- ``WordVectors(words, vectors)``: lower-cased words and their vectors, kept as float16 (100,000
  GloVe 100-d words: 20 MB). ``pool(texts)`` is the mean vector of each text's known tokens (the
  TF-IDF token pattern, lower-cased; a text without one gets zeros). ``save``/``load`` write and read
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
from ls_companion.textclassifier import FloatArray, TextClassifier, _word_term_ids, text_candidates


class WordVectors:
    """Lower-cased word -> its pretrained vector (float16), and the mean vector of a text."""

    def __init__(self, words: Sequence[str], vectors: NDArray[np.floating[Any]]) -> None:
        if len(vectors.shape) != 2 or vectors.shape[0] != len(words):
            raise ValueError(f"vectors of shape {vectors.shape} for {len(words)} words")
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float16)
        self._blob = np.frombuffer("\n".join(words).encode("utf-8"), dtype=np.uint8)
        self._index = {word: k for k, word in enumerate(words)}
        self.digest = _digest(self._blob, self.vectors)
        _LOADED.setdefault(self.digest, self)

    def __len__(self) -> int:
        return len(self._index)

    @property
    def dimensions(self) -> int:
        return int(self.vectors.shape[1])

    def pool(self, texts: Sequence[str]) -> FloatArray:
        """(n_texts, dimensions): the mean vector of each text's known tokens (zeros without one)."""
        rows, ids = _word_term_ids([text.lower() for text in texts], self._index, 1, 1)
        counts = np.bincount(rows, minlength=len(texts))
        weights = 1.0 / counts[rows]
        means = csr_matrix((weights, (rows, np.arange(len(ids)))), shape=(len(texts), len(ids)))
        pooled: FloatArray = np.asarray(means @ self.vectors[ids].astype(np.float64))
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
        pooled = self.vectors.pool(texts)
        self.center_ = pooled.mean(axis=0)
        # unit variance per dimension, then 1/sqrt(d): about unit norm, like each TF-IDF part
        self.scale_ = np.maximum(pooled.std(axis=0), 1e-6) * np.sqrt(self.vectors.dimensions)
        super().fit(texts, labels)
        return self

    def _extra_features(self, texts: Sequence[str]) -> list[csr_matrix]:
        return [csr_matrix((self.vectors.pool(texts) - self.center_) / self.scale_)]


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
    """The pooled vectors alone, and beside word + character n-grams (both class-balanced, C=10)."""
    return tuple(
        Candidate(
            name,
            _MakeWithVectors(vectors, vectors.digest, {"features": f, "C": 10.0, "class_weight": "balanced"}),
        )
        for name, f in (("vectors-balanced-C10", "none"), ("union+vectors-balanced-C10", "union"))
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
