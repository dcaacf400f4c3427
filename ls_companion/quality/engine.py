"""One call computes a project's quality: ``compute_project_quality(table, controls, gold, predictions)``.

The result (``QualityReport``) holds the task, annotator and project numbers, the consensus of each
control, the qualification tests and the drift alerts; ``task_meta()`` gives the small per-task dicts
the sync worker writes under ``meta["ls_companion"]["quality"]`` and ``to_dict()`` the JSON of
``ls-companion metrics``. The table is the tidy table of ``quality.records``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from ls_companion.errors import InputError
from ls_companion.quality import LOW_AGREEMENT, agreement, confusion, consensus, drift, gold, performance
from ls_companion.quality.records import (
    CHOICES,
    DECIMALS,
    NUMBER,
    RATING,
    TAXONOMY,
    TEXTAREA,
    ScoredControl,
    answered,
    crowd,
    jsonable,
)
from ls_companion.quality.similarity import similarities

#: Version of the per-task meta layout; bump when keys change meaning.
META_VERSION = 1
AGREEMENT_DECIMALS = 3
CONFIDENCE_DECIMALS = 2
#: Kinds whose consensus value is small enough to write into task meta (regions and texts are not).
_SMALL_VALUE_KINDS = (CHOICES, RATING, NUMBER, TAXONOMY)


@dataclass(frozen=True, slots=True)
class QualityOptions:
    """Knobs of the engine; the defaults are the documented ones (docs/quality.md)."""

    low_agreement: float = LOW_AGREEMENT
    #: GLAD and MACE need seconds even on a few tasks (about 7 s each on 15 labels, 60 s and 15 s on
    #: 25,000): the default suits a sync every few minutes; ``metrics`` runs all four. None: all four
    #: when gold can choose among them, else the fast two (``consensus_methods``; the sync, the report).
    methods: tuple[str, ...] | None = consensus.FAST_METHODS
    min_gold_to_choose: int = 10
    slow_methods_max_labels: int = consensus.SLOW_METHODS_MAX_LABELS
    gold_confidence: float = 0.95
    qualification_tasks: int = 20
    qualification_threshold: float = 0.85
    qualification_confidence: float = 0.90
    min_gold_for_score: int = 10
    session_gap_minutes: float = 30.0
    drift: bool = True
    drift_window: int = 50
    drift_alpha: float = 0.01
    drift_min_effect: float = 0.05
    #: Whether task meta says if the consensus matched gold: off, because it tells anyone who reads the
    #: task that it is a gold task (and, for two classes, its answer).
    gold_in_meta: bool = False


@dataclass(slots=True)
class ControlQuality:
    """Everything computed for one control."""

    spec: ScoredControl
    rows: pd.DataFrame
    pairs: pd.DataFrame
    tasks: (
        pd.DataFrame
    )  # task_id, n_annotators, agreement, consensus, confidence, annotation_id, gold_correct
    agreement: dict[str, Any]
    consensus: consensus.Consensus
    annotators: pd.DataFrame
    scored: pd.DataFrame
    qualification: list[gold.Qualification]
    to_consensus: pd.Series  # similarity of each answer (row index) with its task's consensus
    by_pair: pd.DataFrame  # agreement.pair_table: shared tasks, mean similarity, Cohen's kappa
    per_class: pd.DataFrame | None = None


@dataclass(slots=True)
class QualityReport:
    controls: dict[str, ControlQuality]
    tasks: pd.DataFrame  # one row per task: task_id, n_annotators, agreement, low_agreement, n_submitted
    annotators: pd.DataFrame  # performance + the primary control's agreement and gold numbers
    options: QualityOptions  # ``methods`` as run (never None)
    #: Every gold answer the numbers used (given and ground truth), ``task_id, control, value``.
    gold: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=gold.GOLD_COLUMNS))
    n_annotations: int = 0
    n_cancelled: int = 0
    drift_series: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=drift.SERIES_COLUMNS))
    alerts: list[drift.Alert] = field(default_factory=list)

    @property
    def primary(self) -> ControlQuality | None:
        """The first control (in config order) that has answers: the one the top-level numbers describe."""
        return next(iter(self.controls.values()), None)

    def task_meta(self, task_ids: Iterable[Any] | None = None) -> dict[Any, dict[str, Any]]:
        """Per-task dicts for ``meta["ls_companion"]["quality"]`` (see docs/quality.md for the keys)."""
        wanted = None if task_ids is None else set(task_ids)
        per_control = {name: _control_meta_rows(cq, self.options) for name, cq in self.controls.items()}
        overall = self.tasks if wanted is None else self.tasks[self.tasks["task_id"].isin(wanted)]
        metas: dict[Any, dict[str, Any]] = {}
        for row in overall.itertuples(index=False):
            controls = {name: rows[row.task_id] for name, rows in per_control.items() if row.task_id in rows}
            metas[row.task_id] = _task_meta(row, controls)
        return metas

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``ls-companion metrics`` (and of the report)."""
        return _report_dict(self)


# -- per control -------------------------------------------------------------------------------------------------


def _consensus_scores(cq_rows: pd.DataFrame, tasks: pd.DataFrame, spec: ScoredControl) -> pd.Series:
    """Similarity of each answer with its task's consensus, on tasks with two answers or more."""
    multi = tasks[tasks["n_annotators"] >= 2].set_index("task_id")["consensus"]
    rows = cq_rows[cq_rows["task_id"].isin(multi.index)]
    target = rows["task_id"].map(multi).to_numpy(object)
    if rows.empty:
        return pd.Series(dtype=float)
    return pd.Series(similarities(spec, rows["value"].to_numpy(object), target), index=rows.index)


def _gold_correct(tasks: pd.DataFrame, gold_answers: pd.Series, spec: ScoredControl) -> pd.Series:
    known = tasks["task_id"].isin(gold_answers.index)
    out = pd.Series([None] * len(tasks), index=tasks.index, dtype=object)
    if known.any():
        part = tasks[known]
        expected = part["task_id"].map(gold_answers).to_numpy(object)
        scores = similarities(spec, part["consensus"].to_numpy(object), expected)
        out[known] = list(scores >= gold.CORRECT_AT.get(spec.kind, 1.0) - 1e-12)
    return out


def control_quality(
    spec: ScoredControl,
    rows: pd.DataFrame,
    gold_answers: pd.Series,
    options: QualityOptions,
    model_proba: pd.DataFrame | None = None,
) -> ControlQuality:
    """Agreement, consensus, gold scores and qualification of one control (``rows``: its crowd answers;
    ``model_proba``: the model's out-of-fold probabilities, task ids × labels, for model-assisted consensus)."""
    spec = agreement.with_observed_scale(spec, rows["value"])
    pairs = agreement.annotation_pairs(rows, spec)
    tasks = agreement.task_agreement(rows, pairs)
    if spec.categorical:
        found = consensus.categorical_consensus(
            spec,
            rows,
            gold_answers if not gold_answers.empty else None,
            methods=options.methods or consensus.FAST_METHODS,
            min_gold=options.min_gold_to_choose,
            slow_max_labels=options.slow_methods_max_labels,
            model_proba=model_proba,
        )
    else:
        found = consensus.structured_consensus(
            spec, rows, pairs, gold_answers if not gold_answers.empty else None
        )
    tasks = tasks.merge(found.labels, on="task_id", how="left")
    if "annotation_id" not in tasks:
        tasks["annotation_id"] = None
    tasks["gold_correct"] = _gold_correct(tasks, gold_answers, spec)
    scored = gold.score_answers(rows, gold_answers, spec)
    annotators = agreement.annotator_agreement(pairs).set_index("annotator")
    to_consensus = _consensus_scores(rows, tasks, spec)
    vs_consensus = (
        to_consensus.groupby(rows.loc[to_consensus.index, "annotator"]).mean().rename("vs_consensus")
    )
    annotators = annotators.join(vs_consensus, how="outer")
    by_gold = gold.annotator_gold(scored, spec, options.gold_confidence).set_index("annotator")
    annotators = (
        annotators.join(by_gold.add_prefix("gold_"), how="outer").rename_axis("annotator").reset_index()
    )
    qualification = gold.qualification(
        scored,
        n=options.qualification_tasks,
        threshold=options.qualification_threshold,
        confidence=options.qualification_confidence,
    )
    per_class = gold.per_class(scored) if spec.categorical and not scored.empty else None
    by_pair = agreement.pair_table(pairs, spec)
    summary = agreement.project_agreement(rows, pairs, tasks, spec, by_pair)
    return ControlQuality(
        spec,
        rows,
        pairs,
        tasks,
        summary,
        found,
        annotators,
        scored,
        qualification,
        to_consensus,
        by_pair,
        per_class,
    )


# -- project ----------------------------------------------------------------------------------------------------------


def _overall_tasks(controls: Mapping[str, ControlQuality], threshold: float) -> pd.DataFrame:
    frames = [
        cq.tasks[["task_id", "n_annotators", "agreement"]].assign(low=lambda t: t["agreement"] < threshold)
        for cq in controls.values()
    ]
    if not frames:
        return pd.DataFrame(columns=["task_id", "n_annotators", "agreement", "low_agreement"])
    stacked = pd.concat(frames, ignore_index=True)
    grouped = stacked.groupby("task_id", sort=True)
    return pd.DataFrame(
        {
            "n_annotators": grouped["n_annotators"].max(),
            "agreement": grouped["agreement"].mean(),
            "low_agreement": grouped["low"].any(),
        }
    ).reset_index()


def annotator_accuracy(cq: ControlQuality, min_gold: int) -> dict[Any, float]:
    """Each annotator's ``quality_score`` on one control (gold accuracy, else agreement with the
    consensus; NaN without either): the accuracy the label-issue reliability weighs answers with."""
    indexed = cq.annotators.set_index("annotator")
    score = performance.quality_score(
        indexed["gold_accuracy"], indexed["vs_consensus"], indexed["gold_n_gold"], min_gold
    )
    return {annotator: float(value) for annotator, value in score.items()}


def _annotator_table(
    table: pd.DataFrame, primary: ControlQuality | None, options: QualityOptions
) -> pd.DataFrame:
    perf = performance.annotator_performance(table, pd.Timedelta(minutes=options.session_gap_minutes))
    if primary is None:
        return perf
    merged = perf.merge(primary.annotators, on="annotator", how="outer")
    status = {q.annotator: q.status for q in primary.qualification}
    merged["qualification"] = merged["annotator"].map(status)
    score = pd.Series(
        annotator_accuracy(primary, options.min_gold_for_score), name="quality_score", dtype=float
    )
    return merged.set_index("annotator").join(score).reset_index()


def _drift_events(
    cq: ControlQuality, predictions: pd.DataFrame | None
) -> Iterable[tuple[str, pd.DataFrame, Any]]:
    spec, correct_at = cq.spec, gold.CORRECT_AT.get(cq.spec.kind, 1.0) - 1e-12
    if not cq.scored.empty:
        yield "gold_accuracy", cq.scored.assign(ok=cq.scored["correct"]), "down"
    if not cq.to_consensus.empty:
        yield "agreement", cq.rows.loc[cq.to_consensus.index].assign(ok=cq.to_consensus >= correct_at), "down"
    if predictions is not None and not predictions.empty:
        model = predictions[predictions["control"] == spec.name].drop_duplicates("task_id", keep="last")
        model = model.set_index("task_id")["value"]
        rows = cq.rows[cq.rows["task_id"].isin(model.index)]
        if not rows.empty:
            target = rows["task_id"].map(model).to_numpy(object)
            disagree = similarities(spec, rows["value"].to_numpy(object), target) < correct_at
            yield "model_disagreement", rows.assign(ok=disagree), "up"
    if spec.categorical:
        yield "label_distribution", cq.rows, None


def _drift(
    controls: Mapping[str, ControlQuality], predictions: pd.DataFrame | None, options: QualityOptions
) -> tuple[pd.DataFrame, list[drift.Alert]]:
    frames: list[pd.DataFrame] = []
    alerts: list[drift.Alert] = []
    for name, cq in controls.items():
        if cq.rows["created_at"].isna().all():
            continue  # no timestamps (crowd CSVs): no time order to test
        for metric, events, direction in _drift_events(cq, predictions):
            series, found = drift.detect(
                events,
                metric,
                control=name,
                direction=direction,
                window=options.drift_window,
                alpha=options.drift_alpha,
                min_effect=options.drift_min_effect,
            )
            frames.append(series)
            alerts.extend(found)
    series = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=drift.SERIES_COLUMNS)
    return series, alerts


def consensus_methods(known_gold: pd.DataFrame, min_gold_to_choose: int) -> tuple[str, ...]:
    """All four methods when gold can choose among them, else the fast two (``methods=None``).

    Without enough gold the engine picks Dawid-Skene whatever GLAD and MACE say, and those two cost
    seconds to a minute each (crowd-kit's EM).
    """
    enough = not known_gold.empty and int(known_gold.groupby("control").size().max()) >= min_gold_to_choose
    return consensus.METHODS if enough else consensus.FAST_METHODS


def compute_project_quality(
    table: pd.DataFrame,
    controls: Mapping[str, ScoredControl],
    gold_answers: pd.DataFrame | None = None,
    predictions: pd.DataFrame | None = None,
    options: QualityOptions | None = None,
    model_proba: Mapping[str, pd.DataFrame] | None = None,
) -> QualityReport:
    """All quality numbers of one project.

    ``table``: the tidy annotation table (``records.tasks_to_table`` / ``crowd_to_table``);
    ``controls``: its controls (``records.controls_from_config``); ``gold_answers``: ``task_id, control,
    value`` (``gold.resolve_gold``; ground-truth annotations of the table are added automatically);
    ``predictions``: ``records.predictions_to_table`` for the model-disagreement drift; ``model_proba``:
    per control, the model's out-of-fold probabilities (task ids × labels) for model-assisted consensus.
    """
    options = options or QualityOptions()
    if not controls:
        raise InputError("the project has no control the quality engine can score")
    all_gold = gold.combine_gold(
        gold_answers if gold_answers is not None else pd.DataFrame(columns=gold.GOLD_COLUMNS),
        gold.gold_from_table(table),
    )
    if options.methods is None:
        options = replace(options, methods=consensus_methods(all_gold, options.min_gold_to_choose))
    answers = crowd(table)
    results: dict[str, ControlQuality] = {}
    for name, spec in controls.items():
        rows = answers[answers["control"] == name]
        if not rows.empty:
            proba = (model_proba or {}).get(name)
            results[name] = control_quality(spec, rows, gold.gold_series(all_gold, name), options, proba)
    primary = next(iter(results.values()), None)
    tasks = _overall_tasks(results, options.low_agreement)
    # Label Studio counts every distinct submitter (ground truth included) against a task's overlap.
    submitted = answered(table).groupby("task_id")["annotator"].nunique()
    tasks["n_submitted"] = tasks["task_id"].map(submitted).fillna(0).astype(int)
    report = QualityReport(
        controls=results,
        tasks=tasks,
        annotators=_annotator_table(table, primary, options),
        options=options,
        gold=all_gold,
        n_annotations=int(answers["annotation_id"].nunique()),
        n_cancelled=int(table.drop_duplicates("annotation_id")["was_cancelled"].sum()),
    )
    if options.drift:
        report.drift_series, report.alerts = _drift(results, predictions, options)
    return report


# -- output -----------------------------------------------------------------------------------------------------------


def _annotation_id(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


def _control_meta_rows(cq: ControlQuality, options: QualityOptions) -> dict[Any, dict[str, Any]]:
    """Each task's meta dict for one control (see docs/quality.md for the keys)."""
    out: dict[Any, dict[str, Any]] = {}
    small = cq.spec.kind in _SMALL_VALUE_KINDS
    for row in cq.tasks.itertuples(index=False):
        agreement_value = jsonable(row.agreement, AGREEMENT_DECIMALS)
        gold_correct = (
            None if row.gold_correct is None or not options.gold_in_meta else bool(row.gold_correct)
        )
        out[row.task_id] = {
            "agreement": agreement_value,
            "n_annotators": int(row.n_annotators),
            "low_agreement": bool(agreement_value is not None and row.agreement < options.low_agreement),
            "consensus": jsonable(row.consensus) if small else None,
            "consensus_annotation": _annotation_id(getattr(row, "annotation_id", None)),
            "consensus_confidence": jsonable(row.confidence, CONFIDENCE_DECIMALS),
            "method": cq.consensus.chosen,
            "gold_correct": gold_correct,
        }
    return out


def _task_meta(row: Any, controls: dict[str, dict[str, Any]]) -> dict[str, Any]:
    primary = next(iter(controls.values()))
    meta = {
        "v": META_VERSION,
        **primary,
        "agreement": jsonable(row.agreement, AGREEMENT_DECIMALS),
        "n_annotators": int(row.n_annotators),
        "low_agreement": bool(row.low_agreement),
    }
    if len(controls) > 1:
        meta["controls"] = controls
    return meta


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [jsonable(record, DECIMALS) for record in frame.to_dict(orient="records")]


def _report_dict(report: QualityReport) -> dict[str, Any]:
    primary = report.primary
    by_control = {name: cq.agreement for name, cq in report.controls.items()}
    consensus_by_control = {name: cq.consensus.summary() for name, cq in report.controls.items()}
    gold_tasks = {name: int(cq.scored["task_id"].nunique()) for name, cq in report.controls.items()}
    tasks = report.tasks
    return {
        "summary": {
            "n_tasks": len(tasks),
            "n_annotations": report.n_annotations,
            "n_cancelled": report.n_cancelled,
            "n_annotators": int(report.annotators["annotator"].nunique()),
            "controls": {name: cq.spec.kind for name, cq in report.controls.items()},
            "mean_agreement": jsonable(tasks.loc[tasks["n_annotators"] >= 2, "agreement"].mean(), DECIMALS),
            "low_agreement_threshold": report.options.low_agreement,
            "low_agreement_tasks": int(tasks["low_agreement"].sum()),
            "gold_tasks": gold_tasks,
        },
        "agreement": {
            **(jsonable(primary.agreement, DECIMALS) if primary else {}),
            "by_control": jsonable(by_control, DECIMALS),
        },
        "annotators": _records(report.annotators),
        "consensus": {
            **(consensus_by_control[primary.spec.name] if primary else {}),
            "by_control": consensus_by_control,
        },
        "per_class": {
            name: _records(cq.per_class) for name, cq in report.controls.items() if cq.per_class is not None
        },
        "qualification": {
            name: [q.to_dict() for q in cq.qualification] for name, cq in report.controls.items()
        },
        "drift": {"alerts": [a.to_dict() for a in report.alerts]},
        "confusion": label_confusion(report),
    }


def annotator_notes(report: QualityReport) -> dict[Any, list[dict[str, str]]]:
    """Per task, what annotators wrote in text areas (``annotator``, ``text``): their notes on the task."""
    notes: dict[Any, list[dict[str, str]]] = {}
    for cq in report.controls.values():
        if cq.spec.kind == TEXTAREA:
            for row in cq.rows.itertuples(index=False):
                notes.setdefault(row.task_id, []).append(
                    {"annotator": str(row.annotator), "text": str(row.value)}
                )
    return notes


def label_confusion(
    report: QualityReport, issues: Mapping[Any, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """Per single-choice control, which labels annotators of the same task confuse (``quality.confusion``).

    ``issues``: task id → the model's label-issue finding, shown with the examples where present.
    """
    notes = annotator_notes(report)
    return {
        name: confusion.control_confusion(cq.pairs, cq.tasks, cq.spec.labels, issues=issues, notes=notes)
        for name, cq in report.controls.items()
        if cq.spec.categorical and not cq.pairs.empty
    }
