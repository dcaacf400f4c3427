"""Seam to the quality engine (issue 5): stored tasks in, per-task meta dicts and drift alerts out.

Everything the sync needs from ``ls_companion.quality`` goes through ``assess``, so that the rest of
the sync does not depend on the engine's internals.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ls_companion.client import LabelStudioClient
from ls_companion.records import Task

if TYPE_CHECKING:
    from ls_companion.quality.engine import QualityReport


@dataclass(frozen=True)
class QualityOutcome:
    """The numbers one sync writes and reports."""

    per_task: dict[int, dict[str, Any]] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    escalations: list[tuple[int, int]] = field(default_factory=list)
    skipped: str | None = None  # why nothing was computed (no scorable control, no annotations)


@dataclass(frozen=True)
class EscalationRule:
    below: float
    max_overlap: int
    overlaps: Mapping[int, int]  # current overlap of the candidate tasks


def _gold(
    gold_file: Path | None, gold_store: Path | None, controls: Mapping[str, Any], tasks: Sequence[Task]
) -> Any:
    """Gold answers from ``gold_file`` when one is set (and exists), else from the selection's store."""
    from ls_companion.quality import gold
    from ls_companion.quality.adapter import source_ids

    if gold_file is not None:
        raw = gold.read_gold_file(gold_file) if gold_file.is_file() else None
    else:
        raw = gold.read_gold_store(gold_store) if gold_store is not None else None
    if raw is None or raw.empty:
        return None
    return gold.resolve_gold(raw, controls, source_ids=source_ids(tasks))


def assess(
    tasks: Sequence[Task],
    label_config: str,
    wanted: Collection[int],
    *,
    gold_file: Path | None = None,
    gold_store: Path | None = None,
    escalation: EscalationRule | None = None,
    oof: Mapping[str, Any] | None = None,
) -> QualityOutcome:
    """Score the project from its stored ``tasks``; per-task dicts only for ``wanted`` task ids.

    ``oof``: the ML backend's stored out-of-fold probabilities (its ``/oof`` answer), for model-assisted
    consensus and each task's ``label_issue``.
    """
    import pandas as pd

    from ls_companion.quality.engine import QualityOptions, compute_project_quality
    from ls_companion.quality.escalation import plan_escalation
    from ls_companion.quality.records import controls_from_config, tasks_to_table

    controls = controls_from_config(label_config)
    if not controls:
        return QualityOutcome(skipped="the label config has no control the quality engine scores")
    table = tasks_to_table(tasks, controls)
    if table.empty:
        return QualityOutcome(skipped="no annotations yet")
    # One threshold for one decision: the tasks flagged low in meta are the ones escalated.
    options = QualityOptions(methods=None)
    if escalation is not None:
        options = QualityOptions(methods=None, low_agreement=escalation.below)
    stored = {name: found for name, found in (oof or {}).get("controls", {}).items() if name in controls}
    report = compute_project_quality(
        table,
        controls,
        gold_answers=_gold(gold_file, gold_store, controls, tasks),
        options=options,
        model_proba={
            name: pd.DataFrame(found["proba"], index=found["task_ids"], columns=found["classes"])
            for name, found in stored.items()
        },
    )
    per_task = {int(task_id): meta for task_id, meta in report.task_meta(wanted).items()}
    issues = _label_issues(report, stored, (oof or {}).get("model_version"))
    for task_id, meta in per_task.items():
        if task_id in issues:
            meta["label_issue"] = issues[task_id]
    as_dict = report.to_dict()
    escalations: list[tuple[int, int]] = []
    if escalation is not None and escalation.overlaps:
        candidates = report.tasks[report.tasks["task_id"].isin(list(escalation.overlaps))]
        escalations = plan_escalation(candidates, escalation.overlaps, max_overlap=escalation.max_overlap)
    return QualityOutcome(
        per_task=per_task,
        summary=as_dict["summary"],
        alerts=list(as_dict["drift"]["alerts"]),
        escalations=escalations,
    )


def _label_issues(
    report: QualityReport, stored: Mapping[str, Any], model_version: str | None
) -> dict[int, Any]:
    """Each task's ``label_issue`` on the first categorical control the model has out-of-fold
    probabilities for, judging the task's consensus label with how reliable its annotators are (the
    engine's per-annotator ``quality_score``: gold accuracy, else agreement with the consensus)."""
    from ls_companion.quality.engine import annotator_accuracy
    from ls_companion.quality.label_issues import answer_reliability, task_label_issues

    for name, found in stored.items():
        control = report.controls.get(name)
        if control is None or not control.spec.categorical:
            continue
        labels = control.tasks.dropna(subset=["consensus"])
        consensus = {int(t): str(v) for t, v in zip(labels["task_id"], labels["consensus"], strict=True)}
        answers = zip(
            control.rows["task_id"].astype(int),
            control.rows["annotator"],
            control.rows["value"].astype(str),
            strict=True,
        )
        accuracy = annotator_accuracy(control, report.options.min_gold_for_score)
        reliability = answer_reliability(answers, consensus, accuracy, found["classes"])
        issues = task_label_issues(found, consensus, model_version, reliability)
        return {int(t): issue for t, issue in issues.items()}
    return {}


def escalate(client: LabelStudioClient, plan: Sequence[tuple[int, int]]) -> int:
    """Raise each planned task's overlap (the engine's ``apply_escalation``); returns the count."""
    from ls_companion.quality.escalation import apply_escalation

    return apply_escalation(client, plan)
