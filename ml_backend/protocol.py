"""Parsing and validation of the JSON Label Studio (and active learning) send; errors name the field path."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ml_backend.errors import InvalidJSON, InvalidRequest, PayloadTooLarge

JSON = dict[str, Any]

ANNOTATION_ACTIONS = frozenset({"ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED"})
TRAIN_ACTION = "START_TRAINING"

#: A project id in a string: ASCII digits (at most 18, so any 64-bit id fits), alone or before Label
#: Studio's ``.TIMESTAMP``. ``str.isdigit`` would take "²", which ``int`` refuses. Applied with
#: ``re.search``, as JSON Schema applies the same ``pattern`` in the OpenAPI document.
PROJECT_ID_PATTERN = r"^([0-9]{1,18})(\.|$)"
MAX_PROJECT_ID = 10**18 - 1
_PROJECT_ID = re.compile(PROJECT_ID_PATTERN)


@dataclass(frozen=True, slots=True)
class Limits:
    """What one request may hold (settings MAX_TASKS, MAX_JSON_DEPTH, MAX_LABEL_CONFIG_LENGTH)."""

    max_tasks: int
    max_json_depth: int
    max_label_config_length: int


def nesting_depth(value: Any, limit: int) -> int:
    """How deep objects and arrays nest in a value from ``json.loads`` (a scalar: 0), counted up to ``limit + 1``.

    Level by level over the containers, with exact type tests (``json.loads`` makes no subclasses): 0.6x
    the parse's own CPU time on Label Studio's tasks (0.4 ms per 1,000 unlabeled ones).
    """
    depth, level = 0, [value] if type(value) in (dict, list) else []
    while level and depth <= limit:
        depth += 1
        deeper = []
        for node in level:
            for child in node.values() if type(node) is dict else node:
                if type(child) is dict or type(child) is list:
                    deeper.append(child)
        level = deeper
    return depth


def _not_json(constant: str) -> Any:
    """NaN and ±Infinity: Python's parser takes them, JSON (RFC 8259) and Label Studio do not (LS 1.23.2
    answers 400 "Out of range float values are not JSON compliant"), so no task it sends holds one."""
    raise ValueError(f"{constant} is not a JSON number")


def parse_json(body: bytes, limits: Limits) -> JSON:
    if not body:
        raise InvalidJSON("the request body is empty; send a JSON object")
    too_deep = InvalidJSON(
        f"the body nests objects and arrays deeper than {limits.max_json_depth} (MAX_JSON_DEPTH)"
    )
    try:
        payload = json.loads(body, parse_constant=_not_json)
    except RecursionError:  # the parser's own stack limit, far below a body that nests 100,000 deep
        raise too_deep from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidJSON(f"the body is not valid JSON ({exc})") from None
    if not isinstance(payload, dict):
        raise InvalidJSON(f"the body must be a JSON object, not {type(payload).__name__}")
    if nesting_depth(payload, limits.max_json_depth) > limits.max_json_depth:
        raise too_deep
    return payload


def _require(payload: Mapping[str, Any], key: str, path: str) -> Any:
    if key not in payload or payload[key] is None:
        raise InvalidRequest("this field is required", field=path)
    return payload[key]


def _optional_str(payload: Mapping[str, Any], key: str) -> str | None:
    value = payload.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidRequest(f"expected a string, got {type(value).__name__}", field=key)
    return value


def _label_config(payload: Mapping[str, Any], key: str, limits: Limits) -> str:
    config = _require(payload, key, key)
    if not isinstance(config, str):
        raise InvalidRequest("expected the labeling config as a string", field=key)
    if len(config) > limits.max_label_config_length:
        raise PayloadTooLarge(
            f"{len(config):,} characters; at most {limits.max_label_config_length:,} (MAX_LABEL_CONFIG_LENGTH)",
            field=key,
        )
    return config


def project_id_of(value: Any, path: str) -> int:
    """A project id from an int (or an integral float, as JSON Schema counts it), a digit string, or
    Label Studio's ``"ID.TIMESTAMP"`` project uid."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_PROJECT_ID:
        return value
    if isinstance(value, str) and (match := _PROJECT_ID.search(value)):
        return int(match.group(1))
    raise InvalidRequest(
        f"expected a project id (0 to {MAX_PROJECT_ID}) like 12 or '12.1700000000', got {value!r:.40}",
        field=path,
    )


def _tasks(payload: Mapping[str, Any], limits: Limits) -> list[JSON]:
    tasks = _require(payload, "tasks", "tasks")
    if not isinstance(tasks, list):
        raise InvalidRequest(f"expected a list of tasks, got {type(tasks).__name__}", field="tasks")
    if len(tasks) > limits.max_tasks:
        raise PayloadTooLarge(
            f"{len(tasks):,} tasks in one request; at most {limits.max_tasks:,} (MAX_TASKS)", field="tasks"
        )
    for k, task in enumerate(tasks):
        if not isinstance(task, dict):
            raise InvalidRequest(f"expected an object, got {type(task).__name__}", field=f"tasks[{k}]")
        if not isinstance(task.get("data"), dict):
            raise InvalidRequest("expected an object of task data", field=f"tasks[{k}].data")
        if isinstance(task.get("id"), dict | list):
            raise InvalidRequest("an id must be a JSON scalar", field=f"tasks[{k}].id")
    return tasks


@dataclass(frozen=True, slots=True)
class SetupRequest:
    project_id: int
    label_config: str
    hostname: str | None = None
    access_token: str | None = field(default=None, repr=False)


def parse_setup(payload: JSON, limits: Limits) -> SetupRequest:
    schema = _label_config(payload, "schema", limits)
    hostname = _optional_str(payload, "hostname")
    token = _optional_str(payload, "access_token")
    return SetupRequest(
        project_id=project_id_of(_require(payload, "project", "project"), "project"),
        label_config=schema,
        hostname=hostname.rstrip("/") if hostname else None,
        access_token=token or None,
    )


@dataclass(frozen=True, slots=True)
class PredictRequest:
    project_id: int
    label_config: str
    tasks: list[JSON]
    context: Any = None


def parse_predict(payload: JSON, limits: Limits) -> PredictRequest:
    config = _label_config(payload, "label_config", limits)
    params = payload.get("params")
    if params is not None and not isinstance(params, dict):
        raise InvalidRequest("expected an object", field="params")
    return PredictRequest(
        project_id=project_id_of(_require(payload, "project", "project"), "project"),
        label_config=config,
        tasks=_tasks(payload, limits),
        context=(params or {}).get("context"),
    )


@dataclass(frozen=True, slots=True)
class ScoreRequest:
    project_id: int
    tasks: list[JSON]
    control: str | None = None


def parse_score(payload: JSON, limits: Limits) -> ScoreRequest:
    control = _optional_str(payload, "control")
    return ScoreRequest(
        project_id=project_id_of(_require(payload, "project", "project"), "project"),
        tasks=_tasks(payload, limits),
        control=control,
    )


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    action: str
    project_id: int | None

    @property
    def trains(self) -> bool:
        return self.action == TRAIN_ACTION

    @property
    def counts(self) -> bool:
        return self.action in ANNOTATION_ACTIONS


def parse_webhook(payload: JSON) -> WebhookEvent:
    action = _require(payload, "action", "action")
    if not isinstance(action, str):
        raise InvalidRequest("expected an action name", field="action")
    project = payload.get("project")
    project_id = None
    if isinstance(project, dict) and "id" in project:
        project_id = project_id_of(project["id"], "project.id")
    elif project is not None and not isinstance(project, dict):
        project_id = project_id_of(project, "project")
    if project_id is None and (action == TRAIN_ACTION or action in ANNOTATION_ACTIONS):
        raise InvalidRequest(
            "the event has no project; create the webhook with send_payload=true", field="project.id"
        )
    return WebhookEvent(action, project_id)


def parse_project_query(value: str | None) -> int:
    return project_id_of(value, "project")
