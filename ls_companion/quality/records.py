"""Annotations → one tidy table: a row per (annotation, control).

Columns (``COLUMNS``): ``task_id, annotation_id, annotator, control, kind, value, lead_time, created_at,
was_cancelled, ground_truth``. ``value`` is a hashable canonical form of what the annotator answered for
that control (see ``value_of``), so that equal answers compare equal whatever their order in LS's JSON.

Cancelled (skipped) annotations get one row with ``control`` ``""`` and no value: they only count for the
cancellation rate. ``answered`` drops them (and older duplicates); ``crowd`` also drops ground-truth rows,
which are gold, not crowd answers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from ls_companion.errors import InputError
from ls_companion.files import parse_json, read_text
from ls_companion.records import JSON, Annotation, Task
from ls_companion.sources import read_rows

COLUMNS = [
    "task_id",
    "annotation_id",
    "annotator",
    "control",
    "kind",
    "value",
    "lead_time",
    "created_at",
    "was_cancelled",
    "ground_truth",
]

#: Control kinds we score (LS result ``type`` values, lower case).
CHOICES, LABELS, RECTANGLES, POLYGONS = "choices", "labels", "rectanglelabels", "polygonlabels"
TEXTAREA, RATING, NUMBER, TAXONOMY = "textarea", "rating", "number", "taxonomy"
KINDS = (CHOICES, LABELS, RECTANGLES, POLYGONS, TEXTAREA, RATING, NUMBER, TAXONOMY)
#: Kinds whose empty answer is meaningful (no region drawn, no tag chosen) rather than "no answer".
_EMPTY_IS_ANSWER = (LABELS, RECTANGLES, POLYGONS, TAXONOMY)
_DEFAULT_SCALES = {RATING: (1.0, 5.0)}


class Span(NamedTuple):
    """A labeled text span (character offsets, end exclusive)."""

    start: int
    end: int
    label: str
    text: str = ""


class Box(NamedTuple):
    """A rectangle in percent of the image, rotated (degrees, clockwise) about its top-left corner.

    ``aspect`` is the image's width / height, needed only to rotate in pixel space.
    """

    x: float
    y: float
    width: float
    height: float
    rotation: float
    label: str
    aspect: float = 1.0


class Polygon(NamedTuple):
    """A polygon in percent of the image."""

    points: tuple[tuple[float, float], ...]
    label: str


@dataclass(frozen=True, slots=True)
class ScoredControl:
    """What the engine needs to know about one control tag of the labeling config."""

    name: str
    kind: str
    multiple: bool = False
    labels: tuple[str, ...] = ()
    scale: tuple[float, float] | None = None

    @property
    def categorical(self) -> bool:
        """Answers are one label out of a set: the consensus models (DS, GLAD, MACE) apply."""
        return (self.kind == CHOICES and not self.multiple) or self.kind == RATING


def _float_attr(attrs: Mapping[str, Any], key: str, default: float) -> float:
    try:
        return float(attrs[key])
    except (KeyError, TypeError, ValueError):
        return default


def data_keys(label_config: str) -> list[str]:
    """The task data keys the config's object tags read (``$text`` -> ``text``)."""
    from label_studio_sdk.label_interface.interface import LabelInterface  # see controls_from_config

    keys = []
    for obj in LabelInterface(label_config).objects:
        value = str(getattr(obj, "value", "") or "")
        if value.startswith("$"):
            keys.append(value[1:])
    return keys


def controls_from_config(label_config: str) -> dict[str, ScoredControl]:
    """The scorable controls of a labeling config, in config order (others are left out)."""
    # Here, not at the top: the engine's tables (crowd CSVs, exports, tests) never need the SDK's parser.
    from label_studio_sdk.label_interface.interface import LabelInterface

    try:
        interface = LabelInterface(label_config)
    except Exception as exc:  # the SDK raises assorted XML/parse errors
        raise InputError(f"the label config does not parse: {exc}") from None
    specs: dict[str, ScoredControl] = {}
    for control in interface.controls:
        kind = str(control.tag).lower()
        if kind not in KINDS:
            continue
        attrs = dict(control.attr or {})
        scale: tuple[float, float] | None = None
        if kind == RATING:
            scale = (1.0, _float_attr(attrs, "maxRating", 5.0))
        elif kind == NUMBER and "min" in attrs and "max" in attrs:
            scale = (_float_attr(attrs, "min", 0.0), _float_attr(attrs, "max", 1.0))
        specs[control.name] = ScoredControl(
            name=control.name,
            kind=kind,
            multiple=kind == CHOICES and attrs.get("choice") == "multiple",
            labels=tuple(control.labels or ()),
            scale=scale,
        )
    return specs


def infer_controls(tasks: Iterable[Task]) -> dict[str, ScoredControl]:
    """Controls guessed from the results themselves (LS exports carry no label config)."""
    kinds: dict[str, str] = {}
    multiple: set[str] = set()
    for task in tasks:
        for annotation in task.annotations:
            for result in annotation.result:
                name, kind = result.get("from_name"), str(result.get("type", "")).lower()
                if not name or kind not in KINDS:
                    continue
                kinds.setdefault(name, kind)
                if kind == CHOICES and len(result.get("value", {}).get("choices") or ()) > 1:
                    multiple.add(name)
    return {
        n: ScoredControl(n, k, multiple=n in multiple, scale=_DEFAULT_SCALES.get(k)) for n, k in kinds.items()
    }


# -- canonical values ---------------------------------------------------------------------------------


def _labels_of(value: Mapping[str, Any], kind: str) -> list[str]:
    found = value.get(kind) or value.get("labels") or []
    return [str(label) for label in found] or [""]


def _spans(results: Sequence[JSON]) -> tuple[Span, ...]:
    spans = []
    for result in results:
        value = result.get("value", {})
        if value.get("start") is None or value.get("end") is None:
            continue  # a span over HTML/XPath ranges has no plain offsets: not scored
        for label in _labels_of(value, LABELS):
            spans.append(Span(int(value["start"]), int(value["end"]), label, str(value.get("text") or "")))
    return tuple(sorted(spans))


def _boxes(results: Sequence[JSON]) -> tuple[Box, ...]:
    boxes = []
    for result in results:
        value = result.get("value", {})
        width, height = result.get("original_width"), result.get("original_height")
        aspect = float(width) / float(height) if width and height else 1.0
        for label in _labels_of(value, RECTANGLES):
            boxes.append(
                Box(
                    float(value.get("x", 0.0)),
                    float(value.get("y", 0.0)),
                    float(value.get("width", 0.0)),
                    float(value.get("height", 0.0)),
                    float(value.get("rotation") or 0.0),
                    label,
                    aspect,
                )
            )
    return tuple(sorted(boxes))


def _polygons(results: Sequence[JSON]) -> tuple[Polygon, ...]:
    polygons: list[Polygon] = []
    for result in results:
        value = result.get("value", {})
        points = tuple((float(x), float(y)) for x, y in value.get("points") or ())
        if len(points) < 3:
            continue
        polygons.extend(Polygon(points, label) for label in _labels_of(value, POLYGONS))
    return tuple(sorted(polygons))


def _number(results: Sequence[JSON], key: str) -> float | None:
    for result in results:
        raw = result.get("value", {}).get(key)
        if raw is not None:
            number = float(raw)
            return None if math.isnan(number) else number
    return None


def value_of(spec: ScoredControl, results: Sequence[JSON]) -> Any:
    """The canonical, hashable answer of one annotation for one control (None: no answer)."""
    kind = spec.kind
    if kind == CHOICES:
        chosen = sorted({str(c) for r in results for c in r.get("value", {}).get("choices") or ()})
        if spec.multiple:
            return tuple(chosen)
        return chosen[0] if len(chosen) == 1 else (tuple(chosen) if chosen else None)
    if kind == LABELS:
        return _spans(results)
    if kind == RECTANGLES:
        return _boxes(results)
    if kind == POLYGONS:
        return _polygons(results)
    if kind == TEXTAREA:
        texts = [str(t) for r in results for t in r.get("value", {}).get("text") or ()]
        return "\n".join(texts) if texts else None
    if kind in (RATING, NUMBER):
        return _number(results, kind)
    if kind == TAXONOMY:
        paths = {
            tuple(str(p) for p in path) for r in results for path in r.get("value", {}).get("taxonomy") or ()
        }
        return tuple(sorted(paths))
    return None


def normalize_answer(spec: ScoredControl, answer: Any) -> Any:
    """A gold answer given as in LS (a string, a list for multiple choices...) in canonical form."""
    if spec.kind == CHOICES:
        items = [answer] if isinstance(answer, str) else list(answer or ())
        return value_of(spec, [{"value": {"choices": items}}])
    if spec.kind in (RATING, NUMBER):
        return float(answer)
    if spec.kind == TAXONOMY:
        paths = answer if answer and isinstance(answer[0], list | tuple) else [answer]
        return tuple(sorted({tuple(str(p) for p in path) for path in paths}))
    if spec.kind == TEXTAREA:
        return "\n".join(answer) if isinstance(answer, list) else str(answer)
    return value_of(spec, [{"value": region} for region in answer])  # regions given as LS result values


# -- tables -------------------------------------------------------------------------------------------


def _timestamp(raw: str | None) -> pd.Timestamp:
    return pd.Timestamp(raw) if raw else pd.NaT


def _annotation_rows(
    annotation: Annotation, controls: Mapping[str, ScoredControl]
) -> Iterator[dict[str, Any]]:
    base = {
        "task_id": annotation.task_id,
        "annotation_id": annotation.id,
        "annotator": str(annotation.completed_by) if annotation.completed_by is not None else "unknown",
        "lead_time": annotation.lead_time if annotation.lead_time is not None else math.nan,
        "created_at": _timestamp(annotation.created_at),
        "was_cancelled": annotation.was_cancelled,
        "ground_truth": annotation.ground_truth,
    }
    if annotation.was_cancelled:
        yield {**base, "control": "", "kind": "", "value": None}
        return
    by_control: dict[str, list[JSON]] = {}
    for result in annotation.result:
        by_control.setdefault(str(result.get("from_name", "")), []).append(result)
    for name, spec in controls.items():
        results = by_control.get(name, [])
        if not results and spec.kind not in _EMPTY_IS_ANSWER and not spec.multiple:
            continue  # nothing answered for this control
        value = value_of(spec, results)
        if value is not None:
            yield {**base, "control": name, "kind": spec.kind, "value": value}


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=COLUMNS)
    table["value"] = table["value"].astype(object)
    table["created_at"] = pd.to_datetime(table["created_at"], utc=True)
    table["lead_time"] = table["lead_time"].astype(float)
    table["was_cancelled"] = table["was_cancelled"].astype(bool)
    table["ground_truth"] = table["ground_truth"].astype(bool)
    return table


def tasks_to_table(tasks: Iterable[Task], controls: Mapping[str, ScoredControl]) -> pd.DataFrame:
    """The tidy table of every annotation of ``tasks`` (records from ``LabelStudioClient.list_tasks``)."""
    rows = [row for task in tasks for a in task.annotations for row in _annotation_rows(a, controls)]
    return _frame(rows)


def predictions_to_table(tasks: Iterable[Task], controls: Mapping[str, ScoredControl]) -> pd.DataFrame:
    """Model predictions as ``task_id, control, kind, value, model_version, score`` (one row per control)."""
    rows = []
    for task in tasks:
        for prediction in task.predictions:
            for name, spec in controls.items():
                results = [r for r in prediction.result if r.get("from_name") == name]
                value = value_of(spec, results) if results else None
                if value is not None:
                    rows.append(
                        {
                            "task_id": task.id,
                            "control": name,
                            "kind": spec.kind,
                            "value": value,
                            "model_version": prediction.model_version or "",
                            "score": prediction.score,
                        }
                    )
    columns = ["task_id", "control", "kind", "value", "model_version", "score"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["value"] = frame["value"].astype(object)
    return frame


def crowd_to_table(labels: pd.DataFrame, control: str = "label", where: str = "crowd labels") -> pd.DataFrame:
    """Crowd labels ``item, worker, label`` (strings) as the tidy table of one single-choice control."""
    missing = {"item", "worker", "label"} - set(labels.columns)
    if missing:
        raise InputError(
            f"{where}: crowd labels need the columns item, worker, label (missing: {', '.join(sorted(missing))})"
        )
    repeated = labels.duplicated(["item", "worker"])
    if repeated.any():
        row = int(repeated.to_numpy().argmax())
        item, worker = labels["item"].iloc[row], labels["worker"].iloc[row]
        raise InputError(f"{where}: row {row + 1} labels item {item!r} by worker {worker!r} a second time")
    n = len(labels)
    table = pd.DataFrame(
        {
            "task_id": labels["item"].astype(str).to_numpy(dtype=object),
            "annotation_id": range(1, n + 1),
            "annotator": labels["worker"].astype(str).to_numpy(dtype=object),
            "control": control,
            "kind": CHOICES,
            "value": labels["label"].astype(str).to_numpy(dtype=object),
            "lead_time": math.nan,
            "created_at": pd.NaT,
            "was_cancelled": False,
            "ground_truth": False,
        },
        columns=COLUMNS,
    )
    table["created_at"] = pd.to_datetime(table["created_at"], utc=True)
    return table


def read_crowd_csv(path: Path) -> pd.DataFrame:
    """A crowd CSV ``item,worker,label`` (ids read as strings) as the tidy table."""
    rows = list(read_rows(path))
    if not rows:
        raise InputError(f"{path}: the CSV file holds no labels")
    return crowd_to_table(pd.DataFrame(rows, dtype=object), where=str(path))


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class _ExportValue(_Open):
    """What the engine reads of a result's ``value`` (``value_of``); other keys pass unchecked."""

    choices: list[str | int | float] | None = None
    labels: list[str | int | float] | None = None
    start: int | None = None
    end: int | None = None
    text: str | list[str] | None = None
    x: float | None = None
    y: float | None = None
    width: float | None = None
    height: float | None = None
    rotation: float | None = None
    points: list[tuple[float, float]] | None = None
    rating: float | None = None
    number: float | None = None
    taxonomy: list[list[str | int | float]] | None = None


class _ExportResult(_Open):
    from_name: str | None = None
    type: str | None = None
    value: _ExportValue = Field(default_factory=_ExportValue)
    original_width: float | None = None
    original_height: float | None = None


class _ExportAnnotation(_Open):
    id: int
    completed_by: int | dict[str, Any] | None = None
    result: list[_ExportResult] | None = None
    lead_time: float | None = None
    created_at: str | None = None


class _ExportTask(_Open):
    id: int
    data: dict[str, Any] | None = None
    meta: dict[str, Any] | None = None
    annotations: list[_ExportAnnotation] | None = None
    predictions: list[_Open] | None = None


_EXPORT = TypeAdapter(list[_ExportTask])


def read_export(path: Path) -> list[Task]:
    """The tasks of a Label Studio JSON export (``exportType=JSON``); a malformed one names its place."""
    raw = parse_json(read_text(path), str(path))
    if not isinstance(raw, list):
        raise InputError(f"{path}: a Label Studio JSON export is a list of tasks with an id")
    try:
        _EXPORT.validate_python(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        place = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
        raise InputError(f"{path}: task{place}: {first['msg']}") from None
    return [Task.from_api(task) for task in raw]


def answered(table: pd.DataFrame) -> pd.DataFrame:
    """Answered (not cancelled) rows, one per (task, control, annotator): a re-annotation replaces the older."""
    rows = table[~table["was_cancelled"].to_numpy(dtype=bool)]
    if rows.empty:
        return rows
    keys = ["task_id", "control", "annotator", "ground_truth"]
    if rows.duplicated(keys).any():
        rows = rows.sort_values(["created_at", "annotation_id"], kind="stable").drop_duplicates(
            keys, keep="last"
        )
    return rows


def crowd(table: pd.DataFrame) -> pd.DataFrame:
    """The answers agreement and consensus are computed on: answered, not ground truth."""
    rows = answered(table)
    return rows[~rows["ground_truth"].to_numpy(dtype=bool)]


#: Decimals of the numbers the engine hands out (``metrics --json``, report.json).
DECIMALS = 4


def number_text(value: Any, digits: int = 3) -> str:
    """A number as people read it, in the report and the CLI's tables: fixed ``digits``, "–" for a
    missing or non-finite one, yes/no for a flag."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def jsonable(value: Any, decimals: int | None = None) -> Any:
    """``value`` as plain JSON: the one conversion every number takes on its way out (task meta,
    ``metrics --json``, report.json).

    Regions become objects, tuples/lists/sets lists, mappings get text keys, numpy scalars are
    unwrapped, NaN and infinities become None, floats are rounded to ``decimals`` when given, times
    become ISO text and paths text.
    """
    if isinstance(value, Span | Box | Polygon):
        return {k: jsonable(v, decimals) for k, v in value._asdict().items()}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, decimals) for k, v in value.items()}
    if isinstance(value, tuple | list | set | frozenset):
        return [jsonable(v, decimals) for v in value]
    if isinstance(value, np.generic):
        return jsonable(value.item(), decimals)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return value if decimals is None else round(value, decimals)
    if isinstance(value, datetime):  # pandas' Timestamp too
        return None if pd.isna(value) else value.isoformat()
    if isinstance(value, Path):
        return str(value)
    return value
