"""Low agreement → one more annotator: raise a task's ``overlap`` so Label Studio serves it again.

Measured on Label Studio 1.23.2: PATCHing ``overlap`` alone does not put a finished task back in the
label stream. ``/api/projects/{id}/next`` only serves tasks with ``is_labeled = false``, and LS
recomputes ``is_labeled`` when an annotation is saved, not when ``overlap`` changes. So the PATCH also
sets ``is_labeled`` to false, which is exactly what LS would compute (the new overlap exceeds the
number of distinct annotators). The stream then serves the task to one annotator who has not labeled it
(LS counts a task lock like an annotation, so only one more), and LS sets ``is_labeled`` back to true
when that annotation is saved.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

import pandas as pd

from ls_companion.quality import MAX_OVERLAP


class TaskUpdater(Protocol):
    def update_task(self, task_id: int, **fields: object) -> None: ...


def plan_escalation(
    tasks: pd.DataFrame,
    overlaps: Mapping[int, int],
    *,
    max_overlap: int = MAX_OVERLAP,
) -> list[tuple[int, int]]:
    """``(task_id, new_overlap)`` for every task the engine flagged ``low_agreement``.

    ``tasks`` has one row per task (``QualityReport.tasks``) with ``task_id``, ``n_annotators`` and
    ``low_agreement`` (any control below the engine's ``low_agreement`` threshold, the one the task's
    meta shows: the planner applies no threshold of its own). ``overlaps`` is each task's current
    overlap. A task gets one more than the annotators LS counts against its overlap (``n_submitted``
    when present, since ground-truth submitters count too; else ``n_annotators``), only when that
    overlap is already reached (so a rerun before the extra annotation arrives plans nothing), and
    never above ``max_overlap``.
    """
    low = tasks[(tasks["n_annotators"] >= 2) & tasks["low_agreement"].astype(bool)]
    counts = low["n_submitted"] if "n_submitted" in low else low["n_annotators"]
    plan = []
    for task_id, n in zip(low["task_id"].to_numpy(), counts.to_numpy(), strict=True):
        current, target = int(overlaps.get(int(task_id), 1)), int(n) + 1
        if current <= int(n) and target <= max_overlap:
            plan.append((int(task_id), target))
    return sorted(plan)


def apply_escalation(client: TaskUpdater, plan: Iterable[tuple[int, int]]) -> int:
    """PATCH each planned task's overlap (and ``is_labeled``, see the module note); returns the count."""
    count = 0
    for task_id, overlap in plan:
        client.update_task(task_id, overlap=overlap, is_labeled=False)
        count += 1
    return count
