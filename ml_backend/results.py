"""Model outputs as Label Studio result items (valid for the config by construction).

Label Studio stores predictions without checking them against the labeling config, so every item
here names only the control, its Text and classes the config offers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ml_backend.labelconfig import ControlSpec
from ml_backend.models.bundle import ClassOutput, ControlOutput, SpanOutput
from ml_backend.scoring import Uncertainties

#: A class is predicted for a multi-label control when its probability reaches this value.
MULTI_LABEL_THRESHOLD = 0.5

JSON = dict[str, Any]


def control_results(
    spec: ControlSpec, output: ControlOutput, texts: list[str], unc: Uncertainties
) -> list[list[JSON]]:
    """One list of result items per text for one control."""
    if isinstance(output, SpanOutput):
        return _span_results(spec, output, texts)
    if spec.kind == "multi":
        return _multi_results(spec, output)
    return _single_results(spec, output, unc)


def _single_results(spec: ControlSpec, output: ClassOutput, unc: Uncertainties) -> list[list[JSON]]:
    names = [output.classes[k] for k in output.probabilities.argmax(axis=1).tolist()]
    scores = np.round(unc.score, 6).tolist()
    base = {"from_name": spec.name, "to_name": spec.to_name, "type": "choices"}
    return [
        [{**base, "value": {"choices": [name]}, "score": score}]
        for name, score in zip(names, scores, strict=True)
    ]


def _multi_results(spec: ControlSpec, output: ClassOutput) -> list[list[JSON]]:
    rows: list[list[JSON]] = []
    chosen = output.probabilities >= MULTI_LABEL_THRESHOLD
    for probabilities, picked in zip(output.probabilities, chosen, strict=True):
        if not picked.any():
            rows.append([])  # "no class applies" is a prediction too; its score still ranks the item
            continue
        names = [output.classes[k] for k in np.flatnonzero(picked).tolist()]
        rows.append([_choices(spec, names, float(probabilities[picked].min()))])
    return rows


def _span_results(spec: ControlSpec, output: SpanOutput, texts: list[str]) -> list[list[JSON]]:
    rows: list[list[JSON]] = []
    for text, tagged in zip(texts, output.texts, strict=True):
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
                for n, span in enumerate(tagged.spans)
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
