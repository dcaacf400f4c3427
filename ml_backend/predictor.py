"""Predictions and scores of a loaded model version for a batch of tasks (pure: no HTTP, no Label Studio).

A prediction covers every control the model still serves under the current config; its ``score`` is the
lowest confidence among those controls (the least certain control decides the task's rank).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ml_backend.errors import InvalidRequest, MediaError, MediaUnavailable, NotTrained
from ml_backend.labelconfig import ControlSpec, ParsedConfig
from ml_backend.media import MediaFetcher, read_input, read_inputs
from ml_backend.models.bundle import TrainedControl
from ml_backend.registry import plugin_named, pretrained_model
from ml_backend.store import LoadedModel

log = logging.getLogger(__name__)
JSON = dict[str, Any]
FloatArray = NDArray[np.float64]

#: The version /setup reports and predictions carry before the first training, without and with a
#: pretrained plugin serving a control of the config.
UNTRAINED = "untrained"
PRETRAINED = "pretrained"


def _round(values: FloatArray) -> list[float]:
    rounded: list[float] = np.round(values, 6).tolist()
    return rounded


def serves(loaded: LoadedModel | None, spec: ControlSpec) -> bool:
    """Whether ``spec`` gets predictions: a trained model that still fits it, or a pretrained plugin."""
    trained = loaded is not None and loaded.bundle.serving(spec) is not None
    return trained or not plugin_named(spec.plugin).trainable


def serving_controls(loaded: LoadedModel | None, config: ParsedConfig) -> list[TrainedControl]:
    """The models that answer for ``config``: the trained ones that still fit it, and pretrained ones
    (loaded on first use: /setup, which LS gives 3 s, asks ``serves`` instead)."""
    controls: list[TrainedControl] = []
    for spec in config.controls:
        if not serves(loaded, spec):
            continue
        trained = loaded.bundle.serving(spec) if loaded is not None else None
        controls.append(trained or TrainedControl(spec, pretrained_model(spec)))
    return controls


def minimum_score(loaded: LoadedModel | None, default: float) -> float:
    """The project's minimum pre-label score: the version's ``min_score`` metadata, else ``default``."""
    project_minimum = loaded.metadata.get("min_score") if loaded is not None else None
    return default if project_minimum is None else float(project_minimum)


def serving_version(loaded: LoadedModel | None, serving: bool) -> str:
    """The version /setup reports and predictions carry (``serving``: some control is served)."""
    if loaded is not None:
        return loaded.version
    return PRETRAINED if serving else UNTRAINED


def predict_tasks(
    controls: Sequence[TrainedControl],
    version: str,
    tasks: Sequence[Mapping[str, Any]],
    media: MediaFetcher | None = None,
    *,
    min_score: float = 0.0,
) -> list[list[JSON]]:
    """Label Studio's ``results``: per task, ``[]`` or ``[prediction]`` (positional, as LS matches them).

    A task without a usable input for a control (no text, an image that cannot be fetched or decoded:
    logged) gets nothing from that control. A task whose score is below ``min_score`` (see
    ``minimum_score``) gets ``[]``: no guess to anchor its annotator. The uncertainty triple is not part
    of a prediction: LS keeps only result, score and model_version (``/score`` has the triple).
    """
    n = len(tasks)
    results: list[list[JSON]] = [[] for _ in range(n)]
    doubt = np.full(n, -1.0)  # least confidence of the most uncertain control per task
    for trained in controls:
        inputs = read_inputs(trained.spec, tasks, media)
        rows = [i for i, value in enumerate(inputs) if value is not None]
        if not rows:
            continue
        output = trained.predict([inputs[i] for i in rows])
        doubt[rows] = np.maximum(doubt[rows], output.uncertainty.least_confidence)
        for row, task_items in zip(rows, output.regions, strict=True):
            results[row].extend(task_items)
    scores = np.round(1.0 - doubt, 6).tolist()
    return [
        [{"result": result, "score": score, "model_version": version}] if min_score <= score <= 1.0 else []
        for result, score in zip(results, scores, strict=True)
    ]


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """Scores of a batch for one control; arrays are in input order, without the skipped tasks."""

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
    #: Tasks not scored because their media could not be fetched or decoded: ``{"index", "id", "field"}``.
    skipped: list[JSON] = field(default_factory=list)

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
            "skipped": self.skipped,
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

    def score_texts(
        self, texts: Sequence[Any], ids: Sequence[Any] | None = None, skipped: Sequence[JSON] = ()
    ) -> ScoreResult:
        """Scores of model inputs (texts, or decoded images for an Image control)."""
        if len(texts):
            output = self.trained.predict(texts)
            unc, proba = output.uncertainty, output.probabilities
            least_confidence, margin, entropy, score = (
                unc.least_confidence,
                unc.margin,
                unc.entropy,
                unc.score,
            )
        else:  # every task of the batch skipped
            proba = None if self.kind == "spans" else np.zeros((0, len(self.classes)))
            least_confidence = margin = entropy = score = np.zeros(0)
        return ScoreResult(
            model_version=self.model_version,
            control=self.control,
            kind=self.kind,
            classes=self.classes,
            ids=list(ids) if ids is not None else list(range(len(texts))),
            probabilities=proba,
            least_confidence=least_confidence,
            margin=margin,
            entropy=entropy,
            score=score,
            skipped=list(skipped),
        )

    def score_tasks(
        self, tasks: Sequence[Mapping[str, Any]], media: MediaFetcher | None = None
    ) -> ScoreResult:
        """Score ``[{"id": ..., "data": {...}}, ...]``; every task needs the control's input.

        A task without it, or whose image the backend can never fetch (a reference it does not take, no
        media setup), is a bad request (422). One whose image fails on its own (an HTTP error, not
        decodable: ``MediaUnavailable``, logged) is left out and listed in ``skipped`` with its
        position: a dead link in a large pool of remote images must not stop the whole scan."""
        spec = self.trained.spec
        ids, inputs, skipped = [], [], []
        for k, task in enumerate(tasks):
            field_path = f"tasks[{k}].data.{self.value_key}"
            try:
                value = read_input(spec, task, media)
            except MediaUnavailable as exc:
                log.warning("task %s: not scored for %s: %s", task.get("id"), spec.name, exc.detail)
                skipped.append({"index": k, "id": task.get("id"), "field": field_path})
                continue
            except MediaError as exc:
                raise InvalidRequest(exc.detail, field=field_path) from None
            if value is None:
                what = "a text" if spec.object_tag == "Text" else f"a usable {spec.object_tag.lower()}"
                raise InvalidRequest(f"{what} is required", field=field_path)
            ids.append(task.get("id"))
            inputs.append(value)
        return self.score_texts(inputs, ids, skipped)
