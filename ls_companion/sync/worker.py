"""``ls-companion worker``: an rq worker in this process, with the settings installed once for its jobs."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from ls_companion.errors import InputError
from ls_companion.settings import Settings
from ls_companion.sync import runtime
from ls_companion.sync.queues import QUEUES

#: How often an idle worker looks for jobs of dead workers (rq's default is 10 minutes).
DEFAULT_MAINTENANCE_INTERVAL = 60
#: How often a busy worker heartbeats; a dead worker's job is re-queued ~60 s after its last one.
DEFAULT_MONITOR_INTERVAL = 10


def preload() -> None:
    """Import the jobs' heavy modules once, before rq forks a work horse per job."""
    import ls_companion.quality.engine
    import ls_companion.sync.jobs  # noqa: F401

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
    runtime.install(settings)
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
