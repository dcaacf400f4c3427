"""Label issues from out-of-fold probabilities, and model-assisted consensus: hand-checkable values."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ls_companion.cli import main
from ls_companion.errors import InputError
from ls_companion.quality import consensus
from ls_companion.quality.label_issues import (
    answer_reliability,
    class_thresholds,
    confident_joint,
    find_label_issues,
    task_label_issues,
)
from ls_companion.quality.records import CHOICES, ScoredControl
from tests.conftest import SHARED_DATASETS

LABELS = np.array([0, 0, 0, 1, 1, 1])
PROBA = np.array([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8], [0.1, 0.9], [0.3, 0.7], [0.7, 0.3]])


def test_thresholds_and_confident_joint() -> None:
    # class 0: mean of p0 over items labelled 0 = (0.9 + 0.8 + 0.2) / 3; class 1 likewise (0.9 + 0.7 + 0.3) / 3
    assert class_thresholds(LABELS, PROBA) == pytest.approx([1.9 / 3, 1.9 / 3])
    # items 2 (labelled 0, p1 = 0.8) and 5 (labelled 1, p0 = 0.7) are confidently of the other class
    assert confident_joint(LABELS, PROBA) == pytest.approx(np.array([[2.0, 1.0], [1.0, 2.0]]))


def test_flags_the_items_the_joint_implies_ranked_by_score() -> None:
    found = find_label_issues(LABELS, PROBA)
    assert found.noise.n_issues == 2
    assert found.noise.noise_rates == pytest.approx([1 / 3, 1 / 3])
    assert found.score == pytest.approx([0.1, 0.2, 0.8, 0.1, 0.3, 0.7])
    assert found.ranked().tolist() == [2, 5]
    assert found.suggested[[2, 5]].tolist() == [1, 0]
    assert find_label_issues(LABELS, PROBA, n_flag=1).ranked().tolist() == [2]


def test_a_reliable_label_resists_the_model() -> None:
    reliability = np.array([0.75, 0.75, 0.99, 0.75, 0.75, 0.75])  # item 2's annotators agree
    found = find_label_issues(LABELS, PROBA, reliability=reliability)
    mean_odds = (5 * 0.75 + 0.99) / 6 / (1 - (5 * 0.75 + 0.99) / 6)
    assert found.score[2] == pytest.approx(1 / (1 + 0.25 * 99 / mean_odds))  # about 0.13: not flagged
    assert found.score[5] == pytest.approx(1 / (1 + 0.3 / 0.7 * 3 / mean_odds))  # about 0.75: flagged
    assert found.ranked().tolist() == [5]


def test_bad_shapes_are_input_errors() -> None:
    with pytest.raises(InputError, match="do not match"):
        find_label_issues(LABELS[:3], PROBA)
    with pytest.raises(InputError, match="class codes"):
        find_label_issues(np.array([0, 0, 0, 1, 1, 2]), PROBA)
    with pytest.raises(InputError, match="reliability"):
        find_label_issues(LABELS, PROBA, reliability=np.ones(2))


def _model_case() -> tuple[pd.DataFrame, pd.DataFrame]:
    """One label per task: ``good`` agrees with the model on tasks 0-9, ``bad`` contradicts it on 12-19."""
    truth = ["a", "b"] * 10
    given = truth[:12] + [{"a": "b", "b": "a"}[t] for t in truth[12:]]
    rows = pd.DataFrame({"task_id": range(20), "annotator": ["good"] * 10 + ["bad"] * 10, "value": given})
    model = pd.DataFrame(
        [[0.9, 0.1] if t == "a" else [0.1, 0.9] for t in truth], index=range(20), columns=["a", "b"]
    )
    return rows, model


def test_model_assisted_overrules_an_unreliable_annotator_only() -> None:
    rows, model = _model_case()
    labels = consensus.aggregate(rows, consensus.MODEL_ASSISTED, model).set_index("task_id")["consensus"]
    assert labels.tolist() == ["a", "b"] * 10
    # Dawid-Skene alone can only repeat a single label
    alone = consensus.aggregate(rows, consensus.DAWID_SKENE).set_index("task_id")["consensus"]
    assert alone.tolist() == rows["value"].tolist()
    with pytest.raises(InputError, match="out-of-fold"):
        consensus.aggregate(rows, consensus.MODEL_ASSISTED)


def test_model_assisted_runs_and_wins_by_gold_when_given_probabilities() -> None:
    rows, model = _model_case()
    gold = pd.Series(["a", "b"] * 10, index=range(20))
    found = consensus.categorical_consensus(
        ScoredControl("label", CHOICES), rows, gold, methods=consensus.FAST_METHODS, model_proba=model
    )
    assert found.methods[consensus.MODEL_ASSISTED].gold_accuracy == 1.0
    assert found.methods[consensus.DAWID_SKENE].gold_accuracy == pytest.approx(0.6)
    assert found.chosen == consensus.MODEL_ASSISTED


def test_true_label_prior_rebalances_then_inverts_the_training_noise() -> None:
    trained = np.eye(2)[[0, 1, 0, 1]]  # four tasks, trained as "a", "b", "a", "b"
    # T[c, l] = P(trained l | true c): the posterior says each was trained wrongly with chance 0.2
    posterior = np.array([[0.8, 0.2], [0.2, 0.8]] * 2)
    # the mean is already the training shares (0.5, 0.5): p = (q - 0.2) / 0.6 per label, floored
    model = np.array([[0.7, 0.3], [0.3, 0.7], [0.9, 0.1], [0.1, 0.9]])
    sure = np.array([7 / 6, 0.001]) / (7 / 6 + 0.001)
    expected = np.array([[5 / 6, 1 / 6], [1 / 6, 5 / 6], sure, sure[::-1]])
    assert consensus.true_label_prior(model, trained, posterior) == pytest.approx(expected)
    # a model whose mean leans to "a" (0.7) is first rescaled to the training shares
    leaning = np.array([[0.9, 0.1], [0.5, 0.5]])
    prior = consensus.true_label_prior(leaning, np.eye(2), np.full((2, 2), 0.5))  # noise 0.5: only rescaled
    assert prior.mean(axis=0) == pytest.approx([0.5, 0.5])
    odds = prior[:, 0] / prior[:, 1]
    assert odds[0] / odds[1] == pytest.approx(9.0)  # one scale per label: the model's odds ratio kept


def test_model_assisted_denoised_prior_outvotes_wrong_single_answers_the_raw_one_kept() -> None:
    """40 tasks with one answer each, from 4 annotators right 8 times in 10; the model learnt those
    noisy labels (0.7 for each task's true label). Taken as the prior for the *true* label, 0.7 is too
    flat to outvote an annotator whom EM finds about 0.8 accurate; de-noised (training noise 0.2 ->
    prior (0.7 - 0.2) / 0.6) it outvotes all 8 wrong answers."""
    truth = np.array(["a", "b"] * 20)
    wrong = np.isin(np.arange(40), [0, 5, 10, 15, 20, 25, 30, 35])
    given = np.where(wrong, np.where(truth == "a", "b", "a"), truth)
    rows = pd.DataFrame({"task_id": range(40), "annotator": np.repeat(list("wxyz"), 10), "value": given})
    model = pd.DataFrame(np.where((truth == "a")[:, None], [0.7, 0.3], [0.3, 0.7]), columns=["a", "b"])
    enc = consensus.encode(rows)
    raw = consensus._one_accuracy_em(enc, np.log(consensus.align_model_proba(enc, model)), 50, 1e-6)
    assert (enc.labels[raw.argmax(axis=1)] == given).all()  # the first pass keeps every answer
    assert raw[0] == pytest.approx([0.470, 0.530], abs=1e-3)
    found = consensus.aggregate(rows, consensus.MODEL_ASSISTED, model)
    assert found["consensus"].tolist() == truth.tolist()
    assert found["confidence"].iloc[0] == pytest.approx(0.654, abs=1e-3)


def test_label_issues_command_finds_flipped_labels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = pd.read_csv(SHARED_DATASETS / "sms_spam" / "sms_spam.csv", keep_default_na=False).head(600)
    flipped = [3, 40, 77, 150, 222, 301, 404, 555]  # rows whose label the test makes wrong
    frame.loc[flipped, "label"] = frame.loc[flipped, "label"].map({"ham": "spam", "spam": "ham"})
    path = tmp_path / "messages.jsonl"
    frame.rename(columns={"text": "message"}).to_json(path, orient="records", lines=True)
    assert main(["label-issues", str(path), "--text-column", "message", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    found = {issue["row"]: issue for issue in payload["issues"]}
    scores = [issue["score"] for issue in payload["issues"]]
    assert scores == sorted(scores, reverse=True) and payload["n_items"] == 600
    assert len(found.keys() & set(flipped)) >= 6  # the model sees through most of them
    original = {"ham": "spam", "spam": "ham"}
    assert all(
        found[row]["suggested"] == original[frame.loc[row, "label"]] for row in found.keys() & set(flipped)
    )


def test_label_issues_command_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["label-issues", str(tmp_path / "none.csv")]) == 2
    assert "no such file" in capsys.readouterr().err
    path = tmp_path / "data.csv"
    path.write_text("text,category\nhello,a\n", encoding="utf-8")
    assert main(["label-issues", str(path)]) == 2
    err = capsys.readouterr().err
    assert "no column 'label'" in err and len(err.strip().splitlines()) == 1
    path.write_text("text,label\nhello,a\nworld,a\n", encoding="utf-8")
    assert main(["label-issues", str(path)]) == 2
    assert "at least two classes" in capsys.readouterr().err
    assert main(["label-issues"]) == 2
    assert "either FILE or --project" in capsys.readouterr().err


def test_answer_reliability_weighs_each_answer_by_its_annotators_accuracy() -> None:
    accuracy = {"u1": 0.8, "u2": 0.9, "u3": 0.6, "u4": float("nan")}
    answers = [
        (1, "u1", "a"),
        (2, "u1", "a"),
        (2, "u2", "a"),
        (3, "u1", "a"),
        (3, "u2", "b"),
        (4, "u9", "b"),  # an annotator without an estimate counts with the mean (0.8 + 0.9 + 0.6) / 3
        (5, "u1", "a"),  # a task without a label judged
    ]
    labels = {1: "a", 2: "a", 3: "a", 4: "b"}
    found = answer_reliability(answers, labels, accuracy, ["a", "b", "c"])
    # an answer gives a to its class and (1 - a) / 2 to each other one; flat prior, normalised
    assert found == pytest.approx(
        {1: 0.8, 2: 0.72 / (0.72 + 0.005 + 0.005), 3: 0.04 / (0.04 + 0.09 + 0.005), 4: 2.3 / 3}
    )
    assert answer_reliability(answers, labels, {"u1": float("nan")}, ["a", "b"]) == {}


def test_task_label_issues_from_stored_out_of_fold_probabilities() -> None:
    oof = {
        "task_ids": [10, 11, 12, 13, 14, 15, 16],
        "classes": ["a", "b"],
        "proba": [*PROBA.tolist(), [0.5, 0.5]],
    }
    labels = {10: "a", 11: "a", 12: "a", 13: "b", 14: "b", 15: "b", 99: "a"}  # 16 has no label, 99 no row
    found = task_label_issues(oof, labels, "v1")
    assert set(found) == {10, 11, 12, 13, 14, 15}
    # one in three labels of each class is confidently of the other (12 and 15): noise rate 1/3 each
    assert found[12] == {
        "label": "a",
        "noise_rate": 0.3333,
        "score": 0.8,
        "suggested": "b",
        "flagged": True,
        "model_version": "v1",
    }
    assert found[15] == {
        "label": "b",
        "noise_rate": 0.3333,
        "score": 0.7,
        "suggested": "a",
        "flagged": True,
        "model_version": "v1",
    }
    assert found[14] == {
        "label": "b",
        "noise_rate": 0.3333,
        "score": 0.3,
        "suggested": "a",
        "flagged": False,
        "model_version": "v1",
    }
    assert task_label_issues(oof, {10: "c"}, "v1") == {}  # a label the model does not know
