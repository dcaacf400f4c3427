"""A project's sync state: the watermark and what the last syncs did, one JSON file written atomically;
the watermark arithmetic; and what ``ls-companion status`` shows.
It lives in ``state.json`` of the project's folder (``ls_companion.projectdata``).

Watermarks: LS filters ``updated_at`` strictly greater than a value. A sync lists tasks updated after
``watermark - overlap`` and then moves the watermark to the newest ``updated_at`` it received, but
never past the server's clock at the start of the listing: a task updated while the listing pages
(ordered by id) can be missed by that listing, and its ``updated_at`` is later than that start. The
overlap also covers transactions that commit a little after their timestamp.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ls_companion.errors import InputError
from ls_companion.files import read_json, write_json_atomic
from ls_companion.projectdata import project_dir
from ls_companion.records import format_filter_time

STATE_FILE = "state.json"
MAX_ALERTS_KEPT = 50
RECENT_ALERTS = 10


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
    #: The ML backend's model version whose out-of-fold probabilities the last sync judged labels with.
    oof_version: str | None = None
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


# -- watermarks ----------------------------------------------------------------------------------------


def parse_time(value: str) -> datetime:
    """An LS timestamp (``2026-11-28T04:50:24.791477Z``) as an aware UTC datetime."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def list_since(watermark: str | None, overlap_seconds: float) -> str | None:
    """The ``updated_since`` value of the next listing; None (everything) without a watermark."""
    if watermark is None:
        return None
    return format_filter_time(parse_time(watermark) - timedelta(seconds=overlap_seconds))


def advance(
    watermark: str | None, received: Iterable[str | None], listing_started: datetime | None
) -> str | None:
    """The new watermark: the newest ``updated_at`` received, capped at the listing's start.

    Never moves backwards; unchanged when nothing was received.
    """
    times = [parse_time(value) for value in received if value]
    if not times:
        return watermark
    candidate = max(times)
    if listing_started is not None:
        candidate = min(candidate, listing_started)
    if watermark is not None and candidate <= parse_time(watermark):
        return watermark
    return format_filter_time(candidate)


# -- what status shows --------------------------------------------------------------------------------
def project_status(data_dir: Path, project_id: int) -> dict[str, Any]:
    state = load_state(project_dir(data_dir, project_id), project_id)
    last = state.last_sync or {}
    return {
        "project_id": project_id,
        "last_sync": last.get("finished_at"),
        "last_mode": last.get("mode"),
        "watermark": state.watermark,
        "syncs": state.syncs,
        "last": {
            k: last.get(k)
            for k in (
                "tasks_listed",
                "tasks_written",
                "tasks_removed",
                "annotations_new",
                "patches",
                "seconds",
            )
        },
        "tasks_stored": last.get("tasks_stored"),
        "annotations_stored": last.get("annotations_stored"),
        "tasks_written_total": state.tasks_written_total,
        "patches_total": state.patches_total,
        "annotations_since_train": state.annotations_since_train,
        "last_train": state.last_train,
        "last_topup": state.last_topup,
        "drift_alerts": state.alerts[-RECENT_ALERTS:],
        "drift_alerts_total": len(state.alerts),
    }


def collect_status(data_dir: Path, connection: Any | None, project_ids: Sequence[int] = ()) -> dict[str, Any]:
    """Status of ``project_ids`` (default: every project with a local state); queues when connected."""
    ids = list(project_ids) or known_projects(data_dir)
    payload: dict[str, Any] = {
        "data_dir": str(data_dir),
        "projects": [project_status(data_dir, pid) for pid in ids],
        "redis": connection is not None,
    }
    if connection is not None:
        from ls_companion.sync.queues import failed_jobs, queue_depths, scheduled_entries

        failed = failed_jobs(connection)
        if project_ids:
            failed = [job for job in failed if job["project_id"] in set(project_ids)]
        payload.update(
            queues=queue_depths(connection), failed_jobs=failed, schedules=scheduled_entries(connection)
        )
    return payload
