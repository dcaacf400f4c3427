"""Model outputs as Label Studio result items (valid for the config by construction), shared by plugins,
and ``ProbabilityPlugin``, the base of plugins whose models give class probabilities (text, image).

Label Studio stores predictions without checking them against the labeling config, so every item
here names only the control, its object and classes the config offers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ml_backend.evaluation import multi_metrics, single_metrics
from ml_backend.models.span_tagger import TaggedText
from ml_backend.plugin import ControlSpec, ControlView, FloatArray, ModelPlugin, Output, Target
from ml_backend.scoring import class_uncertainties, multi_label_uncertainties

#: A class is predicted for a multi-label control when its probability reaches this value.
MULTI_LABEL_THRESHOLD = 0.5

JSON = dict[str, Any]


def class_output(spec: ControlSpec, classes: Sequence[str], probabilities: FloatArray) -> Output:
    """The Output of a class-probability model (single: a distribution per row; multi: one per class)."""
    if spec.kind == "multi":
        unc = multi_label_uncertainties(probabilities)
        return Output(_multi_results(spec, classes, probabilities), unc, probabilities)
    unc = class_uncertainties(probabilities)
    names = [classes[k] for k in probabilities.argmax(axis=1).tolist()]
    scores = np.round(unc.score, 6).tolist()
    regions = [[_choices(spec, [name], score)] for name, score in zip(names, scores, strict=True)]
    return Output(regions, unc, probabilities)


def class_metrics(
    spec: ControlSpec, classes: Sequence[str], probabilities: FloatArray, targets: Sequence[Target]
) -> dict[str, float]:
    """Holdout metrics of a class-probability model."""
    if spec.kind == "multi":
        chosen = [[classes[k] for k in np.flatnonzero(row >= MULTI_LABEL_THRESHOLD)] for row in probabilities]
        return multi_metrics([list(t) for t in targets], chosen, spec.classes)  # type: ignore[arg-type]
    predicted = [classes[k] for k in probabilities.argmax(axis=1)]
    return single_metrics([str(t) for t in targets], predicted)


def _multi_results(spec: ControlSpec, classes: Sequence[str], probabilities: FloatArray) -> list[list[JSON]]:
    rows: list[list[JSON]] = []
    chosen = probabilities >= MULTI_LABEL_THRESHOLD
    for row, picked in zip(probabilities, chosen, strict=True):
        if not picked.any():
            rows.append([])  # "no class applies" is a prediction too; its score still ranks the item
            continue
        names = [classes[k] for k in np.flatnonzero(picked).tolist()]
        rows.append([_choices(spec, names, float(row[picked].min()))])
    return rows


def span_results(spec: ControlSpec, tagged: Sequence[TaggedText], texts: Sequence[str]) -> list[list[JSON]]:
    rows: list[list[JSON]] = []
    for text, one in zip(texts, tagged, strict=True):
        rows.append(
            [
                {
                    "id": f"{spec.name}-{n}",
                    "from_name": spec.name,
                    "to_name": spec.to_name,
                    "type": "labels",
                    "value": {
                        "start": span.start,
                        "end": span.end,
                        "text": text[span.start : span.end],
                        "labels": [span.label],
                    },
                    "score": round(span.score, 6),
                }
                for n, span in enumerate(one.spans)
            ]
        )
    return rows


def _choices(spec: ControlSpec, names: list[str], score: float) -> JSON:
    return {
        "from_name": spec.name,
        "to_name": spec.to_name,
        "type": "choices",
        "value": {"choices": names},
        "score": round(score, 6),
    }


class ProbabilityPlugin(ModelPlugin):
    """A plugin whose fitted model has ``classes_`` and ``predict_proba(inputs)`` (Choices controls)."""

    def choices_spec(self, control: ControlView) -> ControlSpec | str:
        """The spec of a single- or multiple-choice control, or why it is not served."""
        if control.attrs.get("perregion") == "true":
            return "per-region choices are not served"
        incomplete = control.incomplete()
        if incomplete:
            return incomplete
        kind = "multi" if control.attrs.get("choice") == "multiple" else "single"
        if kind == "single" and len(control.classes) < 2:
            return "a single-choice control needs at least two choices"
        return control.spec(self.name, kind)

    def predict(self, spec: ControlSpec, model: Any, inputs: Sequence[Any]) -> Output:
        return class_output(spec, model.classes_, model.predict_proba(inputs))

    def evaluate(
        self, spec: ControlSpec, model: Any, inputs: Sequence[Any], targets: Sequence[Target]
    ) -> dict[str, float]:
        return class_metrics(spec, model.classes_, model.predict_proba(inputs), targets)
