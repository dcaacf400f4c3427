"""Uncertainty of a batch of model outputs, using the shared measures of ``ls_companion.uncertainty``.

Every item gets the triple (least confidence, margin, entropy; 0 = certain .. 1 = most uncertain) and a
``score`` = 1 − least confidence, the model's confidence, which is what predictions carry in Label
Studio (its ascending sort and its uncertainty stream then put the least certain first).

How items are aggregated:
- single choice: the measures of the class distribution;
- multi-label: each class is a yes/no question; the measures of each class's (p, 1 − p), averaged
  over classes;
- spans (NER): the measures of each token's marginal distribution over BIO tags, and an item takes
  its *most uncertain token* (the maximum over tokens), so one doubtful entity flags the whole text
  however long it is; a text without tokens is certain;
- regions of a pretrained model (OCR lines): each region's score p as a yes/no question (p, 1 − p), and
  an item takes its least certain region; an item without regions is certain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ls_companion.uncertainty import class_measures, multilabel_measures, sequence_measures
from ml_backend.models.span_tagger import TaggedText

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Uncertainties:
    least_confidence: FloatArray
    margin: FloatArray
    entropy: FloatArray

    @property
    def score(self) -> FloatArray:
        result: FloatArray = 1.0 - self.least_confidence
        return result


def class_uncertainties(probabilities: FloatArray) -> Uncertainties:
    return Uncertainties(**class_measures(probabilities))


def multi_label_uncertainties(probabilities: FloatArray) -> Uncertainties:
    """Each class is a yes/no question; an item's measure is the mean over its classes."""
    return Uncertainties(**multilabel_measures(probabilities, "mean"))


def span_uncertainties(texts: Sequence[TaggedText]) -> Uncertainties:
    """Each token's tag distribution; an item takes its most uncertain token (no tokens: certain)."""
    return Uncertainties(**sequence_measures([t.marginals for t in texts], "max"))


def region_uncertainties(scores: Sequence[Sequence[float]]) -> Uncertainties:
    """Per item, the measures of its least certain region's (p, 1 − p); no region: certain."""
    lowest = np.array([min(item, default=1.0) for item in scores], dtype=np.float64).reshape(-1)
    return class_uncertainties(np.column_stack([lowest, 1.0 - lowest]))
