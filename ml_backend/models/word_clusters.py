"""Word clusters from pretrained word vectors: distributional features for the span tagger.

A CRF trained on a few thousand annotated sentences has never seen most entity names it meets later.
Clusters of pretrained vectors (GloVe, fastText, word2vec) say which known words a new word behaves
like ("kanye" sits with "beyonce" and "rihanna", "paris" with "berlin"), at a few granularities. This is the
classic semi-supervised feature for NER (Turian et al. 2010; Guo et al. 2014); on WNUT-17 it adds
about 3.5 F1 points to the tagger (see docs/ml-backend.md).

``ml-backend word-clusters VECTORS OUT`` builds a cluster file once; ``WORD_CLUSTERS`` points the
backend at it. A cluster file is an ``.npz`` of plain arrays, read with ``allow_pickle=False``. A
trained tagger keeps its own copy, so a model predicts with the clusters it was trained with.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.cluster import MiniBatchKMeans

from ls_companion.files import atomic_writer
from ml_backend.errors import ConfigurationError

#: Cluster counts: coarse word classes, finer ones, and near-synonym groups.
DEFAULT_SIZES = (50, 200, 1000)
#: Words kept, in the file's order (GloVe and fastText files list the most frequent words first).
DEFAULT_LIMIT = 200_000


class WordClusters:
    """Lower-cased word -> its cluster id at each of ``sizes`` granularities.

    Pickled with a model, the words travel as one UTF-8 blob; unpickling gives back the instance this
    process already holds for the same content, so projects trained with one cluster file share it.
    """

    def __init__(self, words: Sequence[str], codes: NDArray[np.int32], sizes: Sequence[int]) -> None:
        if codes.shape != (len(words), len(sizes)):
            raise ValueError(f"codes of shape {codes.shape} for {len(words)} words and {len(sizes)} sizes")
        self.sizes = tuple(int(size) for size in sizes)
        self._codes = codes.astype(np.int32)
        # a fixed-width unicode array would be 20x larger than the blob
        self._blob = np.frombuffer("\n".join(words).encode("utf-8"), dtype=np.uint8)
        names = [str(k) for k in range(max(self.sizes, default=0))]  # shared, not one string per word
        self._index = {
            word: tuple(names[c] for c in row) for word, row in zip(words, self._codes.tolist(), strict=True)
        }
        self.digest = _digest(self._blob, self._codes, self.sizes)

    def __len__(self) -> int:
        return len(self._index)

    def of(self, word: str) -> tuple[str, ...] | None:
        """Cluster ids of ``word`` (lower-cased by the caller), or None for a word without a vector."""
        return self._index.get(word)

    def save(self, path: Path) -> None:
        """Write the cluster file atomically: a reader never sees half of one."""
        with atomic_writer(path) as out:
            np.savez_compressed(out, words=self._blob, codes=self._codes, sizes=np.array(self.sizes))

    @classmethod
    def load(cls, path: Path) -> WordClusters:
        try:
            with np.load(path, allow_pickle=False) as data:
                return _shared(data["words"], data["codes"], tuple(data["sizes"].tolist()))
        except (OSError, KeyError, ValueError) as exc:
            raise ConfigurationError(f"WORD_CLUSTERS: {path} is not a word-cluster file ({exc})") from None

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return _shared, (self._blob, self._codes, self.sizes)


_LOADED: weakref.WeakValueDictionary[str, WordClusters] = weakref.WeakValueDictionary()


def _digest(blob: NDArray[np.uint8], codes: NDArray[np.int32], sizes: tuple[int, ...]) -> str:
    digest = hashlib.sha256(blob.tobytes())
    digest.update(codes.astype(np.int32).tobytes())
    digest.update(repr(tuple(int(size) for size in sizes)).encode())
    return digest.hexdigest()


def _shared(blob: NDArray[np.uint8], codes: NDArray[np.int32], sizes: tuple[int, ...]) -> WordClusters:
    """The instance of this content this process holds already, else a new one."""
    found = _LOADED.get(_digest(blob, codes, sizes))
    if found is None:
        found = WordClusters(bytes(blob).decode("utf-8").split("\n"), codes, sizes)
        _LOADED[found.digest] = found
    return found


def build_clusters(
    words: Sequence[str], vectors: NDArray[np.float32], sizes: Sequence[int] = DEFAULT_SIZES, seed: int = 0
) -> WordClusters:
    """k-means of the unit-length ``vectors`` (cosine geometry) at every size in ``sizes``."""
    if len(words) != len(vectors):
        raise ValueError(f"{len(words)} words but {len(vectors)} vectors")
    if len(words) < max(sizes):
        raise ValueError(f"{len(words)} words cannot make {max(sizes)} clusters")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.maximum(norms, 1e-12)
    columns = [
        MiniBatchKMeans(size, random_state=seed, batch_size=4096, n_init=1).fit(unit).labels_
        for size in sizes
    ]
    return WordClusters(words, np.stack(columns, axis=1).astype(np.int32), sizes)


def read_vectors(path: Path, limit: int = DEFAULT_LIMIT) -> tuple[list[str], NDArray[np.float32]]:
    """The first ``limit`` distinct lower-cased words of a GloVe, word2vec or fastText text file.

    One word and its numbers per line, optionally gzipped; a first line of two integers (the
    word2vec/fastText header) is skipped. Where cased words share a lower-case form, the first wins.
    """
    words: list[str] = []
    rows: list[NDArray[np.float32]] = []
    seen: set[str] = set()
    width = 0
    for number, line in enumerate(_lines(path), start=1):
        parts = line.rstrip().split(" ")
        if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
            continue
        if len(parts) < 3:
            raise ConfigurationError(f"{path}:{number}: expected a word and its vector")
        width = width or len(parts) - 1
        if len(parts) - 1 != width:
            raise ConfigurationError(
                f"{path}:{number}: {len(parts) - 1} numbers, the file started with {width}"
            )
        word = parts[0].lower()
        if word in seen:
            continue
        try:
            rows.append(np.array(parts[1:], dtype=np.float32))
        except ValueError:
            raise ConfigurationError(
                f"{path}:{number}: the vector holds something that is not a number"
            ) from None
        seen.add(word)
        words.append(word)
        if len(words) >= limit:
            break
    if not words:
        raise ConfigurationError(f"{path}: no vectors in the file")
    return words, np.stack(rows)


def _lines(path: Path) -> Iterator[str]:
    try:
        with (
            gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb") as raw,
            io.TextIOWrapper(raw, encoding="utf-8", errors="replace") as text,
        ):
            yield from text
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror or exc}") from None
