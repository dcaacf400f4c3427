"""``ls-companion schedule``: rq's cron scheduler with one entry per project.

Each entry enqueues ``kick_sync`` every ``interval`` seconds; the kick enqueues the real sync with
its timeout and retries (rq's cron jobs take no retry policy). A kick not picked up within one
interval expires, so a stopped worker does not find a pile of them when it comes back. With the
``prelabel`` option, ``prelabel_project`` runs on the ``select`` queue at the same interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ls_companion.sync.options import SyncOptions, options_payload
from ls_companion.sync.queues import KICK_TIMEOUT, SELECT, SYNC


@dataclass(frozen=True)
class ScheduleEntry:
    project_id: int
    options: SyncOptions
    source: str  # the spec file, or "command line"

    def to_json(self) -> dict[str, Any]:
        return {"project_id": self.project_id, "every_seconds": self.options.interval, "source": self.source}


def entry_name(project_id: int) -> str:
    return f"ls-companion sync project {project_id}"


def build_scheduler(connection: Any, entries: Sequence[ScheduleEntry], *, logging_level: str = "INFO") -> Any:
    from rq.cron import CronScheduler

    from ls_companion.sync.jobs import kick_sync, prelabel_project

    scheduler = CronScheduler(connection=connection, logging_level=logging_level)
    for entry in entries:
        scheduler.register(
            kick_sync,
            SYNC,
            kwargs={"project_id": entry.project_id, "options": options_payload(entry.options)},
            interval=entry.options.interval,
            job_timeout=KICK_TIMEOUT,
            ttl=entry.options.interval,
            name=entry_name(entry.project_id),
        )
        if entry.options.prelabel:
            scheduler.register(
                prelabel_project,
                SELECT,
                kwargs={"project_id": entry.project_id},
                interval=entry.options.interval,
                job_timeout=entry.options.job_timeout,
                ttl=entry.options.interval,
                name=f"ls-companion prelabel project {entry.project_id}",
            )
    return scheduler


def scheduled_entries(connection: Any) -> list[dict[str, Any]]:
    """The entries of the cron schedulers alive in Redis (for ``status``)."""
    from rq.cron import CronScheduler

    found = []
    for scheduler in CronScheduler.all(connection):
        for job in scheduler.get_jobs():
            found.append(
                {
                    "scheduler": scheduler.name,
                    "name": job.name,
                    "every_seconds": job.interval,
                    "last_enqueued": job.latest_enqueue_time.isoformat() if job.latest_enqueue_time else None,
                    "next_enqueue": job.next_enqueue_time.isoformat() if job.next_enqueue_time else None,
                }
            )
    return found
