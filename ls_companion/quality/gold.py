"""Gold answers: reading them, scoring annotators against them, and the qualification test.

Gold comes from three places, all reduced to ``task_id, control, value`` (canonical values):
the active-learning store ``DATA_DIR/projects/<id>/gold.jsonl`` (``{"task_id", "source_id", "control",
"answer"}``), a ``--gold`` file (CSV ``item,label`` or JSONL ``{task_id|item|source_id, label|answer}``),
and ground-truth annotations in Label Studio. Gold answers are never written to Label Studio.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.metrics import precision_recall_fscore_support
from statsmodels.stats.proportion import proportion_confint

from ls_companion.errors import InputError
from ls_companion.projectdata import GoldStore
from ls_companion.quality.records import (
    DECIMALS,
    LABELS,
    POLYGONS,
    RECTANGLES,
    TEXTAREA,
    ScoredControl,
    answered,
    jsonable,
    normalize_answer,
)
from ls_companion.quality.similarity import similarities
from ls_companion.sources import read_rows

GOLD_COLUMNS = ["task_id", "control", "value"]
#: Similarity at which an answer counts as correct; 1.0 (exact) for kinds not listed.
CORRECT_AT = {LABELS: 0.5, RECTANGLES: 0.5, POLYGONS: 0.5, TEXTAREA: 0.9}
PASSED, FAILED, UNDECIDED, PENDING = "passed", "failed", "undecided", "pending"


_RAW_COLUMNS = ["task_id", "item", "control", "answer"]


def read_gold_store(path: Path) -> pd.DataFrame:
    """The active-learning store as raw rows, read by its own ``GoldStore`` (which skips a torn line)."""
    records = GoldStore(path).load().values()
    rows = [
        {"task_id": r.task_id, "item": r.source_id, "control": r.control, "answer": r.answer} for r in records
    ]
    return pd.DataFrame(rows, columns=_RAW_COLUMNS)


def read_gold_file(path: Path) -> pd.DataFrame:
    """A gold file as raw rows ``task_id, item, control, answer`` (missing parts as None)."""
    if not path.is_file():
        raise InputError(f"{path}: gold file not found")
    if path.suffix.lower() not in (".csv", ".jsonl", ".ndjson"):
        raise InputError(f"{path}: gold files are .csv (item,label) or .jsonl")
    rows = []
    for number, record in enumerate(read_rows(path), start=1):
        answer = record.get("answer", record.get("label"))
        key = record.get("task_id"), record.get("item", record.get("source_id"))
        if answer is None or (key[0] in (None, "") and key[1] in (None, "")):
            raise InputError(f"{path}: row {number} needs task_id, item or source_id, and label or answer")
        rows.append({"task_id": key[0], "item": key[1], "control": record.get("control"), "answer": answer})
    return pd.DataFrame(rows, columns=_RAW_COLUMNS)


def _default_control(controls: Mapping[str, ScoredControl]) -> str:
    categorical = [name for name, spec in controls.items() if spec.categorical]
    if len(controls) == 1:
        return next(iter(controls))
    if len(categorical) == 1:
        return categorical[0]
    raise InputError("the gold file names no control and the project has several: add a control column")


def _missing(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def _task_id(record: Mapping[str, Any], source_ids: Mapping[str, Any] | None, integer_ids: bool) -> Any:
    if not _missing(record["task_id"]):
        return int(record["task_id"]) if integer_ids else str(record["task_id"])
    item = str(record["item"])
    if source_ids is not None:
        return source_ids.get(item)  # None: the item is not in the project (yet)
    return int(item) if integer_ids and item.isdigit() else item


def resolve_gold(
    raw: pd.DataFrame,
    controls: Mapping[str, ScoredControl],
    *,
    source_ids: Mapping[str, Any] | None = None,
    integer_ids: bool = True,
) -> pd.DataFrame:
    """Raw gold rows → ``task_id, control, value``.

    Rows without a task id are looked up by ``item`` in ``source_ids`` (a project's source id → task id)
    when given, else the item is the task id (crowd data; ``integer_ids`` for Label Studio task ids).
    """
    if raw.empty:
        return pd.DataFrame(columns=GOLD_COLUMNS)
    default = _default_control(controls)
    rows = []
    for record in raw.to_dict(orient="records"):
        control = default if _missing(record["control"]) else str(record["control"])
        spec = controls.get(control)
        if spec is None:
            raise InputError(f"gold names the control {control!r}, which the label config does not have")
        task_id = _task_id(record, source_ids, integer_ids)
        if task_id is not None:
            rows.append(
                {"task_id": task_id, "control": control, "value": normalize_answer(spec, record["answer"])}
            )
    gold = pd.DataFrame(rows, columns=GOLD_COLUMNS)
    gold["value"] = gold["value"].astype(object)
    return gold.drop_duplicates(["task_id", "control"], keep="last")


def gold_from_table(table: pd.DataFrame) -> pd.DataFrame:
    """Ground-truth annotations of the table as gold (the latest one per task and control)."""
    rows = answered(table)
    truth = rows[rows["ground_truth"].to_numpy(dtype=bool)].sort_values("created_at", kind="stable")
    gold = truth[GOLD_COLUMNS].drop_duplicates(["task_id", "control"], keep="last")
    return gold.reset_index(drop=True)


def combine_gold(*sources: pd.DataFrame) -> pd.DataFrame:
    """Gold from several sources; an earlier source wins for the same task and control."""
    frames = [s[GOLD_COLUMNS] for s in sources if s is not None and not s.empty]
    if not frames:
        return pd.DataFrame(columns=GOLD_COLUMNS)
    return pd.concat(frames, ignore_index=True).drop_duplicates(["task_id", "control"], keep="first")


def gold_series(gold: pd.DataFrame, control: str) -> pd.Series:
    """Gold answers of one control, indexed by task id."""
    part = gold[gold["control"] == control]
    return pd.Series(part["value"].to_numpy(object), index=part["task_id"].to_numpy(), dtype=object)


def score_answers(rows: pd.DataFrame, gold: pd.Series, spec: ScoredControl) -> pd.DataFrame:
    """Answers to gold tasks with ``gold``, ``similarity`` and ``correct`` (similarity ≥ ``CORRECT_AT``)."""
    scored = rows[rows["task_id"].isin(gold.index)].copy()
    scored["gold"] = scored["task_id"].map(gold).astype(object)
    scored["similarity"] = similarities(
        spec, scored["value"].to_numpy(object), scored["gold"].to_numpy(object)
    )
    scored["correct"] = scored["similarity"] >= CORRECT_AT.get(spec.kind, 1.0) - 1e-12
    return scored


def wilson(correct: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (statsmodels)."""
    if n == 0:
        return 0.0, 1.0
    low, high = proportion_confint(correct, n, alpha=1.0 - confidence, method="wilson")
    return float(low), float(high)


def _weighted_prf(part: pd.DataFrame) -> tuple[float, float, float]:
    truth = part["gold"].astype(str).to_numpy()
    given = part["value"].astype(str).to_numpy()
    p, r, f, _ = precision_recall_fscore_support(truth, given, average="weighted", zero_division=0)
    return float(p), float(r), float(f)


def annotator_gold(scored: pd.DataFrame, spec: ScoredControl, confidence: float = 0.95) -> pd.DataFrame:
    """Per annotator: gold answers, accuracy with its Wilson interval, weighted precision/recall/F1."""
    columns = ["annotator", "n_gold", "correct", "accuracy", "ci_low", "ci_high", "precision", "recall", "f1"]
    rows = []
    for annotator, part in scored.groupby("annotator", sort=True):
        n, correct = len(part), int(part["correct"].sum())
        low, high = wilson(correct, n, confidence)
        prf = _weighted_prf(part) if spec.categorical else (math.nan, math.nan, math.nan)
        rows.append([annotator, n, correct, correct / n, low, high, *prf])
    return pd.DataFrame(rows, columns=columns)


def per_class(scored: pd.DataFrame) -> pd.DataFrame:
    """Precision/recall/F1/support per gold class (categorical controls)."""
    truth = scored["gold"].astype(str).to_numpy()
    given = scored["value"].astype(str).to_numpy()
    classes = sorted(set(truth) | set(given))
    p, r, f, s = precision_recall_fscore_support(truth, given, labels=classes, zero_division=0)
    return pd.DataFrame({"label": classes, "precision": p, "recall": r, "f1": f, "support": s})


@dataclass(frozen=True, slots=True)
class Qualification:
    """The qualification test of one annotator on their first gold tasks."""

    annotator: str
    status: str
    n: int
    correct: int
    accuracy: float | None
    ci_low: float
    ci_high: float
    errors: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "annotator": self.annotator,
            "status": self.status,
            "n": self.n,
            "correct": self.correct,
            "accuracy": jsonable(self.accuracy, DECIMALS),
            "ci": jsonable([self.ci_low, self.ci_high], DECIMALS),
            "errors": self.errors,
        }


def decide(
    correct: int, n: int, needed: int, threshold: float, confidence: float
) -> tuple[str, float, float]:
    """Pass when the interval lies above ``threshold``, fail when below, else undecided (pending if n < needed)."""
    low, high = wilson(correct, n, confidence)
    if n and low >= threshold:
        return PASSED, low, high
    if n and high < threshold:
        return FAILED, low, high
    return (PENDING if n < needed else UNDECIDED), low, high


def qualification(
    scored: pd.DataFrame, *, n: int = 20, threshold: float = 0.85, confidence: float = 0.90
) -> list[Qualification]:
    """Each annotator's first ``n`` gold answers (by time): passed, failed, undecided or pending.

    ``confidence`` is two-sided: 0.90 decides at 95 % one-sided. With all answers right, 20 gold tasks
    give a Wilson lower bound of 0.88 (a pass at 0.85); 10 give 0.79, which cannot pass yet.
    """
    results = []
    ordered = scored.sort_values(["created_at", "annotation_id"], kind="stable", na_position="last")
    for annotator, part in ordered.groupby("annotator", sort=True):
        first = part.head(n)
        correct = int(first["correct"].sum())
        status, low, high = decide(correct, len(first), n, threshold, confidence)
        wrong = first[~first["correct"].to_numpy(dtype=bool)]
        errors = [
            {"task_id": jsonable(t), "control": c, "answer": jsonable(v), "expected": jsonable(g)}
            for t, c, v, g in zip(
                wrong["task_id"], wrong["control"], wrong["value"], wrong["gold"], strict=True
            )
        ]
        accuracy = correct / len(first) if len(first) else None
        results.append(
            Qualification(str(annotator), status, len(first), correct, accuracy, low, high, errors)
        )
    return results
