"""Active-learning strategies: small classes with one ``select`` method over a precomputed ``ScoredPool``.

Every strategy returns at most ``n`` distinct ids that are not excluded, most wanted first, and is
deterministic for a given ``numpy.random.Generator`` state. The random control slice of a batch is
added by ``ls_companion.selection.plan``, not here.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection, Iterable
from typing import Protocol

import numpy as np
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning

from ls_companion.errors import InputError
from ls_companion.selection.features import DEFAULT_DIMS, dense_features
from ls_companion.selection.pool import FloatArray, IndexArray, ScoredPool, Selection, eligible

#: Names accepted on the command line, in the order they are documented.
STRATEGY_NAMES = ("random", "least-confidence", "margin", "entropy", "diversity", "hybrid", "balanced")
#: Strategies usable before any model exists.
COLD_START_NAMES = ("diversity", "random")
DEFAULT_GROUPS = 10

# When two items tie on the chosen measure, the other measures decide, then chance.
_TIE_BREAKERS = {
    "least_confidence": ("margin", "entropy"),
    "margin": ("least_confidence", "entropy"),
    "entropy": ("margin", "least_confidence"),
}


class Strategy(Protocol):
    """What the selection pipeline needs from a strategy."""

    @property
    def name(self) -> str: ...

    @property
    def needs_model(self) -> bool: ...

    @property
    def needs_features(self) -> bool: ...

    def select(
        self, pool: ScoredPool, n: int, rng: np.random.Generator, *, exclude: Collection[str] = ()
    ) -> Selection: ...


def top_uncertain(
    pool: ScoredPool, index: IndexArray, measure: str, rng: np.random.Generator, limit: int
) -> IndexArray:
    """Up to ``limit`` rows of ``index``, most uncertain first (ties: other measures, then chance)."""
    if limit <= 0 or len(index) == 0:
        return index[:0]
    primary = pool.measure(measure)[index]
    if len(index) > limit:  # only the top ``limit`` and whatever ties with the last of them get sorted
        threshold = -np.partition(-primary, limit - 1)[limit - 1]
        keep = primary >= threshold
        index, primary = index[keep], primary[keep]
    keys: list[FloatArray] = [rng.random(len(index))]
    for other in reversed(_TIE_BREAKERS[measure]):
        if other in pool.measures:
            keys.append(-pool.measure(other)[index])
    keys.append(-primary)
    ranked: IndexArray = index[np.lexsort(keys)][:limit]
    return ranked


def _take(pool: ScoredPool, rows: IndexArray, name: str, clusters: dict[str, int] | None = None) -> Selection:
    return Selection(ids=tuple(str(i) for i in pool.ids[rows]), strategy=name, clusters=clusters or {})


def _dense(pool: ScoredPool, rows: IndexArray, seed: int, name: str) -> FloatArray:
    if pool.features is None:
        raise ValueError(f"the {name} strategy needs features for the pool")
    return dense_features(pool.features[rows], dims=DEFAULT_DIMS, seed=seed)


def _representatives(
    features: FloatArray, k: int, seed: int, weights: FloatArray | None = None
) -> tuple[IndexArray, IndexArray]:
    """k-means with ``k`` clusters: the row nearest each centroid (largest clusters first), and all labels."""
    model = KMeans(n_clusters=k, n_init=1, max_iter=100, random_state=seed)
    with warnings.catch_warnings():  # duplicate rows may leave fewer distinct clusters than asked
        warnings.simplefilter("ignore", ConvergenceWarning)
        labels = model.fit_predict(features, sample_weight=weights)
    distance = ((features - model.cluster_centers_[labels]) ** 2).sum(axis=1)
    order = np.lexsort((distance, labels))
    first = order[np.r_[True, labels[order][1:] != labels[order][:-1]]]
    sizes = np.bincount(labels, minlength=k)
    nearest: IndexArray = first[np.argsort(-sizes[labels[first]], kind="stable")]
    return nearest, labels.astype(np.intp)


def _fill(chosen: IndexArray, size: int, n: int, rng: np.random.Generator) -> IndexArray:
    """``chosen`` topped up at random from the other rows of ``range(size)`` until it holds ``n``."""
    if len(chosen) >= n:
        return chosen[:n]
    rest = np.setdiff1d(np.arange(size), chosen)
    extra = rng.permutation(rest)[: n - len(chosen)]
    filled: IndexArray = np.concatenate([chosen, extra]).astype(np.intp)
    return filled


def _groups(features: FloatArray, n_groups: int, seed: int) -> IndexArray:
    """A coarse group per chosen item, for LS's least-solved-cluster ordering (``predictions.cluster``)."""
    k = min(n_groups, len(features))
    if k <= 1:
        return np.zeros(len(features), dtype=np.intp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        labels = KMeans(n_clusters=k, n_init=1, random_state=seed).fit_predict(features)
    return np.asarray(labels, dtype=np.intp)


def _clusters(
    pool: ScoredPool, rows: IndexArray, features: FloatArray, n_groups: int, seed: int
) -> dict[str, int]:
    groups = _groups(features, n_groups, seed)
    return {str(pool.ids[r]): int(g) for r, g in zip(rows, groups, strict=True)}


class RandomSampling:
    """Uniform sampling: the control every other strategy is measured against."""

    name = "random"
    needs_model = False
    needs_features = False

    def select(
        self, pool: ScoredPool, n: int, rng: np.random.Generator, *, exclude: Collection[str] = ()
    ) -> Selection:
        index = eligible(pool, exclude)
        take = max(0, min(n, len(index)))
        return _take(pool, index[rng.choice(len(index), size=take, replace=False)], self.name)


class UncertaintySampling:
    """The ``n`` most uncertain items by one measure: least confidence, margin or entropy."""

    needs_model = True
    needs_features = False

    def __init__(self, measure: str = "entropy") -> None:
        if measure not in _TIE_BREAKERS:
            raise ValueError(f"unknown uncertainty measure {measure!r}")
        self.measure = measure
        self.name = measure.replace("_", "-")

    def select(
        self, pool: ScoredPool, n: int, rng: np.random.Generator, *, exclude: Collection[str] = ()
    ) -> Selection:
        return _take(pool, top_uncertain(pool, eligible(pool, exclude), self.measure, rng, n), self.name)


def _pick_representatives(
    pool: ScoredPool,
    index: IndexArray,
    n: int,
    rng: np.random.Generator,
    name: str,
    n_groups: int,
    weights: FloatArray | None = None,
) -> Selection:
    """The n items of ``index`` nearest the centroids of a (``weights``-weighted) k-means, topped up at
    random; with weights, the most uncertain first. Diversity and hybrid differ only in their input."""
    seed = int(rng.integers(2**31 - 1))
    features = _dense(pool, index, seed, name)
    local: IndexArray
    if n >= len(index):
        local = np.arange(len(index), dtype=np.intp)
    else:
        nearest, _ = _representatives(features, n, seed, weights)
        local = _fill(nearest, len(index), n, rng)
        if weights is not None:
            local = local[np.argsort(-weights[local], kind="stable")]
    rows = index[local]
    return _take(pool, rows, name, _clusters(pool, rows, features[local], n_groups, seed))


class DiversitySampling:
    """k-means with ``n`` clusters over the features; the item nearest each centroid (no model needed)."""

    name = "diversity"
    needs_model = False
    needs_features = True

    def __init__(self, n_groups: int = DEFAULT_GROUPS) -> None:
        self.n_groups = n_groups

    def select(
        self, pool: ScoredPool, n: int, rng: np.random.Generator, *, exclude: Collection[str] = ()
    ) -> Selection:
        index = eligible(pool, exclude)
        if n <= 0 or len(index) == 0:
            return Selection((), self.name)
        return _pick_representatives(pool, index, n, rng, self.name, self.n_groups)


#: Hybrid sampling's default candidates: this many times the batch size of the most uncertain items.
TOP_FACTOR = 10


class HybridSampling:
    """The ``top_m`` most uncertain items (default 10 × n), then uncertainty-weighted k-means down to n."""

    name = "hybrid"
    needs_model = True
    needs_features = True

    def __init__(
        self,
        measure: str = "entropy",
        *,
        top_m: int | None = None,
        n_groups: int = DEFAULT_GROUPS,
    ) -> None:
        self.measure = measure
        self.top_m = top_m
        self.n_groups = n_groups

    def select(
        self, pool: ScoredPool, n: int, rng: np.random.Generator, *, exclude: Collection[str] = ()
    ) -> Selection:
        index = eligible(pool, exclude)
        if n <= 0 or len(index) == 0:
            return Selection((), self.name)
        limit = max(n, self.top_m if self.top_m is not None else TOP_FACTOR * n)
        candidates = top_uncertain(pool, index, self.measure, rng, limit)
        weights = pool.measure(self.measure)[candidates] + 1e-6
        return _pick_representatives(pool, candidates, n, rng, self.name, self.n_groups, weights)


class BalancedSampling:
    """Uncertainty sampling taken in turn from each predicted class, so rare classes get their share."""

    name = "balanced"
    needs_model = True
    needs_features = False

    def __init__(self, measure: str = "entropy") -> None:
        self.measure = measure

    def select(
        self, pool: ScoredPool, n: int, rng: np.random.Generator, *, exclude: Collection[str] = ()
    ) -> Selection:
        index = eligible(pool, exclude)
        if n <= 0 or len(index) == 0:
            return Selection((), self.name)
        if pool.proba is None:  # sequences: no class to balance on
            return _take(pool, top_uncertain(pool, index, self.measure, rng, n), self.name)
        predicted = np.asarray(pool.proba[index]).argmax(axis=1)
        per_class = [
            top_uncertain(pool, index[predicted == c], self.measure, rng, n) for c in np.unique(predicted)
        ]
        # Round robin: every class's most uncertain item, then every class's second, ...
        per_class.sort(key=lambda rows: -float(pool.measure(self.measure)[rows[0]]))
        rounds = max((len(rows) for rows in per_class), default=0)
        order = [rows[r] for r in range(rounds) for rows in per_class if r < len(rows)]
        return _take(pool, np.asarray(order[:n], dtype=np.intp), self.name)


def make_strategy(
    name: str, *, measure: str = "entropy", top_m: int | None = None, n_groups: int = DEFAULT_GROUPS
) -> Strategy:
    """The strategy called ``name`` on the command line (``STRATEGY_NAMES``)."""
    if name == "random":
        return RandomSampling()
    if name in ("least-confidence", "margin", "entropy"):
        return UncertaintySampling(name.replace("-", "_"))
    if name == "diversity":
        return DiversitySampling(n_groups=n_groups)
    if name == "hybrid":
        return HybridSampling(measure, top_m=top_m, n_groups=n_groups)
    if name == "balanced":
        return BalancedSampling(measure)
    raise InputError(_unknown(name))


def _unknown(name: str) -> str:
    return f"unknown strategy {name!r} (use one of {', '.join(STRATEGY_NAMES)})"


def check_names(strategies: Iterable[str], cold_start: str) -> None:
    """Every named strategy and the cold-start strategy exist (checked before any work starts)."""
    for name in strategies:
        if name not in STRATEGY_NAMES:
            raise InputError(_unknown(name))
    if cold_start not in COLD_START_NAMES:
        raise InputError(f"--cold-start must be one of {', '.join(COLD_START_NAMES)}")
