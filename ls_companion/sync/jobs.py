"""The rq jobs: module-level functions, ids and plain options in, a small JSON result out.

Each takes the worker's settings from ``runtime`` and its Redis connection from the current job,
holds the project's locks, and leaves the work to the same functions inline mode calls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any, TypeVar

from ls_companion.client import LabelStudioClient
from ls_companion.prelabel import run_prelabel
from ls_companion.sync import runtime
from ls_companion.sync.engine import SyncContext, run_sync
from ls_companion.sync.locks import LOCK_TTL, SyncBusy, local_lock, redis_lock
from ls_companion.sync.options import TopupOptions, parse_options
from ls_companion.sync.queues import (
    SELECT,
    SYNC,
    TRAIN,
    QueueDispatcher,
    clear_pending,
    enqueue_sync,
    lock_key,
)
from ls_companion.sync.state import project_dir
from ls_companion.sync.topup_step import run_topup
from ls_companion.sync.train_step import request_training

T = TypeVar("T")
#: How long a job waits for a project's lock: longer than a dead worker's lock lives.
LOCK_WAIT = LOCK_TTL + 5


def _connection_and_id() -> tuple[Any, str]:
    from rq import get_current_job

    job = get_current_job()
    if job is None:
        raise RuntimeError("not running as an rq job")
    return job.connection, job.id


@contextmanager
def _client() -> Iterator[LabelStudioClient]:
    # One client per job: connections are never shared across the worker's fork.
    client = LabelStudioClient.from_settings(runtime.settings())
    try:
        yield client
    finally:
        client.close()


def _exclusive(queue: str, project_id: int, work: Callable[[Callable[[], bool]], T]) -> T | dict[str, Any]:
    """Run ``work(lock_held)`` holding the project's Redis and local locks; skip if another holds them."""
    connection, job_id = _connection_and_id()
    clear_pending(connection, queue, project_id, job_id)
    what = f"{queue} job of project {project_id}"
    folder = project_dir(runtime.settings().data_dir, project_id)
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
            ctx = SyncContext(runtime.settings(), client, QueueDispatcher(connection, parsed), lock_held)
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
            return run_topup(runtime.settings(), client, project_id, options)

    return _exclusive(SELECT, project_id, work)


def prelabel_project(project_id: int) -> dict[str, Any]:
    """``prelabel``: a prediction of the backend's current version on every task lacking one (resumable)."""

    def work(lock_held: Callable[[], bool]) -> dict[str, Any]:
        with _client() as client:
            return run_prelabel(runtime.settings(), client, project_id).to_json()

    return _exclusive(SELECT, project_id, work)
