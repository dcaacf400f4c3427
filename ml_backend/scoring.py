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
  however long it is; a text without tokens is certain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ls_companion.uncertainty import entropy, least_confidence, margin
from ml_backend.models.bundle import ClassOutput, ControlOutput
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


def uncertainties(kind: str, output: ControlOutput) -> Uncertainties:
    if isinstance(output, ClassOutput):
        if kind == "multi":
            return multi_label_uncertainties(output.probabilities)
        return class_uncertainties(output.probabilities)
    return span_uncertainties(output.texts)


def class_uncertainties(probabilities: FloatArray) -> Uncertainties:
    return Uncertainties(least_confidence(probabilities), margin(probabilities), entropy(probabilities))


def multi_label_uncertainties(probabilities: FloatArray) -> Uncertainties:
    n_items, n_classes = probabilities.shape
    flat = probabilities.reshape(-1)
    pairs = np.column_stack([flat, 1.0 - flat])
    per_class = class_uncertainties(pairs)

    def mean(values: FloatArray) -> FloatArray:
        result: FloatArray = values.reshape(n_items, n_classes).mean(axis=1)
        return result

    return Uncertainties(mean(per_class.least_confidence), mean(per_class.margin), mean(per_class.entropy))


def span_uncertainties(texts: Sequence[TaggedText]) -> Uncertainties:
    n = len(texts)
    measures = [np.zeros(n), np.zeros(n), np.zeros(n)]
    lengths = np.array([t.marginals.shape[0] for t in texts], dtype=np.int64)
    if n == 0 or lengths.sum() == 0:
        return Uncertainties(*measures)
    tokens = np.concatenate([t.marginals for t in texts if t.marginals.shape[0]])
    per_token = class_uncertainties(tokens)
    has_tokens = lengths > 0
    starts = np.concatenate([[0], np.cumsum(lengths[has_tokens])[:-1]])
    for out, values in zip(
        measures, (per_token.least_confidence, per_token.margin, per_token.entropy), strict=True
    ):
        out[has_tokens] = np.maximum.reduceat(values, starts)
    return Uncertainties(*measures)
