"""A project's trained models: one fitted model per served control, with the spec it was trained for."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ls_companion.modelselect import SelectedModel
from ls_companion.textclassifier import TextClassifier, text_candidates
from ml_backend.labelconfig import ControlSpec
from ml_backend.models.span_tagger import SpanTagger, TaggedText
from ml_backend.models.word_clusters import WordClusters

Model = TextClassifier | SpanTagger | SelectedModel


@dataclass(frozen=True, slots=True)
class ClassOutput:
    """Class probabilities of a batch: a distribution per row (single) or one per class (multi)."""

    classes: tuple[str, ...]
    probabilities: NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class SpanOutput:
    classes: tuple[str, ...]
    texts: tuple[TaggedText, ...]


ControlOutput = ClassOutput | SpanOutput


@dataclass(frozen=True, slots=True)
class TrainedControl:
    spec: ControlSpec
    model: Model

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.model.classes_)

    def predict(self, texts: Sequence[str]) -> ControlOutput:
        if isinstance(self.model, SpanTagger):
            return SpanOutput(self.classes, tuple(self.model.predict(texts)))
        return ClassOutput(self.classes, self.model.predict_proba(texts))

    def serves(self, spec: ControlSpec) -> bool:
        """Whether this model still fits ``spec``: same control and Text, and no class the config dropped."""
        mine = self.spec
        return (
            mine.name == spec.name
            and mine.kind == spec.kind
            and mine.to_name == spec.to_name
            and mine.value_key == spec.value_key
            and set(self.classes) <= set(spec.classes)
        )


@dataclass(frozen=True, slots=True)
class ModelBundle:
    """What one training run publishes for a project."""

    controls: Mapping[str, TrainedControl]

    def get(self, name: str) -> TrainedControl | None:
        return self.controls.get(name)

    def serving(self, spec: ControlSpec) -> TrainedControl | None:
        """The model of ``spec``'s control, if it still fits the (possibly edited) config."""
        trained = self.controls.get(spec.name)
        return trained if trained is not None and trained.serves(spec) else None

    def first(self) -> TrainedControl:
        return next(iter(self.controls.values()))


def new_model(
    spec: ControlSpec, *, word_clusters: WordClusters | None = None, selection_budget: float = 20.0
) -> Model:
    """The untrained model for a control kind (``word_clusters`` feed the span tagger).

    A single-choice control gets the text candidate its project's annotations select, calibrated
    (``ls_companion.modelselect``); ``selection_budget`` bounds the search in seconds."""
    if spec.kind == "spans":
        return SpanTagger(word_clusters=word_clusters)
    if spec.kind == "single":
        return SelectedModel(text_candidates("single"), budget_seconds=selection_budget)
    return TextClassifier(spec.kind)
