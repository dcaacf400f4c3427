"""The numbers of the report as one plain, JSON-able dict: exactly what ``report.json`` holds.

``collect`` reads the inputs (the project from Label Studio or from the sync's local store, the gold
store, the ML backend's ``GET /versions``, the tasks' ``meta.ls_companion``); ``build_report`` turns
them into the dict. Every quality number comes from the quality engine (``compute_project_quality``);
this module only reshapes its tables for plots (pairs per annotator pair, labels, drift windows).
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from ls_companion import META_NAMESPACE
from ls_companion.bootstrap.guidelines import History, read_history
from ls_companion.client import LabelStudioClient, RetryPolicy
from ls_companion.errors import InputError
from ls_companion.projectdata import project_dir
from ls_companion.quality import LOW_AGREEMENT, adapter, versions
from ls_companion.quality.adapter import ProjectData
from ls_companion.quality.engine import (
    QualityOptions,
    QualityReport,
    compute_project_quality,
    label_confusion,
)
from ls_companion.quality.records import (
    DECIMALS,
    TEXTAREA,
    Box,
    Polygon,
    Span,
    answered,
    controls_from_config,
    data_keys,
    jsonable,
)
from ls_companion.records import Task
from ls_companion.settings import Settings

REPORT_VERSION = 1
NO_BACKEND = "no ML backend: set ML_BACKEND_URL or connect one to the project in Label Studio"
#: The label distribution keeps the most frequent labels; the rest are summed as ``OTHER``.
MAX_LABELS = 20
OTHER = "(other)"
#: The "Possible label errors" section lists this many flagged tasks, highest score first.
TOP_LABEL_ISSUES = 20


@dataclass(frozen=True, slots=True)
class ProjectInfo:
    id: int
    title: str
    url: str
    task_number: int = 0
    finished_task_number: int = 0
    model_version: str = ""


@dataclass(frozen=True)
class ReportInputs:
    """Everything the report is made of, read once."""

    project: ProjectInfo
    data: ProjectData
    gold: pd.DataFrame
    #: Every task's ``meta["ls_companion"]`` (``{}`` when it has none), by task id.
    metas: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)
    #: Annotator id (the tidy table's string) → display name (the user's email).
    users: Mapping[str, str] = field(default_factory=dict)
    models: Mapping[str, Any] = field(default_factory=lambda: no_models(NO_BACKEND))
    source: str = "label_studio"
    #: Guideline versions with the time each took effect, oldest first (``bootstrap.guidelines``).
    guidelines: History = field(default_factory=list)
    #: The text (the config's object data) of the tasks the label-errors section lists, by task id.
    texts: Mapping[int, str] = field(default_factory=dict)
    #: Predictions Label Studio holds per model version (``model_version_counts``).
    prediction_counts: Mapping[str, int] = field(default_factory=dict)


# -- reading ------------------------------------------------------------------------------------------------------


def collect(
    client: LabelStudioClient,
    settings: Settings,
    project_id: int,
    *,
    gold_file: Path | None = None,
    from_store: bool = False,
    with_models: bool = True,
) -> ReportInputs:
    """Read a project's inputs: annotations from Label Studio (or the sync's store), gold, models, rounds."""
    project = client.get_project(project_id)
    controls = controls_from_config(project.label_config)
    if from_store:
        listed = list(client.list_tasks(project_id, data=False, annotations=False))
        data = adapter.from_tasks(stored_tasks(settings.data_dir, project_id), controls, project_id)
    else:
        listed = list(client.list_tasks(project_id, data=False, annotations=True, predictions=True))
        data = adapter.from_tasks(listed, controls, project_id)
    metas = {task.id: _ours(task.meta) for task in listed}
    return ReportInputs(
        project=ProjectInfo(
            id=project.id,
            title=project.title,
            url=f"{client.url}/projects/{project.id}/",  # the client may not be the settings' (demo)
            task_number=project.task_number,
            finished_task_number=project.finished_task_number,
            model_version=project.model_version,
        ),
        data=data,
        gold=adapter.load_gold(data, gold_file=gold_file, data_dir=settings.data_dir),
        metas=metas,
        users={str(u.id): u.email or u.username or str(u.id) for u in client.list_users()},
        models=project_models(settings, client, project_id) if with_models else no_models("not read"),
        source="store" if from_store else "label_studio",
        guidelines=read_history(project_dir(settings.data_dir, project_id), project.expert_instruction),
        texts=task_texts(client, project.label_config, top_label_issues(metas)),
        prediction_counts=client.model_version_counts(project_id),
    )


def task_texts(client: LabelStudioClient, label_config: str, task_ids: Sequence[int]) -> dict[int, str]:
    """Each task's data the config's object tags show, read one task at a time (only a few are asked)."""
    keys = data_keys(label_config)
    texts = {}
    for task_id in task_ids:
        data = client.get_task(task_id).data
        texts[task_id] = " | ".join(str(data[k]) for k in keys if data.get(k) is not None)
    return texts


def _ours(meta: Mapping[str, Any]) -> Mapping[str, Any]:
    ours = meta.get(META_NAMESPACE)
    return ours if isinstance(ours, Mapping) else {}


def stored_tasks(data_dir: Path, project_id: int) -> list[Task]:
    """The project's tasks as the sync stored them (``DATA_DIR/projects/<id>/store``)."""
    from ls_companion.sync.locks import LOCK_TTL, local_lock
    from ls_companion.sync.store import STORE_DIR, AnnotationStore

    folder = project_dir(data_dir, project_id)
    if not (folder / STORE_DIR).is_dir():
        raise InputError(
            f"project {project_id} has no local store under {folder}: run `ls-companion sync --project "
            f"{project_id}` first, or leave out --from-store"
        )
    with local_lock(folder, what=f"sync of project {project_id}", wait=LOCK_TTL):  # compaction deletes files
        view = AnnotationStore(folder).load()
    return [view[task_id].to_task() for task_id in sorted(view)]


def project_models(settings: Settings, client: LabelStudioClient, project_id: int) -> dict[str, Any]:
    """The models section, from ``ML_BACKEND_URL`` or the backend connected to the project."""
    from ls_companion.selection.resolve import backend_url

    return fetch_models(
        backend_url(settings, client, project_id),
        project_id,
        auth=settings.ml_backend_auth,
        timeout=settings.http_timeout,
        connect_timeout=settings.connect_timeout,
        retry=RetryPolicy.from_settings(settings),
    )


def no_models(reason: str, url: str | None = None) -> dict[str, Any]:
    return {"available": False, "reason": reason, "backend_url": url, "latest": None, "versions": []}


def fetch_models(
    url: str | None,
    project_id: int,
    *,
    auth: tuple[str, str] | None = None,
    timeout: float = 30.0,
    connect_timeout: float = 3.0,
    retry: RetryPolicy | None = None,
) -> dict[str, Any]:
    """The backend's versions of the project with their holdout metrics.

    A missing or failing backend is a fact the report states, not an error: the rest still renders.
    """
    if url is None:
        return no_models(NO_BACKEND)
    shown = str(httpx.URL(url).copy_with(username=None, password=None))
    try:
        response = (retry or RetryPolicy()).send(
            f"ML backend {shown} /versions",
            lambda: httpx.get(
                f"{url.rstrip('/')}/versions",
                params={"project": project_id},
                auth=auth,
                timeout=httpx.Timeout(timeout, connect=connect_timeout),
            ),
        )
    except httpx.HTTPError as exc:
        return no_models(f"the ML backend at {shown} did not answer ({type(exc).__name__})", shown)
    if response.status_code in (401, 403):
        reason = f"the ML backend at {shown} refused the credentials (HTTP {response.status_code}); set ML_BACKEND_BASIC_AUTH_USER/_PASS"
        return no_models(reason, shown)
    if response.status_code >= 400:
        return no_models(f"the ML backend at {shown} answered HTTP {response.status_code}", shown)
    try:
        body = response.json()
    except ValueError:
        return no_models(f"the ML backend at {shown} did not answer JSON", shown)
    return models_section(body if isinstance(body, Mapping) else {}, shown)


def models_section(body: Mapping[str, Any], url: str | None) -> dict[str, Any]:
    """``GET /versions?project=ID`` (newest first) as versions oldest first: a learning curve's order."""
    latest = body.get("latest")
    versions = []
    for detail in reversed(list(body.get("details") or [])):
        training = detail.get("training") or {}
        versions.append(
            {
                "version": detail.get("version"),
                "created_at": detail.get("created_at"),
                "latest": detail.get("version") == latest,
                "annotated_tasks": training.get("annotated_tasks"),
                "controls": {
                    name: {
                        "kind": control.get("kind"),
                        "training_size": control.get("training_size"),
                        "holdout": control.get("holdout"),
                        "model": control.get("model"),
                    }
                    for name, control in (detail.get("controls") or {}).items()
                },
                "skipped_controls": dict(detail.get("skipped_controls") or {}),
            }
        )
    reason = None if versions else "the ML backend has no trained model of this project yet"
    return {"available": True, "reason": reason, "backend_url": url, "latest": latest, "versions": versions}


def ls_predictions(inputs: ReportInputs) -> list[dict[str, Any]]:
    """The model versions that have predictions in Label Studio, with whether the backend still keeps
    each (None when the backend was not read): a version it pruned whose predictions are over
    PRUNE_PREDICTIONS_MAX stays in Label Studio (deleting them holds up the project's saves), and this
    is where a team sees it."""
    available = bool(inputs.models.get("available"))
    kept = {v.get("version") for v in inputs.models.get("versions") or ()}
    return [
        {"model_version": v, "predictions": n, "kept_by_backend": (v in kept) if available else None}
        for v, n in sorted(inputs.prediction_counts.items())
        if n > 0
    ]


# -- building ----------------------------------------------------------------------------------------------------


def build_report(
    inputs: ReportInputs,
    *,
    methods: Sequence[str] | None = None,
    low_agreement: float = LOW_AGREEMENT,
    generated_at: datetime | None = None,
) -> dict[str, Any]:
    """The report's numbers: the engine's ``to_dict()`` keys unchanged, plus the report's own sections."""
    data = inputs.data
    options = QualityOptions(low_agreement=low_agreement, methods=tuple(methods) if methods else None)
    quality = compute_project_quality(data.table, data.controls, inputs.gold, data.predictions, options)
    engine = quality.to_dict()
    annotators = [str(row["annotator"]) for row in engine["annotators"]]
    payload = {
        "report_version": REPORT_VERSION,
        "generated_at": (generated_at or datetime.now(UTC)).isoformat(timespec="seconds"),
        "source": inputs.source,
        "project": dataclasses.asdict(inputs.project),
        "options": dataclasses.asdict(quality.options),
        "annotator_names": {a: inputs.users.get(a, a) for a in annotators},
        **engine,
        "pair_agreement": pair_agreement(quality),
        "label_distribution": label_distribution(quality),
        "drift_series": drift_series(quality.drift_series),
        "models": {**inputs.models, "label_studio_predictions": ls_predictions(inputs)},
        "active_learning": active_learning(inputs.metas, data.table, quality.gold["task_id"].tolist()),
        "guidelines": versions.by_version(quality, inputs.guidelines, options.drift_alpha),
    }
    issues = stored_label_issues(inputs.metas)
    payload["label_issues"] = label_issues_section(inputs.metas, inputs.texts)
    if issues:  # the engine's confusion has no label issues: show the examples the sync flagged
        payload["confusion"] = label_confusion(quality, issues)
    result: dict[str, Any] = jsonable(payload)
    return result


def stored_label_issues(metas: Mapping[int, Mapping[str, Any]]) -> dict[int, Mapping[str, Any]]:
    """The flagged ``quality.label_issue`` the sync wrote into tasks' meta (``quality.label_issues``)."""
    found = {}
    for task_id, meta in metas.items():
        quality = meta.get("quality")
        issue = quality.get("label_issue") if isinstance(quality, Mapping) else None
        if isinstance(issue, Mapping) and issue.get("flagged"):
            found[task_id] = issue
    return found


def top_label_issues(metas: Mapping[int, Mapping[str, Any]], limit: int = TOP_LABEL_ISSUES) -> list[int]:
    """The flagged tasks, highest score first (ties: lower task id first)."""
    issues = stored_label_issues(metas)
    return sorted(issues, key=lambda t: (-float(issues[t].get("score") or 0.0), t))[:limit]


def label_issues_section(metas: Mapping[int, Mapping[str, Any]], texts: Mapping[int, str]) -> dict[str, Any]:
    """The flagged tasks (top ones with their text) and, per label, the noise the sync estimated.

    Every task's ``label_issue`` carries its label's ``noise_rate`` (``task_label_issues``); one sync
    writes one value per label, so the mean only differs from it when syncs of other labels wrote some.
    """
    stored = [
        issue
        for meta in metas.values()
        if isinstance(quality := meta.get("quality"), Mapping)
        and isinstance(issue := quality.get("label_issue"), Mapping)
        and issue.get("label") is not None
    ]
    issues = stored_label_issues(metas)
    by_label: dict[str, list[float]] = {}
    for issue in stored:
        by_label.setdefault(str(issue["label"]), []).append(float(issue.get("noise_rate") or 0.0))
    return {
        "n_judged": len(stored),
        "n_flagged": len(issues),
        "top": [
            {
                "task_id": task_id,
                "text": texts.get(task_id),
                **{k: issues[task_id].get(k) for k in ("label", "suggested", "score", "model_version")},
            }
            for task_id in top_label_issues(metas)
        ],
        "noise": [
            {
                "label": label,
                "tasks": len(rates),
                "noise_rate": jsonable(sum(rates) / len(rates), DECIMALS),
                "estimated_wrong": round(sum(rates)),
            }
            for label, rates in sorted(by_label.items())
        ],
    }


def pair_agreement(quality: QualityReport) -> dict[str, list[dict[str, Any]]]:
    """Per control, every annotator pair: shared tasks, mean similarity and (categorical) Cohen's kappa."""
    return {
        name: [
            {
                "annotator_a": str(row.annotator_a),
                "annotator_b": str(row.annotator_b),
                "n_tasks": int(row.n_tasks),
                "agreement": jsonable(row.agreement, DECIMALS),
                "cohen_kappa": jsonable(row.cohen_kappa, DECIMALS),
            }
            for row in cq.by_pair.itertuples(index=False)
        ]
        for name, cq in quality.controls.items()
    }


def labels_of(value: Any) -> list[str]:
    """The labels one canonical answer holds (regions' labels, chosen labels, taxonomy paths, ratings)."""
    if isinstance(value, Span | Box | Polygon):
        return [value.label]
    if isinstance(value, str):
        return [value]
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, int | float | np.integer | np.floating):
        return [] if math.isnan(float(value)) else [f"{float(value):g}"]
    if isinstance(value, tuple | list):
        found: list[str] = []
        for item in value:
            is_path = isinstance(item, tuple) and not isinstance(item, Span | Box | Polygon)
            found.extend([" / ".join(map(str, item))] if is_path else labels_of(item))
        return found
    return [str(value)]


def _label_rows(
    spec_labels: Sequence[str], answers: Counter[str], agreed: Counter[str]
) -> list[dict[str, Any]]:
    # Config order first (stable across reports), then labels outside the config by frequency.
    order = [lbl for lbl in spec_labels if lbl in answers or lbl in agreed]
    order += [lbl for lbl, _ in (answers + agreed).most_common() if lbl not in order]
    kept, rest = order[:MAX_LABELS], order[MAX_LABELS:]
    counts = [(lbl, answers[lbl], agreed[lbl]) for lbl in kept]
    if rest:
        counts.append((OTHER, sum(answers[x] for x in rest), sum(agreed[x] for x in rest)))
    n_answers, n_agreed = sum(answers.values()), sum(agreed.values())
    return [
        {
            "label": label,
            "answers": a,
            "answer_share": jsonable(a / n_answers, DECIMALS) if n_answers else None,
            "consensus": c,
            "consensus_share": jsonable(c / n_agreed, DECIMALS) if n_agreed else None,
        }
        for label, a, c in counts
    ]


def label_distribution(quality: QualityReport) -> dict[str, dict[str, Any]]:
    """Per control (texts excepted): how often each label was answered, and chosen by the consensus."""
    out: dict[str, dict[str, Any]] = {}
    for name, cq in quality.controls.items():
        if cq.spec.kind == TEXTAREA:
            continue
        answers = Counter(label for value in cq.rows["value"] for label in labels_of(value))
        agreed = Counter(label for value in cq.tasks["consensus"] for label in labels_of(value))
        out[name] = {"kind": cq.spec.kind, "labels": _label_rows(cq.spec.labels, answers, agreed)}
    return out


def drift_series(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The engine's drift windows (``QualityReport.drift_series``) as records, for the drift plot."""
    return [
        {
            "metric": str(row.metric),
            "scope": str(row.scope),
            "annotator": _text(row.annotator),
            "control": _text(row.control),
            "window": int(row.window),
            "start": jsonable(row.start),
            "end": jsonable(row.end),
            "n": int(row.n),
            "value": jsonable(row.value, DECIMALS),
        }
        for row in frame.itertuples(index=False)
    ]


def active_learning(
    metas: Mapping[int, Mapping[str, Any]], table: pd.DataFrame, gold_ids: Iterable[Any]
) -> dict[str, Any]:
    """Per ``al_round`` of the tasks' meta: size, annotated and gold tasks, strategies, uncertainty, models."""
    done = set(answered(table)["task_id"].tolist()) if not table.empty else set()
    gold_set = set(gold_ids)
    rounds: dict[int, list[tuple[int, Mapping[str, Any]]]] = {}
    without = 0
    for task_id, meta in metas.items():
        number = _int(meta.get("al_round"))
        if number is None:
            without += 1
        else:
            rounds.setdefault(number, []).append((task_id, meta))
    return {
        "rounds": [_round_row(n, members, done, gold_set) for n, members in sorted(rounds.items())],
        "tasks_without_round": without,
    }


def _round_row(
    number: int, members: list[tuple[int, Mapping[str, Any]]], done: set[Any], gold_set: set[Any]
) -> dict[str, Any]:
    uncertainty = [float(m["uncertainty"]) for _, m in members if _is_number(m.get("uncertainty"))]
    strategies = Counter(str(m.get("strategy") or "unknown") for _, m in members)
    ids = [task_id for task_id, _ in members]
    return {
        "round": number,
        "tasks": len(ids),
        "annotated": sum(1 for t in ids if t in done),
        "gold": sum(1 for t in ids if t in gold_set),
        "strategies": dict(sorted(strategies.items())),
        "mean_uncertainty": jsonable(sum(uncertainty) / len(uncertainty), DECIMALS) if uncertainty else None,
        "model_versions": sorted({str(m["model_version"]) for _, m in members if m.get("model_version")}),
    }


# -- small conversions -------------------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        return False
    return math.isfinite(float(value))


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _text(value: Any) -> str | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
