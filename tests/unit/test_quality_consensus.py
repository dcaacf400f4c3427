"""Consensus: our Dawid-Skene against crowd-kit's, the published accuracies, and method choice.

GLAD takes 10–110 s per dataset here, so the full four-method tables (d_product, rte, temp) are checked
by ``bench/bench_quality_consensus.py``; here d_product runs MV and DS, snow2008_temp MV, DS and MACE.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from crowdkit.aggregation import DawidSkene

from ls_companion.quality import consensus
from ls_companion.quality.gold import read_gold_file, resolve_gold
from ls_companion.quality.records import CHOICES, LABELS, ScoredControl, Span, crowd, read_crowd_csv
from tests.conftest import SHARED_DATASETS

SPEC = ScoredControl("label", CHOICES)


def crowd_set(name: str) -> tuple[pd.DataFrame, pd.Series]:
    rows = crowd(read_crowd_csv(SHARED_DATASETS / name / "labels.csv"))
    gold = resolve_gold(
        read_gold_file(SHARED_DATASETS / name / "gold.csv"), {"label": SPEC}, integer_ids=False
    )
    return rows, pd.Series(gold["value"].to_numpy(object), index=gold["task_id"].to_numpy())


@pytest.mark.parametrize("name", ["snow2008_rte", "snow2008_temp", "snow2008_wsd"])
def test_dawid_skene_reproduces_crowdkit_posteriors(name: str) -> None:
    rows, _ = crowd_set(name)
    enc = consensus.encode(rows)
    ours = consensus.dawid_skene_proba(enc)
    data = pd.DataFrame({"task": rows["task_id"], "worker": rows["annotator"], "label": rows["value"]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = DawidSkene(n_iter=100).fit(data).probas_
    assert theirs is not None
    assert np.abs(ours - theirs.reindex(index=enc.tasks, columns=enc.labels).to_numpy(float)).max() < 1e-9


def test_d_product_reproduces_published_mv_and_ds() -> None:
    rows, gold = crowd_set("d_product")
    found = consensus.categorical_consensus(
        SPEC, rows, gold, methods=(consensus.MAJORITY_VOTE, consensus.DAWID_SKENE)
    )
    accuracy = {name: outcome.gold_accuracy for name, outcome in found.methods.items()}
    # Crowd-Kit paper (JOSS 2024), D_Product: MV 0.897, DS 0.940.
    assert accuracy[consensus.MAJORITY_VOTE] == pytest.approx(0.897, abs=0.005)
    assert accuracy[consensus.DAWID_SKENE] == pytest.approx(0.940, abs=0.005)
    assert found.chosen == consensus.DAWID_SKENE and found.methods[consensus.DAWID_SKENE].n_gold == 8315
    assert found.labels["confidence"].between(0.5, 1.0).all()


def test_snow2008_temp_choice_by_gold_picks_the_best_method() -> None:
    rows, gold = crowd_set("snow2008_temp")
    methods = (consensus.MAJORITY_VOTE, consensus.DAWID_SKENE, consensus.MACE)
    found = consensus.categorical_consensus(SPEC, rows, gold, methods=methods)
    accuracy = {name: outcome.gold_accuracy or 0.0 for name, outcome in found.methods.items()}
    # The datasets README (crowd-kit 1.4.2 on these files): MV 0.9394, DS 0.9416, MACE 0.9437 (GLAD 0.9351).
    assert accuracy == pytest.approx(
        {"majority_vote": 0.9394, "dawid_skene": 0.9416, "mace": 0.9437}, abs=0.005
    )
    assert found.chosen == "mace" and accuracy["mace"] >= max(accuracy.values()) - 0.005
    assert found.summary()["chosen_gold_accuracy"] == round(accuracy[found.chosen], 4)


def test_choice_needs_enough_gold_and_prefers_dawid_skene_on_ties() -> None:
    labels = pd.DataFrame(columns=consensus.LABEL_COLUMNS)

    def outcome(name: str, accuracy: float, n: int) -> consensus.MethodOutcome:
        return consensus.MethodOutcome(name, labels, 0.0, accuracy, n)

    few = {"majority_vote": outcome("majority_vote", 1.0, 5), "dawid_skene": outcome("dawid_skene", 0.8, 5)}
    assert consensus.choose(few, min_gold=10) == "dawid_skene"
    tie = {"mace": outcome("mace", 0.9, 50), "dawid_skene": outcome("dawid_skene", 0.9, 50)}
    assert consensus.choose(tie, min_gold=10) == "dawid_skene"
    best = {"mace": outcome("mace", 0.95, 50), "dawid_skene": outcome("dawid_skene", 0.9, 50)}
    assert consensus.choose(best, min_gold=10) == "mace"


def test_slow_methods_are_skipped_above_the_limit() -> None:
    rows, _ = crowd_set("snow2008_wsd")
    found = consensus.categorical_consensus(SPEC, rows, None, slow_max_labels=100)
    assert found.methods["glad"].skipped and found.methods["mace"].skipped
    assert found.chosen == "dawid_skene"
    summary = found.summary()
    assert summary["methods"]["glad"]["skipped"] == "more than 100 labels"
    assert summary["chosen_gold_accuracy"] is None


def test_medoid_consensus_picks_the_most_central_answer() -> None:
    from ls_companion.quality.agreement import annotation_pairs

    spec = ScoredControl("labels", LABELS)
    a, b = Span(0, 5, "P", "Maria"), Span(10, 16, "L", "Lisbon")
    table = pd.DataFrame(
        {
            "task_id": [1, 1, 1, 2],
            "annotator": ["x", "y", "z", "x"],
            "value": pd.Series([(a, b), (a,), (a, b), (b,)], dtype=object),
            "annotation_id": [10, 11, 12, 13],
        }
    )
    labels = consensus.medoid(table, annotation_pairs(table, spec)).set_index("task_id")
    # x and z agree fully with each other (1.0) and half with y: mean 0.75, the earliest id wins the tie.
    assert labels.loc[1, "consensus"] == (a, b) and labels.loc[1, "annotation_id"] == 10
    assert labels.loc[1, "confidence"] == pytest.approx(0.75)
    assert labels.loc[2, "consensus"] == (b,) and np.isnan(labels.loc[2, "confidence"])
