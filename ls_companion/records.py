"""Plain records the SDK wrapper returns: no SDK types leak past ``ls_companion.client``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

JSON = dict[str, Any]


def format_filter_time(value: datetime) -> str:
    """``value`` as LS 1.23's Datetime filter parses it: UTC ``%Y-%m-%dT%H:%M:%S.%fZ`` (``+00:00`` is a 500)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, Mapping):  # LS expands completed_by into a user object on single-task reads
        value = value.get("id")
    return int(value) if value is not None else None


@dataclass(frozen=True, slots=True)
class Annotation:
    id: int
    task_id: int
    completed_by: int | None
    result: list[JSON]
    was_cancelled: bool = False
    ground_truth: bool = False
    lead_time: float | None = None
    created_at: str | None = None
    updated_at: str | None = None

    @classmethod
    def from_api(cls, raw: Mapping[str, Any], task_id: int | None = None) -> Annotation:
        return cls(
            id=int(raw["id"]),
            task_id=int(raw.get("task") or task_id or 0),
            completed_by=_int_or_none(raw.get("completed_by")),
            result=list(raw.get("result") or []),
            was_cancelled=bool(raw.get("was_cancelled", False)),
            ground_truth=bool(raw.get("ground_truth", False)),
            lead_time=float(raw["lead_time"]) if raw.get("lead_time") is not None else None,
            created_at=raw.get("created_at"),
            updated_at=raw.get("updated_at"),
        )


@dataclass(frozen=True, slots=True)
class Prediction:
    id: int | None
    task_id: int
    result: list[JSON]
    score: float | None = None
    model_version: str | None = None
    cluster: int | None = None

    @classmethod
    def from_api(cls, raw: Mapping[str, Any], task_id: int | None = None) -> Prediction:
        return cls(
            id=_int_or_none(raw.get("id")),
            task_id=int(raw.get("task") or task_id or 0),
            result=list(raw.get("result") or []),
            score=float(raw["score"]) if raw.get("score") is not None else None,
            model_version=raw.get("model_version"),
            cluster=_int_or_none(raw.get("cluster")),
        )


@dataclass(frozen=True, slots=True)
class Task:
    id: int
    data: JSON = field(default_factory=dict)
    meta: JSON = field(default_factory=dict)
    updated_at: str | None = None
    overlap: int | None = None
    annotations: tuple[Annotation, ...] = ()
    predictions: tuple[Prediction, ...] = ()

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> Task:
        task_id = int(raw["id"])
        return cls(
            id=task_id,
            data=dict(raw.get("data") or {}),
            meta=dict(raw.get("meta") or {}),
            updated_at=raw.get("updated_at"),
            overlap=_int_or_none(raw.get("overlap")),
            annotations=tuple(Annotation.from_api(a, task_id) for a in raw.get("annotations") or ()),
            predictions=tuple(Prediction.from_api(p, task_id) for p in raw.get("predictions") or ()),
        )


def unique_tasks(tasks: Iterable[Task]) -> list[Task]:
    """Listed tasks once each, in first-seen order: a task that changed while we paged (updated, or
    newly annotated under a filter on annotations) can show up twice; the later copy is kept."""
    by_id: dict[int, Task] = {}
    for task in tasks:
        by_id[task.id] = task
    return list(by_id.values())


@dataclass(frozen=True, slots=True)
class Project:
    id: int
    title: str
    label_config: str
    description: str = ""
    expert_instruction: str = ""
    show_instruction: bool = False
    maximum_annotations: int = 1
    overlap_cohort_percentage: int = 100
    sampling: str = "Sequential sampling"
    model_version: str = ""
    show_collab_predictions: bool = True
    show_skip_button: bool = True
    task_number: int = 0
    num_tasks_with_annotations: int = 0
    finished_task_number: int = 0  # tasks LS counts as labeled (enough annotations for their overlap)

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> Project:
        return cls(
            id=int(raw["id"]),
            title=str(raw.get("title") or ""),
            label_config=str(raw.get("label_config") or ""),
            description=str(raw.get("description") or ""),
            expert_instruction=str(raw.get("expert_instruction") or ""),
            show_instruction=bool(raw.get("show_instruction", False)),
            maximum_annotations=int(raw.get("maximum_annotations") or 1),
            overlap_cohort_percentage=int(raw.get("overlap_cohort_percentage") or 0),
            sampling=str(raw.get("sampling") or "Sequential sampling"),
            model_version=str(raw.get("model_version") or ""),
            show_collab_predictions=bool(raw.get("show_collab_predictions", True)),
            show_skip_button=bool(raw.get("show_skip_button", True)),
            task_number=int(raw.get("task_number") or 0),
            num_tasks_with_annotations=int(raw.get("num_tasks_with_annotations") or 0),
            finished_task_number=int(raw.get("finished_task_number") or 0),
        )


@dataclass(frozen=True, slots=True)
class MLBackend:
    id: int
    project_id: int
    url: str
    title: str = ""
    auth_method: str = "NONE"
    basic_auth_user: str | None = None
    is_interactive: bool = False
    state: str = ""
    model_version: str = ""
    timeout: float | None = None
    extra_params: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> MLBackend:
        return cls(
            id=int(raw["id"]),
            project_id=int(raw.get("project") or 0),
            url=str(raw.get("url") or "").rstrip("/"),
            title=str(raw.get("title") or ""),
            auth_method=str(raw.get("auth_method") or "NONE"),
            basic_auth_user=raw.get("basic_auth_user") or None,
            is_interactive=bool(raw.get("is_interactive", False)),
            state=str(raw.get("state") or ""),
            model_version=str(raw.get("model_version") or ""),
            timeout=float(raw["timeout"]) if raw.get("timeout") is not None else None,
            extra_params=dict(raw.get("extra_params") or {}),
        )


@dataclass(frozen=True, slots=True)
class Webhook:
    id: int
    project_id: int | None
    url: str
    actions: tuple[str, ...] = ()
    send_for_all_actions: bool = True
    headers: JSON = field(default_factory=dict)
    is_active: bool = True
    send_payload: bool = True

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> Webhook:
        return cls(
            id=int(raw["id"]),
            project_id=_int_or_none(raw.get("project")),
            url=str(raw.get("url") or ""),
            actions=tuple(sorted(raw.get("actions") or ())),
            send_for_all_actions=bool(raw.get("send_for_all_actions", True)),
            headers=dict(raw.get("headers") or {}),
            is_active=bool(raw.get("is_active", True)),
            send_payload=bool(raw.get("send_payload", True)),
        )


@dataclass(frozen=True, slots=True)
class User:
    id: int
    email: str
    username: str = ""
    first_name: str = ""

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> User:
        return cls(
            id=int(raw["id"]),
            email=str(raw.get("email") or ""),
            username=str(raw.get("username") or ""),
            first_name=str(raw.get("first_name") or ""),
        )
