"""The rq side: the jobs, the worker that runs them, and the cron scheduler that enqueues syncs.

Jobs are module-level functions, ids and plain options in, a small JSON result out. rq jobs take ids,
not settings: ``ls-companion worker`` installs the settings here once (``install``), before rq forks
work horses, so every job of the process sees the same frozen object. Each job takes its Redis
connection from the current job, holds the project's locks, and leaves the work to the same functions
inline mode calls.

``ls-companion schedule`` runs rq's cron scheduler with one entry per project. Each entry enqueues
``kick_sync`` every ``interval`` seconds; the kick enqueues the real sync with its timeout and retries
(rq's cron jobs take no retry policy). A kick not picked up within one interval expires, so a stopped
worker does not find a pile of them when it comes back. With the ``prelabel`` option,
``prelabel_project`` runs on the ``select`` queue at the same interval.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, TypeVar

from ls_companion.client import LabelStudioClient
from ls_companion.errors import ConfigError, InputError
from ls_companion.prelabel import run_prelabel
from ls_companion.projectdata import project_dir
from ls_companion.settings import Settings
from ls_companion.sync.engine import SyncContext, run_sync
from ls_companion.sync.followups import request_training, run_topup
from ls_companion.sync.locks import LOCK_TTL, SyncBusy, local_lock, redis_lock
from ls_companion.sync.options import SyncOptions, TopupOptions, options_payload, parse_options
from ls_companion.sync.queues import (
    KICK_TIMEOUT,
    QUEUES,
    SELECT,
    SYNC,
    TRAIN,
    QueueDispatcher,
    clear_pending,
    enqueue_sync,
    lock_key,
)

T = TypeVar("T")
#: How long a job waits for a project's lock: longer than a dead worker's lock lives.
LOCK_WAIT = LOCK_TTL + 5
#: How often an idle worker looks for jobs of dead workers (rq's default is 10 minutes).
DEFAULT_MAINTENANCE_INTERVAL = 60
#: How often a busy worker heartbeats; a dead worker's job is re-queued ~60 s after its last one.
DEFAULT_MONITOR_INTERVAL = 10

_installed: Settings | None = None


def install(settings: Settings) -> None:
    global _installed
    _installed = settings


def settings() -> Settings:
    if _installed is None:
        raise ConfigError("ls-companion jobs run in `ls-companion worker`, which loads the settings")
    return _installed


def _connection_and_id() -> tuple[Any, str]:
    from rq import get_current_job

    job = get_current_job()
    if job is None:
        raise RuntimeError("not running as an rq job")
    return job.connection, job.id


@contextmanager
def _client() -> Iterator[LabelStudioClient]:
    # One client per job: connections are never shared across the worker's fork.
    client = LabelStudioClient.from_settings(settings())
    try:
        yield client
    finally:
        client.close()


def _exclusive(queue: str, project_id: int, work: Callable[[Callable[[], bool]], T]) -> T | dict[str, Any]:
    """Run ``work(lock_held)`` holding the project's Redis and local locks; skip if another holds them."""
    connection, job_id = _connection_and_id()
    clear_pending(connection, queue, project_id, job_id)
    what = f"{queue} job of project {project_id}"
    folder = project_dir(settings().data_dir, project_id)
    try:
        with (
            redis_lock(connection, lock_key(queue, project_id), what=what, wait=LOCK_WAIT) as lock,
            local_lock(folder, what=what, wait=LOCK_WAIT) if queue == SYNC else nullcontext(),
        ):
            return work(lock.held)
    except SyncBusy as exc:
        return {"project_id": project_id, "skipped": str(exc)}


def sync_project(
    project_id: int, options: dict[str, Any] | None = None, full: bool = False
) -> dict[str, Any]:
    """One sync of the project (``engine.run_sync``); its follow-ups are queued."""
    parsed = parse_options(options)
    connection, _ = _connection_and_id()

    def work(lock_held: Callable[[], bool]) -> dict[str, Any]:
        with _client() as client:
            ctx = SyncContext(settings(), client, QueueDispatcher(connection, parsed), lock_held)
            return run_sync(ctx, project_id, parsed, full=full).to_json()

    return _exclusive(SYNC, project_id, work)


def kick_sync(project_id: int, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the cron scheduler enqueues: a sync with timeouts and retries (rq's cron has no retry
    option), unless the project already has one waiting."""
    connection, _ = _connection_and_id()
    return enqueue_sync(connection, project_id, parse_options(options)).to_json()


def train_project(project_id: int, backend_id: int) -> dict[str, Any]:
    """Ask Label Studio to train the project's ML backend."""

    def work(lock_held: Callable[[], bool]) -> dict[str, Any]:
        with _client() as client:
            return request_training(client, project_id, backend_id)

    return _exclusive(TRAIN, project_id, work)


def topup_project(project_id: int, topup: dict[str, Any]) -> dict[str, Any]:
    """Import the next active-learning batch (or finish the one a crash interrupted)."""
    options = TopupOptions.model_validate(topup)

    def work(lock_held: Callable[[], bool]) -> dict[str, Any]:
        with _client() as client:
            return run_topup(settings(), client, project_id, options)

    return _exclusive(SELECT, project_id, work)


def prelabel_project(project_id: int) -> dict[str, Any]:
    """``prelabel``: a prediction of the backend's current version on every task lacking one (resumable)."""

    def work(lock_held: Callable[[], bool]) -> dict[str, Any]:
        with _client() as client:
            return run_prelabel(settings(), client, project_id).to_json()

    return _exclusive(SELECT, project_id, work)


# -- the worker --------------------------------------------------------------------------------------


def preload() -> None:
    """Import the jobs' heavy modules once, before rq forks a work horse per job."""
    import ls_companion.quality.engine  # noqa: F401

    with contextlib.suppress(ImportError):  # the engine reports it when it needs it
        import crowdkit.aggregation  # noqa: F401  (majority vote, GLAD, MACE)


def run_worker(
    settings: Settings,
    connection: Any,
    queues: Sequence[str],
    *,
    burst: bool = False,
    name: str | None = None,
    maintenance_interval: int = DEFAULT_MAINTENANCE_INTERVAL,
    monitor_interval: int = DEFAULT_MONITOR_INTERVAL,
    logging_level: str = "INFO",
) -> bool:
    """Work the queues until stopped (or, with ``burst``, until they are empty); True if a job ran."""
    from rq import Queue, Worker

    unknown = [q for q in queues if q not in QUEUES]
    if unknown:
        raise InputError(f"unknown queue {unknown[0]!r} (use {', '.join(QUEUES)})")
    install(settings)
    preload()
    worker = Worker(
        [Queue(q, connection=connection) for q in queues or QUEUES],
        connection=connection,
        name=name,
        maintenance_interval=maintenance_interval,
        job_monitoring_interval=monitor_interval,
        # An idle worker blocks on the queues for worker_ttl - 15 s between maintenance checks.
        worker_ttl=maintenance_interval + 15,
    )
    return bool(worker.work(burst=burst, with_scheduler=True, logging_level=logging_level))


# -- the cron scheduler ------------------------------------------------------------------------------


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
