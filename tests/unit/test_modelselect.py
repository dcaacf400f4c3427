"""Model selection and calibration (ls_companion.modelselect): pure, no server."""

from __future__ import annotations

import csv
import functools
import json
from typing import Any, Self

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from ls_companion.modelselect import (
    Calibrator,
    Candidate,
    expected_calibration_error,
    fit_calibrator,
    select_model,
)


class Threshold:
    """A one-feature logistic regression with a fixed C: sklearn conventions over raw numbers."""

    def __init__(self, C: float) -> None:
        self.C = C

    def fit(self, X: Any, y: Any) -> Self:
        self.model_ = LogisticRegression(C=self.C).fit(np.asarray(X).reshape(-1, 1), y)
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X: Any) -> Any:
        return self.model_.predict_proba(np.asarray(X).reshape(-1, 1))


class Constant:
    """Predicts the class prior whatever the input: a candidate that must lose."""

    def fit(self, X: Any, y: Any) -> Self:
        self.classes_, counts = np.unique(np.asarray(y), return_counts=True)
        self.prior_ = counts / counts.sum()
        return self

    def predict_proba(self, X: Any) -> Any:
        return np.tile(self.prior_, (len(X), 1))


def _data(n: int, seed: int = 0) -> tuple[list[float], list[str]]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = np.where(x + rng.normal(scale=0.5, size=n) > 0.3, "b", "a")
    return x.tolist(), y.tolist()


def test_ece_of_perfect_and_overconfident_predictions() -> None:
    y = np.array([0, 1, 0, 1])
    assert expected_calibration_error(np.eye(2)[y], y) == 0.0
    # always 0.9 sure, right half of the time: |0.5 - 0.9| = 0.4
    proba = np.array([[0.9, 0.1], [0.9, 0.1], [0.1, 0.9], [0.1, 0.9]])
    assert expected_calibration_error(proba, np.array([0, 1, 0, 1])) == pytest.approx(0.4)


def test_select_picks_the_informative_candidate_and_reports_every_score() -> None:
    x, y = _data(200)
    candidates = [Candidate("constant", Constant), Candidate("threshold", lambda: Threshold(1.0))]
    selection = select_model(candidates, x, y, seed=0)
    assert selection.name == "threshold"
    assert [s.name for s in selection.scores] == ["constant", "threshold"]
    constant, threshold = selection.scores
    assert threshold.accuracy > 0.8 > constant.accuracy
    assert threshold.log_loss < constant.log_loss
    assert selection.classes == ("a", "b") and selection.folds == 5
    assert selection.oof_proba is not None and selection.oof_proba.shape == (200, 2)
    np.testing.assert_allclose(selection.oof_proba.sum(axis=1), 1.0)
    assert selection.ece is not None and selection.ece < 0.1
    proba = selection.predict_proba([-3.0, 3.0])
    assert proba[0, 0] > 0.9 and proba[1, 1] > 0.9
    meta = json.loads(json.dumps(selection.metadata()))
    assert meta["chosen"] == "threshold"
    assert [c["name"] for c in meta["candidates"]] == ["constant", "threshold"]
    assert meta["calibration"]["method"] in {"none", "temperature", "platt", "isotonic"}


def test_selection_is_reproducible_and_the_budget_bounds_the_search() -> None:
    x, y = _data(150)
    candidates = [Candidate(f"c{c}", functools.partial(Threshold, c)) for c in (0.01, 1.0, 100.0)]
    first = select_model(candidates, x, y, seed=3)
    again = select_model(candidates, x, y, seed=3)
    assert first.name == again.name
    np.testing.assert_allclose(first.oof_proba, again.oof_proba)  # type: ignore[arg-type]
    bounded = select_model(candidates, x, y, seed=3, budget_seconds=0.0)
    assert [s.name for s in bounded.scores] == ["c0.01"]  # the first candidate is always scored


def test_subsampled_search_still_gives_oof_for_every_input() -> None:
    x, y = _data(400)
    selection = select_model([Candidate("t", lambda: Threshold(1.0))], x, y, max_search=100)
    assert selection.search_size == 100
    assert selection.oof_proba is not None and selection.oof_proba.shape == (400, 2)


def test_tiny_classes_and_too_few_labels_degrade_gracefully() -> None:
    candidates = [Candidate("t", lambda: Threshold(1.0))]
    x, y = _data(30)
    x.append(9.0)
    y.append("c")  # a class seen once: CV still runs, the held-out example gets p=0 for "c"
    selection = select_model(candidates, x, y)
    assert selection.classes == ("a", "b", "c") and selection.oof_proba is not None
    few = select_model(candidates, [0.0, 1.0, 2.0, 3.0], ["a", "a", "b", "b"])
    assert few.name == "t" and few.scores == () and few.oof_proba is None
    assert few.calibrator.method == "none" and few.predict_proba([3.0]).shape == (1, 2)
    with pytest.raises(ValueError, match="two classes"):
        select_model(candidates, [0.0, 1.0], ["a", "a"])


def test_calibrators_repair_overconfidence() -> None:
    rng = np.random.default_rng(0)
    n = 2000
    y = rng.integers(0, 2, size=n)
    right = rng.random(n) < 0.75  # 75 % accurate but always 99 % sure
    predicted = np.where(right, y, 1 - y)
    proba = np.where(predicted[:, None] == np.arange(2), 0.99, 0.01)
    before = expected_calibration_error(proba, y)
    assert before == pytest.approx(0.24, abs=0.03)
    for method in ("temperature", "platt", "isotonic"):
        calibrator = fit_calibrator(method, proba, y)
        after = calibrator(proba)
        np.testing.assert_allclose(after.sum(axis=1), 1.0)
        assert expected_calibration_error(after, y) < 0.03, method
    np.testing.assert_allclose(Calibrator()(proba), proba)
    three = np.array([[0.98, 0.01, 0.01], [0.01, 0.98, 0.01], [0.01, 0.01, 0.98]] * 100)
    truth = np.array([0, 1, 2] * 60 + [1, 2, 0] * 40)
    for method in ("temperature", "platt", "isotonic"):
        calibrated = fit_calibrator(method, three, truth)(three)  # type: ignore[arg-type]
        np.testing.assert_allclose(calibrated.sum(axis=1), 1.0)
        assert expected_calibration_error(calibrated, truth) < 0.05, method


def test_selected_text_model_is_calibrated_on_held_apart_sms_spam() -> None:
    """ECE ≤ 0.05 after 300 labels, measured on 2,000 messages the selection never saw."""
    from ls_companion.textclassifier import text_candidates
    from tests.conftest import SHARED_DATASETS

    with (SHARED_DATASETS / "sms_spam" / "sms_spam.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    train, held = rows[:300], rows[1000:3000]
    selection = select_model(text_candidates(), [r["text"] for r in train], [r["label"] for r in train])
    proba = selection.predict_proba([r["text"] for r in held])
    truth = np.searchsorted(selection.classes, [r["label"] for r in held])
    assert (proba.argmax(axis=1) == truth).mean() >= 0.97
    assert expected_calibration_error(proba, truth) <= 0.05
    assert selection.ece is not None and selection.ece <= 0.05


def test_a_calibration_that_costs_macro_f1_is_not_chosen() -> None:
    """Weak signal, 60/40: Platt has the lowest log-loss but predicts the majority class for nearly all."""
    from sklearn.model_selection import StratifiedKFold

    from ls_companion.modelselect import _calibrate, _macro_f1

    rng = np.random.default_rng(0)
    y = (rng.random(300) < 0.4).astype(np.int64)
    p1 = np.clip(0.5 + 0.01 * (2 * y - 1) + rng.normal(0, 0.05, 300), 0.01, 0.99)
    oof = np.column_stack([1 - p1, p1])
    calibrator, rows, losses = _calibrate(oof, y, StratifiedKFold(5, shuffle=True, random_state=0))
    assert losses["platt"] == min(losses.values())
    assert _macro_f1(fit_calibrator("platt", oof, y)(oof), y) < _macro_f1(oof, y) - 0.05
    assert calibrator.method == "temperature" and _macro_f1(rows, y) == _macro_f1(oof, y)


def test_a_platt_fit_with_a_negative_slope_is_not_chosen() -> None:
    """Out-of-fold scores that rank against the labels (a small-sample CV artefact): Platt inverts them
    and has the lowest log-loss, yet it would invert the model refitted on all labels."""
    from sklearn.model_selection import StratifiedKFold

    from ls_companion.modelselect import _calibrate

    rng = np.random.default_rng(0)
    y = np.array([0, 1] * 25, dtype=np.int64)
    p1 = np.clip(0.5 - 0.2 * (2 * y - 1) + rng.normal(0, 0.1, 50), 0.01, 0.99)
    oof = np.column_stack([1 - p1, p1])
    assert fit_calibrator("platt", oof, y).platt[0, 0] < 0
    calibrator, _, losses = _calibrate(oof, y, StratifiedKFold(5, shuffle=True, random_state=0))
    assert losses["platt"] < min(losses["none"], losses["temperature"])
    assert calibrator.method != "platt"
