"""Where the engine's inputs come from: a Label Studio project, a JSON export, a crowd CSV, gold files.

The only module of the quality engine that talks to Label Studio (through ``LabelStudioClient``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ls_companion import META_NAMESPACE
from ls_companion.client import LabelStudioClient
from ls_companion.errors import InputError
from ls_companion.projectdata import gold_store_path
from ls_companion.quality import gold
from ls_companion.quality.records import (
    ScoredControl,
    controls_from_config,
    infer_controls,
    predictions_to_table,
    read_crowd_csv,
    read_export,
    tasks_to_table,
)
from ls_companion.records import Task


@dataclass(frozen=True, slots=True)
class ProjectData:
    """The engine's inputs for one project or file."""

    table: pd.DataFrame
    controls: dict[str, ScoredControl]
    predictions: pd.DataFrame | None = None
    overlaps: dict[int, int] = field(default_factory=dict)
    #: Source id (``meta.ls_companion.source_id``) → task id, to resolve gold given by item.
    source_ids: dict[str, int] = field(default_factory=dict)
    project_id: int | None = None
    integer_ids: bool = True


def source_ids(tasks: Iterable[Task]) -> dict[str, int]:
    """Task id by the ``source_id`` our import wrote into each task's meta."""
    found: dict[str, int] = {}
    for task in tasks:
        ours = task.meta.get(META_NAMESPACE)
        if isinstance(ours, Mapping) and ours.get("source_id") is not None:
            found[str(ours["source_id"])] = task.id
    return found


def from_tasks(
    tasks: list[Task], controls: Mapping[str, ScoredControl], project_id: int | None = None
) -> ProjectData:
    """ProjectData of listed (or exported) tasks."""
    return ProjectData(
        table=tasks_to_table(tasks, controls),
        controls=dict(controls),
        predictions=predictions_to_table(tasks, controls),
        overlaps={t.id: t.overlap for t in tasks if t.overlap is not None},
        source_ids=source_ids(tasks),
        project_id=project_id,
    )


def fetch_project(client: LabelStudioClient, project_id: int) -> ProjectData:
    """A project's annotations and predictions, with its controls from the label config."""
    project = client.get_project(project_id)
    controls = controls_from_config(project.label_config)
    tasks = list(client.list_tasks(project_id, data=False, annotations=True, predictions=True))
    return from_tasks(tasks, controls, project_id)


def load_export(path: Path, label_config: str | None = None) -> ProjectData:
    """A Label Studio JSON export; controls come from ``label_config`` or are inferred from the results."""
    tasks = read_export(path)
    controls = controls_from_config(label_config) if label_config else infer_controls(tasks)
    if not controls:
        raise InputError(f"{path}: no annotation result of a kind the quality engine scores")
    return from_tasks(tasks, controls)


def load_crowd(path: Path) -> ProjectData:
    """A crowd CSV (``item,worker,label``): one single-choice control named ``label``."""
    return ProjectData(
        table=read_crowd_csv(path),
        controls={"label": ScoredControl("label", "choices")},
        integer_ids=False,
    )


def load_gold(
    data: ProjectData, *, gold_file: Path | None = None, data_dir: Path | None = None
) -> pd.DataFrame:
    """Gold answers for ``data``: ``gold_file``, then the project's gold store under ``data_dir``.

    Ground-truth annotations are added by the engine itself. Items of a gold file are resolved through
    the tasks' source ids, else taken as task ids.
    """
    sources = []
    mapping: dict[str, object] | None = None
    if data.integer_ids:
        mapping = {str(task_id): task_id for task_id in data.table["task_id"].unique().tolist()}
        mapping.update(data.source_ids)
    if gold_file is not None:
        raw = gold.read_gold_file(gold_file)
        sources.append(
            gold.resolve_gold(raw, data.controls, source_ids=mapping, integer_ids=data.integer_ids)
        )
    if data_dir is not None and data.project_id is not None:
        raw = gold.read_gold_store(gold_store_path(data_dir, data.project_id))
        if not raw.empty:
            sources.append(gold.resolve_gold(raw, data.controls, source_ids=mapping, integer_ids=True))
    return gold.combine_gold(*sources)
