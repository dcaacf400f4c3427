"""Batch planning (gold, control slice, cold start) and the round rule that makes select resumable."""

from __future__ import annotations

import numpy as np
import pytest

from ls_companion.selection.plan import BatchSizes, batch_sizes, choose_strategy, plan_batch
from ls_companion.selection.pool import ScoredPool
from ls_companion.selection.rounds import ProjectState, TaskRef, decide_round, request_key, task_ref
from ls_companion.selection.strategies import make_strategy
from ls_companion.uncertainty import class_measures


def _pool(n: int = 200, *, scored: bool = True) -> ScoredPool:
    rng = np.random.default_rng(0)
    proba = rng.dirichlet([1, 1], size=n)
    return ScoredPool(
        ids=np.array([f"p{i:04d}" for i in range(n)]),
        measures=class_measures(proba) if scored else {},
        proba=proba if scored else None,
        features=rng.normal(size=(n, 5)),
    )


def test_batch_sizes_take_gold_first_then_the_control_slice() -> None:
    assert batch_sizes(100, random_fraction=0.1, gold_rate=0.05, gold_available=50) == BatchSizes(5, 85, 10)
    assert batch_sizes(100, random_fraction=0.1, gold_rate=0.05, gold_available=2).gold == 2
    assert batch_sizes(10, random_fraction=0.0, gold_rate=0.0, gold_available=0) == BatchSizes(0, 10, 0)


def test_plan_has_the_strategy_picks_a_random_slice_and_spread_out_gold() -> None:
    pool = _pool()
    gold = [f"g{i}" for i in range(40)]
    plan = plan_batch(
        pool, make_strategy("entropy"), 100, np.random.default_rng(1), gold_ids=gold, gold_rate=0.05
    )
    roles = [p.role for p in plan]
    assert (roles.count("gold"), roles.count("strategy"), roles.count("control")) == (5, 85, 10)
    assert len({p.source_id for p in plan}) == 100
    # The strategy picks are the 85 most uncertain items, in that order.
    most_uncertain = make_strategy("entropy").select(pool, 85, np.random.default_rng(0)).ids
    assert [p.source_id for p in plan if p.role == "strategy"] == list(most_uncertain)
    assert {p.strategy for p in plan if p.role == "control"} == {"random"}
    # Gold looks like the rest of the batch and is not bunched at the start.
    assert {p.strategy for p in plan if p.role == "gold"} == {"entropy"}
    assert roles[:5] != ["gold"] * 5
    assert max(i for i, r in enumerate(roles) if r == "gold") > 20


def test_plan_is_reproducible_and_respects_exclusions() -> None:
    pool = _pool()
    first = plan_batch(
        pool, make_strategy("hybrid"), 30, np.random.default_rng(5), gold_ids=["g1", "g2"], gold_rate=0.1
    )
    again = plan_batch(
        pool, make_strategy("hybrid"), 30, np.random.default_rng(5), gold_ids=["g1", "g2"], gold_rate=0.1
    )
    assert first == again
    taken = {p.source_id for p in first}
    after = plan_batch(pool, make_strategy("hybrid"), 30, np.random.default_rng(5), exclude=taken)
    assert not taken & {p.source_id for p in after}


def test_the_control_slice_makes_up_for_a_small_candidate_set() -> None:
    pool = _pool()
    candidates = pool.subset(np.arange(10))
    plan = plan_batch(pool, make_strategy("diversity"), 30, np.random.default_rng(0), candidates=candidates)
    assert len(plan) == 30
    assert sum(p.role == "strategy" for p in plan) == 10


def test_cold_start_replaces_model_strategies_when_there_are_no_scores() -> None:
    cold = _pool(scored=False)
    assert choose_strategy(make_strategy("entropy"), cold, "diversity").name == "diversity"
    assert choose_strategy(make_strategy("hybrid"), cold, "random").name == "random"
    assert choose_strategy(make_strategy("entropy"), _pool(), "random").name == "entropy"
    plan = plan_batch(
        cold, choose_strategy(make_strategy("margin"), cold, "diversity"), 20, np.random.default_rng(0)
    )
    assert {p.strategy for p in plan if p.role == "strategy"} == {"diversity"}
    assert all(p.cluster is not None for p in plan if p.role == "strategy")


# -- the round rule -----------------------------------------------------------------------------------

KEY = request_key(
    strategy="entropy", batch=4, seed=0, random_fraction=0.1, gold_rate=0.0, cold_start="diversity"
)


def _state(*rounds: tuple[int, str, int, str | None]) -> ProjectState:
    """(round, request, how many tasks, model version) groups."""
    refs, n = [], 0
    for al_round, request, count, version in rounds:
        for _ in range(count):
            refs.append(TaskRef(n, f"s{n}", al_round, request, version))
            n += 1
    return ProjectState(tuple(refs))


def test_request_key_depends_on_the_options_that_decide_a_batch() -> None:
    other = request_key(
        strategy="entropy", batch=5, seed=0, random_fraction=0.1, gold_rate=0.0, cold_start="diversity"
    )
    assert other != KEY
    same = request_key(
        strategy="entropy", batch=4, seed=0, random_fraction=0.1, gold_rate=0.0, cold_start="diversity"
    )
    assert same == KEY


def test_first_select_after_the_pilot_opens_round_one() -> None:
    decision = decide_round(_state((0, "", 3, None)), KEY, 4, "v1")
    assert (decision.al_round, decision.resumed, decision.complete) == (1, False, False)


def test_an_unfinished_round_is_resumed_whatever_the_model() -> None:
    state = _state((0, "", 3, None), (1, KEY, 2, "v1"))
    decision = decide_round(state, KEY, 4, "v2")
    assert (decision.al_round, decision.resumed, decision.complete) == (1, True, False)
    assert decision.members == {"s3", "s4"}


def test_a_full_round_with_the_same_model_means_nothing_to_do() -> None:
    state = _state((1, KEY, 4, "v1"))
    assert decide_round(state, KEY, 4, "v1").complete
    assert decide_round(_state((1, KEY, 4, None)), KEY, 4, None).complete  # cold start, still no model


def test_a_new_model_other_options_or_new_round_open_the_next_round() -> None:
    state = _state((1, KEY, 4, "v1"))
    assert decide_round(state, KEY, 4, "v2").al_round == 2
    assert decide_round(state, "another-key", 4, "v1").al_round == 2
    assert decide_round(state, KEY, 4, "v1", new_round=True).al_round == 2
    assert decide_round(_state((1, KEY, 2, "v1")), KEY, 4, "v1", new_round=True).al_round == 2


def test_task_ref_reads_our_meta_namespace_only() -> None:
    ref = task_ref(7, {"other": 1, "ls_companion": {"source_id": 12, "al_round": "2", "al_request": "k"}})
    assert (ref.source_id, ref.al_round, ref.request, ref.model_version) == ("12", 2, "k", None)
    assert task_ref(8, {"ls_companion": "garbage"}).source_id is None


@pytest.mark.parametrize("n", [1, 7])
def test_plan_sizes_add_up_for_small_batches(n: int) -> None:
    plan = plan_batch(
        _pool(), make_strategy("random"), n, np.random.default_rng(0), gold_ids=["g"], gold_rate=0.05
    )
    assert len(plan) == n
