"""What ``ls-companion status`` shows: each project's local sync state, plus the queues when Redis is set."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ls_companion.sync.state import known_projects, load_state, project_dir

RECENT_ALERTS = 10


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
        from ls_companion.sync.queues import failed_jobs, queue_depths
        from ls_companion.sync.schedule import scheduled_entries

        failed = failed_jobs(connection)
        if project_ids:
            failed = [job for job in failed if job["project_id"] in set(project_ids)]
        payload.update(
            queues=queue_depths(connection), failed_jobs=failed, schedules=scheduled_entries(connection)
        )
    return payload
