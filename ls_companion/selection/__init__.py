"""Active learning: strategies over scored pools, pool scoring, batch import into Label Studio, simulation.

Nothing is imported here, so that the pure parts (``pool``, ``strategies``, ``plan``, ``features``) load
without the client. Public API (see docs/active-learning.md):

- ``pool``: ``ScoredPool``, ``Selection``, what strategies read and return;
- ``strategies``: ``make_strategy(name)``, the strategy classes and ``STRATEGY_NAMES``;
- ``plan``: ``plan_batch``, ``PlannedItem``;
- ``scoring``: ``Scorer`` (protocol), ``ScoreBatch``, ``HttpScorer`` (the ML backend's ``/score``),
  ``SklearnScorer``;
- ``importer``: ``SelectRequest`` + ``run_select``, choose a batch and import it (idempotent, resumable);
- ``simulate``: simulated annotators; the gold store is ``ls_companion.projectdata.GoldStore``.
"""
