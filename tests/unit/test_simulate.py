"""The offline simulator and the ``simulate`` command on a slice of sms_spam."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ls_companion.cli import main
from ls_companion.errors import InputError
from ls_companion.selection.simulate import (
    CurvePoint,
    Learner,
    SimulationConfig,
    _median,
    candidates,
    labels_to_target,
    learning_curve,
    load_dataset,
    prepare,
    simulate,
)
from ls_companion.sources import read_rows
from ls_companion.textclassifier import text_candidates
from ls_companion.wordvectors import WordVectors, single_choice_candidates
from tests.conftest import SHARED_DATASETS

SMS = SHARED_DATASETS / "sms_spam" / "sms_spam.csv"
#: A zero budget cross-validates the first candidate only: the backend's model, fast and deterministic.
FIRST_ONLY = 0.0


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sim") / "sms_small.csv"
    rows = list(read_rows(SMS))[:1500]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_labels_to_target_and_median() -> None:
    curve = [CurvePoint(50, 0.8, 0.6), CurvePoint(100, 0.95, 0.9), CurvePoint(150, 0.97, 0.93)]
    assert labels_to_target(curve, 0.95) == 100
    assert labels_to_target(curve, 0.99) is None
    assert _median([100, 200, None]) == 200
    assert _median([100, None, None]) is None
    assert _median([100, 300]) == 200


def test_curves_grow_by_the_batch_and_uncertainty_beats_random(small_csv: Path) -> None:
    config = SimulationConfig(
        strategies=("random", "entropy"), initial=40, batch=40, rounds=6, seeds=2, budget_seconds=FIRST_ONLY
    )
    result = simulate(load_dataset(small_csv), config)
    assert result["pool_size"] == 1200 and result["test_size"] == 300
    assert 0.95 < result["full_data_accuracy"] <= 1.0 and result["full_data_model"] == "word-C10"
    assert result["target_accuracy"] == pytest.approx(0.99 * result["full_data_accuracy"], abs=1e-4)
    for name in ("random", "entropy"):
        data = result["strategies"][name]
        assert [p["labels"] for p in data["curve"]] == [40, 80, 120, 160, 200, 240, 280]
        assert len(data["labels_to_99pct"]["per_seed"]) == 2
        assert set(data["curve"][0]) == {"labels", "accuracy", "accuracy_std", "macro_f1"}
        assert data["models"] == {"word-C10": 2 * 7}  # seeds x points
    # The same initial labels for both strategies of a seed: same first point.
    assert result["strategies"]["random"]["curve"][0] == result["strategies"]["entropy"]["curve"][0]
    assert (
        result["strategies"]["entropy"]["final_accuracy"] > result["strategies"]["random"]["final_accuracy"]
    )


def test_a_curve_is_reproducible_and_every_strategy_runs(small_csv: Path) -> None:
    config = SimulationConfig(initial=30, batch=30, rounds=2, seeds=1, budget_seconds=FIRST_ONLY)
    prepared = prepare(load_dataset(small_csv), config)
    for name in config.strategies:
        first = learning_curve(prepared, name, 0, config)
        assert [p.labels for p in first] == [30, 60, 90]
        assert first == learning_curve(prepared, name, 0, config)


def test_one_class_at_start_cold_starts(small_csv: Path) -> None:
    # One initial label is one class: no model, so the cold-start strategy chooses the first batch.
    config = SimulationConfig(
        strategies=("entropy",), initial=1, batch=20, rounds=2, seeds=2, budget_seconds=FIRST_ONLY
    )
    result = simulate(load_dataset(small_csv), config)
    curve = result["strategies"]["entropy"]["curve"]
    assert [p["labels"] for p in curve] == [1, 21, 41]
    assert curve[0]["accuracy"] > 0.0  # the one known class, answered for everything


def test_a_curve_stops_at_the_target_when_asked(small_csv: Path) -> None:
    config = SimulationConfig(
        strategies=("entropy",), initial=40, batch=40, rounds=20, seeds=1, budget_seconds=FIRST_ONLY
    )
    prepared = prepare(load_dataset(small_csv), config)
    full = learning_curve(prepared, "entropy", 0, config)
    target = 0.99 * prepared.full_accuracy
    reached = labels_to_target(full, target)
    assert reached is not None and reached < full[-1].labels
    stopped = learning_curve(prepared, "entropy", 0, replace(config, stop_at_target=True))
    assert stopped == [p for p in full if p.labels <= reached]


def test_the_learner_selects_again_when_the_labels_grow_by_the_factor(small_csv: Path) -> None:
    rows = list(read_rows(small_csv))
    texts, labels = [r["text"] for r in rows], [r["label"] for r in rows]
    learner = Learner(text_candidates(), factor=2.0, budget_seconds=FIRST_ONLY)
    first = learner.fit(texts[:100], labels[:100]).selection_
    assert first is not None and learner.selected_at_ == 100
    assert first.name == text_candidates()[0].name and first.search_size == 100
    refit = learner.fit(texts[:150], labels[:150]).selection_
    # Below twice the labels: the chosen candidate refitted on all 150, with the selection's calibration.
    assert learner.selected_at_ == 100 and refit is not None and refit.name == first.name
    assert refit.calibrator == first.calibrator and refit.scores == first.scores
    alone = next(c for c in text_candidates() if c.name == first.name).make().fit(texts[:150], labels[:150])
    np.testing.assert_allclose(
        refit.predict_proba(texts[150:200]),
        first.calibrator(alone.predict_proba(texts[150:200])),
        atol=1e-4,  # liblinear shuffles with numpy's global random state
    )
    again = learner.fit(texts[:200], labels[:200]).selection_
    assert learner.selected_at_ == 200 and again is not None and again.search_size == 200
    assert learner.fit(texts[:3], ["ham"] * 3).selection_ is None


def test_word_vectors_add_the_backends_vector_candidates(tmp_path: Path) -> None:
    path = tmp_path / "vectors.npz"
    WordVectors(["good", "bad"], np.eye(2)).save(path)
    names = [c.name for c in candidates(path)]
    assert names == [c.name for c in single_choice_candidates(WordVectors.load(path))]
    assert "vectors-balanced-C1" in names and [c.name for c in candidates(None)] == [
        c.name for c in text_candidates()
    ]
    with pytest.raises(InputError, match="not a word-vectors file"):
        candidates(tmp_path / "missing.npz")


def test_bad_options_and_files_are_input_errors(tmp_path: Path, small_csv: Path) -> None:
    with pytest.raises(InputError, match="unknown strategy"):
        SimulationConfig(strategies=("clever",)).validate()
    with pytest.raises(InputError, match="--test-size"):
        SimulationConfig(test_size=1.5).validate()
    with pytest.raises(InputError, match="reselection factor"):
        SimulationConfig(reselect_factor=1.0).validate()
    with pytest.raises(InputError, match="needs the columns"):
        load_dataset(small_csv, label_column="class")
    one = tmp_path / "one.csv"
    one.write_text("text,label\na,x\nb,x\n")
    with pytest.raises(InputError, match="two classes"):
        load_dataset(one)


def test_simulate_command_prints_json_and_writes_the_plot(
    small_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plot = tmp_path / "curve.png"
    argv = ["simulate", str(small_csv), "-s", "margin", "-s", "hybrid", "--initial", "50", "--batch", "50"]
    argv += ["--rounds", "3", "--seeds", "2", "--json", "--plot", str(plot), "--selection-budget", "0"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["strategies"]) == {"margin", "hybrid"} and result["full_data_model"] == "word-C10"
    assert result["config"]["budget_seconds"] == 0.0
    assert result["plot"] == str(plot) and plot.read_bytes()[:4] == b"\x89PNG"
    assert main(["simulate", str(small_csv), "-s", "nope"]) == 2
