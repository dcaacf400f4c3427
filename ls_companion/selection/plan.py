"""One batch, planned: gold items, the strategy's picks and the random control slice, in import order.

Pure and deterministic for a given generator state, so that a rerun after a crash recomputes the
same plan (see ``ls_companion.selection.rounds``).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ls_companion.selection.pool import ScoredPool, Selection
from ls_companion.selection.strategies import RandomSampling, Strategy, make_strategy

Role = Literal["strategy", "control", "gold"]
DEFAULT_RANDOM_FRACTION = 0.1


@dataclass(frozen=True, slots=True)
class PlannedItem:
    """One item of a batch. ``strategy`` is what its task's meta will say (gold items look like the rest)."""

    source_id: str
    role: Role
    strategy: str
    cluster: int | None = None


@dataclass(frozen=True, slots=True)
class BatchSizes:
    gold: int
    strategy: int
    control: int


def round_half_up(value: float) -> int:
    return math.floor(value + 0.5)


def batch_sizes(n: int, *, random_fraction: float, gold_rate: float, gold_available: int) -> BatchSizes:
    """How a batch of ``n`` splits: gold first (``gold_rate`` of n), then the control slice of the rest."""
    gold = min(round_half_up(gold_rate * n), gold_available, n)
    control = round_half_up(random_fraction * (n - gold))
    return BatchSizes(gold=gold, strategy=n - gold - control, control=control)


def choose_strategy(strategy: Strategy, pool: ScoredPool, cold_start: str) -> Strategy:
    """``strategy``, or the cold-start strategy when it needs a model and the pool has no scores."""
    if strategy.needs_model and not pool.has_model:
        return make_strategy(cold_start)
    return strategy


def plan_batch(
    pool: ScoredPool,
    strategy: Strategy,
    n: int,
    rng: np.random.Generator,
    *,
    candidates: ScoredPool | None = None,
    random_fraction: float = DEFAULT_RANDOM_FRACTION,
    gold_ids: Sequence[str] = (),
    gold_rate: float = 0.0,
    exclude: Collection[str] = (),
) -> list[PlannedItem]:
    """The batch of ``n`` in import order: strategy picks most wanted first, gold and control spread in.

    ``pool`` holds every eligible item (scores, no features needed); ``candidates`` is the bounded
    subset with features that clustering strategies choose from.
    """
    excluded = set(exclude)
    free_gold = [g for g in gold_ids if g not in excluded]
    sizes = batch_sizes(
        n, random_fraction=random_fraction, gold_rate=gold_rate, gold_available=len(free_gold)
    )
    gold = [free_gold[i] for i in sorted(rng.choice(len(free_gold), size=sizes.gold, replace=False))]
    excluded.update(gold)

    chooser = candidates if strategy.needs_features and candidates is not None else pool
    picked = strategy.select(chooser, sizes.strategy, rng, exclude=excluded)
    excluded.update(picked.ids)
    # The control slice also makes up for a strategy that found fewer items than asked.
    control = RandomSampling().select(pool, n - len(gold) - len(picked), rng, exclude=excluded)
    return _interleave(picked, gold, control, rng)


def _interleave(
    picked: Selection, gold: list[str], control: Selection, rng: np.random.Generator
) -> list[PlannedItem]:
    main = [PlannedItem(s, "strategy", picked.strategy, picked.clusters.get(s)) for s in picked.ids]
    others = [PlannedItem(g, "gold", picked.strategy) for g in gold]
    others += [PlannedItem(s, "control", control.strategy) for s in control.ids]
    # Gold and control items land at random places, so that neither sits at the start of a batch.
    keys = np.concatenate([np.arange(len(main)) + 0.5, rng.uniform(0, max(len(main), 1), size=len(others))])
    everything = main + others
    return [everything[i] for i in np.argsort(keys, kind="stable")]
