"""What ``prelabel`` does next, decided from what Label Studio holds (pure: no I/O).

A task needs a pre-label when it has no prediction of the backend's current model version; a task
with several (a crashed run's request that Label Studio finished after a rerun asked again) keeps
its oldest. Chunks of task ids are sized from the time the last one took, so that every request
ends well inside Label Studio's timeout whatever the project's size.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ls_companion.records import Task

#: Seconds one bulk request should take: well inside Label Studio's request timeout (its image kills
#: a request after 120 s, and it gives up on the ML backend's /predict after 100 s).
TARGET_SECONDS = 15.0
#: How long a crashed run's last request may still run in Label Studio (beyond its 120 s limit).
INFLIGHT_GRACE = 130.0


@dataclass(frozen=True)
class ChunkSizer:
    """The next chunk size: the last one scaled to ``target`` seconds, at most doubled, within bounds."""

    first: int = 100
    smallest: int = 10
    largest: int = 2000
    target: float = TARGET_SECONDS

    def next(self, size: int, seconds: float) -> int:
        if seconds <= 0:
            return min(self.largest, size * 2)
        scaled = int(size * self.target / seconds)
        return max(self.smallest, min(self.largest, size * 2, scaled))


@dataclass
class TaskVerdicts:
    """One page of tasks sorted out: which need a prediction, which predictions are extra copies."""

    missing: list[Task] = field(default_factory=list)
    done: int = 0
    extra_predictions: list[int] = field(default_factory=list)


def sort_tasks(tasks: Iterable[Task], model_version: str) -> TaskVerdicts:
    verdicts = TaskVerdicts()
    for task in tasks:
        ids = sorted(p.id for p in task.predictions if p.model_version == model_version and p.id is not None)
        if not ids:
            verdicts.missing.append(task)
        else:
            verdicts.done += 1
            verdicts.extra_predictions.extend(ids[1:])
    return verdicts


@dataclass
class PrelabelState:
    """What survives a crash: the request in flight when the run died (``prelabel.json``)."""

    model_version: str = ""
    inflight: list[int] = field(default_factory=list)
    started: float = 0.0

    @classmethod
    def from_json(cls, raw: Any) -> PrelabelState:
        if not isinstance(raw, dict):
            return cls()
        return cls(
            model_version=str(raw.get("model_version") or ""),
            inflight=[int(i) for i in raw.get("inflight") or []],
            started=float(raw.get("started") or 0.0),
        )

    def to_json(self) -> dict[str, Any]:
        return {"model_version": self.model_version, "inflight": self.inflight, "started": self.started}

    def must_wait(self, model_version: str, now: float, grace: float = INFLIGHT_GRACE) -> bool:
        """Whether a crashed run's request for this version may still be creating predictions."""
        return bool(self.inflight) and self.model_version == model_version and now < self.started + grace


def prediction_rows(
    task_ids: Sequence[int], answers: Sequence[Any], model_version: str
) -> list[dict[str, Any]]:
    """The bulk-import rows for ``/predict``'s positional answers: per task a prediction, a list of
    them, or nothing (both shapes Label Studio accepts); predictions with an empty result are dropped."""
    rows = []
    for task_id, answer in zip(task_ids, answers, strict=False):
        for one in answer if isinstance(answer, list) else [answer]:
            if isinstance(one, Mapping) and one.get("result"):
                rows.append(
                    {
                        "task": task_id,
                        "result": one["result"],
                        "score": one.get("score"),
                        "model_version": one.get("model_version") or model_version,
                    }
                )
    return rows
