"""A project's sync state: the watermark and what the last syncs did, one JSON file written atomically.

Layout under ``DATA_DIR/projects/<id>/``: ``state.json`` (this), ``store/`` (the annotation store),
``sync.lock`` (the local lock file), ``gold.jsonl`` (gold answers, written by the selection import).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ls_companion.errors import InputError
from ls_companion.files import read_json, write_json_atomic

STATE_FILE = "state.json"
MAX_ALERTS_KEPT = 50


def project_dir(data_dir: Path, project_id: int) -> Path:
    return data_dir / "projects" / str(project_id)


@dataclass
class ProjectState:
    project_id: int
    watermark: str | None = None
    syncs: int = 0
    tasks_written_total: int = 0
    patches_total: int = 0
    annotations_since_train: int = 0
    last_sync: dict[str, Any] | None = None
    last_train: dict[str, Any] | None = None
    last_topup: dict[str, Any] | None = None
    #: Drift alerts seen, newest last: each has ``key``, ``first_seen``, ``delivered``.
    alerts: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def load_state(folder: Path, project_id: int) -> ProjectState:
    path = folder / STATE_FILE
    try:
        raw = read_json(path)
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: unreadable sync state ({exc})") from None
    if raw is None:
        return ProjectState(project_id=project_id)
    known = {f.name for f in fields(ProjectState)}
    return ProjectState(**{k: v for k, v in raw.items() if k in known})


def save_state(folder: Path, state: ProjectState) -> None:
    state.alerts = state.alerts[-MAX_ALERTS_KEPT:]
    write_json_atomic(folder / STATE_FILE, state.to_json())


def known_projects(data_dir: Path) -> list[int]:
    """Ids of the projects that have a sync state under ``data_dir``."""
    root = data_dir / "projects"
    if not root.is_dir():
        return []
    return sorted(int(p.name) for p in root.iterdir() if p.name.isdigit() and (p / STATE_FILE).is_file())
