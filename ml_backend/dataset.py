"""Training examples from a project's annotated tasks: one target per task and control, by consensus.

Rules (``majority_consensus``, the default; another consensus can be passed in):
- cancelled (skipped) annotations are ignored;
- a ground-truth annotation wins over everything else (the latest one if there are several);
- otherwise each annotator votes once (their latest annotation) and the majority decides: the single
  choice with most votes (a tie drops the task), the multi-label classes and the spans that more than
  half of the annotators chose;
- for multi-label and span controls, an annotation without a result for the control votes for
  "nothing applies" (no class, no entity), which is a training example too;
- values the current config does not offer are dropped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ls_companion.records import Annotation, Task
from ml_backend.plugin import ControlSpec, Target
from ml_backend.registry import plugin_named

Consensus = Callable[[ControlSpec, Sequence[Target]], Target | None]


@dataclass(frozen=True, slots=True)
class Example:
    """``text``: the task's value under the control's ``$variable`` (the text, or the image's URL)."""

    task_id: int
    text: str
    target: Target


def annotation_target(annotation: Annotation, spec: ControlSpec) -> Target | None:
    """What one annotation says for ``spec`` (read by the control's plugin), or None if nothing usable."""
    items = [r for r in annotation.result if isinstance(r, dict) and r.get("from_name") == spec.name]
    return plugin_named(spec.plugin).target(spec, items)


def majority_consensus(spec: ControlSpec, votes: Sequence[Target]) -> Target | None:
    if not votes:
        return None
    if spec.kind == "single":
        ranked = Counter(votes).most_common(2)
        if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
            return None
        return ranked[0][0]
    counts: Counter[Any] = Counter(part for vote in votes for part in vote)
    return tuple(sorted(part for part, n in counts.items() if n * 2 > len(votes)))


def _order_key(annotation: Annotation) -> tuple[str, int]:
    return (annotation.updated_at or annotation.created_at or "", annotation.id)


def task_target(task: Task, spec: ControlSpec, consensus: Consensus = majority_consensus) -> Target | None:
    done = sorted((a for a in task.annotations if not a.was_cancelled), key=_order_key)
    ground_truth = [t for a in done if a.ground_truth and (t := annotation_target(a, spec)) is not None]
    if ground_truth:
        return ground_truth[-1]
    latest_by_annotator: dict[Any, Annotation] = {}
    for annotation in done:
        key = (
            annotation.completed_by if annotation.completed_by is not None else f"annotation-{annotation.id}"
        )
        latest_by_annotator[key] = annotation
    votes = [t for a in latest_by_annotator.values() if (t := annotation_target(a, spec)) is not None]
    return consensus(spec, votes)


def examples(
    tasks: Iterable[Task], spec: ControlSpec, consensus: Consensus = majority_consensus
) -> list[Example]:
    """The training examples of one control, in task order."""
    out: list[Example] = []
    for task in tasks:
        text = task.data.get(spec.value_key)
        if not isinstance(text, str) or not text.strip():
            continue
        target = task_target(task, spec, consensus)
        if target is not None:
            out.append(Example(task.id, text, target))
    return out


def is_labeled(task: Task) -> bool:
    return any(not a.was_cancelled for a in task.annotations)
