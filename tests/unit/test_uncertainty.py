"""Known answers for the shared uncertainty measures."""

from __future__ import annotations

import numpy as np
import pytest

from ls_companion.uncertainty import class_measures, entropy, least_confidence, margin, per_label


def test_known_answers_on_hand_built_rows() -> None:
    proba = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.7, 0.2, 0.1]])
    assert least_confidence(proba) == pytest.approx([0.0, 0.5, 2 / 3, 0.3])
    assert margin(proba) == pytest.approx([0.0, 1.0, 1.0, 0.5])
    assert entropy(proba) == pytest.approx([0.0, np.log(2) / np.log(3), 1.0, 0.8018185525433373 / np.log(3)])


def test_every_measure_ranks_the_uniform_row_most_uncertain() -> None:
    proba = np.array([[0.9, 0.1], [0.5, 0.5], [0.6, 0.4]])
    for measure in (least_confidence, margin, entropy):
        assert list(np.argsort(-measure(proba))) == [1, 2, 0]


def test_yes_no_entropy_per_label_and_the_three_measures_of_a_row() -> None:
    assert per_label(entropy, [[0.5, 0.0, 1.0]])[0] == pytest.approx([1.0, 0.0, 0.0], abs=1e-9)
    measures = {name: float(values[0]) for name, values in class_measures([[0.75, 0.25]]).items()}
    assert measures == pytest.approx({"least_confidence": 0.25, "margin": 0.5, "entropy": 0.8112781244591328})


def test_rejects_a_vector() -> None:
    with pytest.raises(ValueError, match="probability matrix"):
        entropy(np.array([0.2, 0.8]))
