"""Active learning: strategies over scored pools, pool scoring, batch import into Label Studio, simulation.

Public API (see docs/active-learning.md):

- ``ScoredPool``, ``Selection``: what strategies read and return;
- ``make_strategy(name)`` and the strategy classes; ``STRATEGY_NAMES``;
- ``Scorer`` (protocol), ``ScoreBatch``, ``HttpScorer`` (the ML backend's ``/score``), ``SklearnScorer``;
- ``SelectRequest`` + ``run_select``: choose a batch and import it (idempotent, resumable);
- ``GoldStore``, ``gold_store_path``: the local store of gold answers the quality engine reads;
- ``simulate`` and friends live in ``ls_companion.selection.simulate``.
"""

from ls_companion.selection.gold import GoldRecord, GoldStore, gold_store_path
from ls_companion.selection.importer import SelectReport, SelectRequest, run_select
from ls_companion.selection.plan import PlannedItem, plan_batch
from ls_companion.selection.pool import ScoredPool, Selection
from ls_companion.selection.scoring import HttpScorer, ScoreBatch, Scorer, SklearnScorer
from ls_companion.selection.strategies import (
    STRATEGY_NAMES,
    BalancedSampling,
    DiversitySampling,
    HybridSampling,
    RandomSampling,
    Strategy,
    UncertaintySampling,
    make_strategy,
)

__all__ = [
    "STRATEGY_NAMES",
    "BalancedSampling",
    "DiversitySampling",
    "GoldRecord",
    "GoldStore",
    "HttpScorer",
    "HybridSampling",
    "PlannedItem",
    "RandomSampling",
    "ScoreBatch",
    "ScoredPool",
    "Scorer",
    "SelectReport",
    "SelectRequest",
    "Selection",
    "SklearnScorer",
    "Strategy",
    "UncertaintySampling",
    "gold_store_path",
    "make_strategy",
    "plan_batch",
    "run_select",
]
