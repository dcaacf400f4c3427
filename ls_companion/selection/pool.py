"""The scored pool that strategies choose from, and the selection they return.

A pool is column-oriented (numpy arrays aligned on ``ids``) so that a million items cost a few hundred
megabytes, never a million Python dicts.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from ls_companion.uncertainty import MEASURES as UNCERTAINTY_MEASURES

FloatArray = NDArray[np.float64]
IndexArray = NDArray[np.intp]
Kind = Literal["single", "multi", "spans"]
#: The uncertainty measures a scored pool carries (``ls_companion.uncertainty``; higher = more uncertain).
MEASURES = tuple(UNCERTAINTY_MEASURES)


@dataclass(frozen=True)
class ScoredPool:
    """Items still to choose from: unique string ids, their uncertainty, optional probabilities and features.

    ``measures`` is empty when there is no model yet (cold start). ``proba`` holds class probabilities
    (``kind="single"``) or independent per-class probabilities (``kind="multi"``). ``features`` (dense
    or scipy sparse, one row per id) feed the clustering strategies.
    """

    ids: NDArray[np.str_]
    measures: Mapping[str, FloatArray] = field(default_factory=dict)
    proba: NDArray[np.floating[Any]] | None = None
    kind: Kind = "single"
    classes: tuple[str, ...] = ()
    features: Any = None

    def __post_init__(self) -> None:
        ids = np.asarray(self.ids, dtype=np.str_)
        object.__setattr__(self, "ids", ids)
        n = ids.shape[0]
        if ids.ndim != 1:
            raise ValueError("ids must be one-dimensional")
        if len(np.unique(ids)) != n:
            raise ValueError("pool ids must be unique")
        for name, values in self.measures.items():
            if name not in MEASURES:
                raise ValueError(f"unknown uncertainty measure {name!r}")
            if np.shape(values) != (n,):
                raise ValueError(f"measure {name!r} has shape {np.shape(values)}, expected ({n},)")
        if self.proba is not None and (self.proba.ndim != 2 or self.proba.shape[0] != n):
            raise ValueError(f"proba has shape {self.proba.shape}, expected ({n}, classes)")
        if self.features is not None and self.features.shape[0] != n:
            raise ValueError(f"features have {self.features.shape[0]} rows, expected {n}")

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def has_model(self) -> bool:
        return bool(self.measures)

    def measure(self, name: str) -> FloatArray:
        if name not in self.measures:
            raise ValueError(f"the pool has no {name!r} scores (no model yet?)")
        return np.asarray(self.measures[name], dtype=np.float64)

    def subset(self, index: IndexArray) -> ScoredPool:
        """The rows at ``index``, in that order."""
        return ScoredPool(
            ids=self.ids[index],
            measures={k: np.asarray(v)[index] for k, v in self.measures.items()},
            proba=self.proba[index] if self.proba is not None else None,
            kind=self.kind,
            classes=self.classes,
            features=self.features[index] if self.features is not None else None,
        )


@dataclass(frozen=True)
class Selection:
    """Chosen ids, most wanted first, and (clustering strategies) a group id per chosen item."""

    ids: tuple[str, ...]
    strategy: str
    clusters: Mapping[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)


def eligible(pool: ScoredPool, exclude: Collection[str] = ()) -> IndexArray:
    """Row indices of the pool whose id is not excluded, in pool order."""
    if not exclude:
        return np.arange(len(pool), dtype=np.intp)
    excluded = np.fromiter((str(x) for x in exclude), dtype=object, count=len(exclude)).astype(np.str_)
    return np.flatnonzero(~np.isin(pool.ids, excluded)).astype(np.intp)
