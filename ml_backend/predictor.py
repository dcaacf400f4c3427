"""Predictions and scores of a loaded model version for a batch of tasks (pure: no HTTP, no Label Studio).

A prediction covers every control the model still serves under the current config; its ``score`` is the
lowest confidence among those controls (the least certain control decides the task's rank).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ml_backend.errors import InvalidRequest, NotTrained
from ml_backend.labelconfig import ParsedConfig
from ml_backend.models.bundle import ClassOutput, TrainedControl
from ml_backend.results import control_results
from ml_backend.scoring import Uncertainties, uncertainties
from ml_backend.store import LoadedModel

JSON = dict[str, Any]
FloatArray = NDArray[np.float64]


def _round(values: FloatArray) -> list[float]:
    rounded: list[float] = np.round(values, 6).tolist()
    return rounded


def predict_tasks(
    loaded: LoadedModel, config: ParsedConfig, tasks: Sequence[Mapping[str, Any]], *, min_score: float = 0.0
) -> list[list[JSON]]:
    """Label Studio's ``results``: per task, ``[]`` or ``[prediction]`` (positional, as LS matches them).

    The uncertainty triple is not part of a prediction: LS keeps only result, score and model_version
    (``/score`` has the triple). A task whose score is below the project's minimum (the version's
    ``min_score`` metadata, else ``min_score``) gets ``[]``: no guess to anchor its annotator.
    """
    project_minimum = loaded.metadata.get("min_score")
    threshold = min_score if project_minimum is None else float(project_minimum)
    served = [
        (spec, trained) for spec in config.controls if (trained := loaded.bundle.serving(spec)) is not None
    ]
    n = len(tasks)
    results: list[list[JSON]] = [[] for _ in range(n)]
    doubt = np.full(n, -1.0)  # least confidence of the most uncertain control per task
    for spec, trained in served:
        key = spec.value_key
        rows: list[int] = []
        texts: list[str] = []
        for i, task in enumerate(tasks):
            text = _data(task).get(key)
            if isinstance(text, str):
                rows.append(i)
                texts.append(text)
        if not rows:
            continue
        output = trained.predict(texts)
        unc = uncertainties(spec.kind, output)
        items = control_results(spec, output, texts, unc)
        doubt[rows] = np.maximum(doubt[rows], unc.least_confidence)
        for row, task_items in zip(rows, items, strict=True):
            results[row].extend(task_items)
    version = loaded.version
    scores = np.round(1.0 - doubt, 6).tolist()
    return [
        [{"result": result, "score": score, "model_version": version}] if threshold <= score <= 1.0 else []
        for result, score in zip(results, scores, strict=True)
    ]


def _data(task: Mapping[str, Any]) -> Mapping[str, Any]:
    data = task.get("data")
    return data if isinstance(data, Mapping) else {}


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """Scores of a batch for one control; arrays are in input order."""

    model_version: str
    control: str
    kind: str
    classes: tuple[str, ...]
    ids: list[Any]
    probabilities: FloatArray | None  # (n, classes) for single/multi; None for spans
    least_confidence: FloatArray
    margin: FloatArray
    entropy: FloatArray
    score: FloatArray

    def items(self) -> list[JSON]:
        lc, mg, en, sc = (_round(a) for a in (self.least_confidence, self.margin, self.entropy, self.score))
        probabilities = np.round(self.probabilities, 6).tolist() if self.probabilities is not None else None
        rows: list[JSON] = []
        for k, item_id in enumerate(self.ids):
            row: JSON = {"id": item_id}
            if probabilities is not None:
                row["probabilities"] = probabilities[k]
            row.update(least_confidence=lc[k], margin=mg[k], entropy=en[k], score=sc[k])
            rows.append(row)
        return rows

    def as_json(self) -> JSON:
        return {
            "model_version": self.model_version,
            "control": self.control,
            "kind": self.kind,
            "classes": list(self.classes),
            "items": self.items(),
        }


class Scorer:
    """One control of one loaded version, for scoring many texts (active learning's pools)."""

    def __init__(self, loaded: LoadedModel, control: str | None = None) -> None:
        if not loaded.bundle.controls:
            raise NotTrained(f"project {loaded.project_id} has no trained control")
        trained = loaded.bundle.first() if control is None else loaded.bundle.get(control)
        if trained is None:
            names = ", ".join(loaded.bundle.controls)
            raise InvalidRequest(
                f"no trained model for control {control!r} (trained: {names})", field="control"
            )
        self.loaded = loaded
        self.trained: TrainedControl = trained

    @property
    def model_version(self) -> str:
        return self.loaded.version

    @property
    def control(self) -> str:
        return self.trained.spec.name

    @property
    def value_key(self) -> str:
        return self.trained.spec.value_key

    @property
    def kind(self) -> str:
        return self.trained.spec.kind

    @property
    def classes(self) -> tuple[str, ...]:
        return self.trained.classes

    def score_texts(self, texts: Sequence[str], ids: Sequence[Any] | None = None) -> ScoreResult:
        output = self.trained.predict(texts)
        unc: Uncertainties = uncertainties(self.kind, output)
        return ScoreResult(
            model_version=self.model_version,
            control=self.control,
            kind=self.kind,
            classes=self.classes,
            ids=list(ids) if ids is not None else list(range(len(texts))),
            probabilities=output.probabilities if isinstance(output, ClassOutput) else None,
            least_confidence=unc.least_confidence,
            margin=unc.margin,
            entropy=unc.entropy,
            score=unc.score,
        )

    def score_tasks(self, tasks: Sequence[Mapping[str, Any]]) -> ScoreResult:
        """Score ``[{"id": ..., "data": {...}}, ...]``; every task needs the control's text."""
        texts: list[str] = []
        for k, task in enumerate(tasks):
            text = _data(task).get(self.value_key)
            if not isinstance(text, str):
                raise InvalidRequest("a text is required", field=f"tasks[{k}].data.{self.value_key}")
            texts.append(text)
        return self.score_texts(texts, [task.get("id") for task in tasks])
