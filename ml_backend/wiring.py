"""Builds the service and the app from settings (the entry points call this once)."""

from __future__ import annotations

import ctypes
import gc
from typing import Any

from flask import Flask

from ml_backend.app import create_app
from ml_backend.labelconfig import warm_up
from ml_backend.metrics import Metrics
from ml_backend.scheduler import Credentials, DebouncePolicy, RqScheduler, ThreadScheduler, TrainingScheduler
from ml_backend.service import BackendService
from ml_backend.settings import BackendSettings
from ml_backend.store import ModelStore


def build_scheduler(settings: BackendSettings, metrics: Metrics) -> TrainingScheduler:
    policy = DebouncePolicy(settings.train_every_n_annotations, settings.train_debounce_seconds)
    if settings.redis_url:
        return RqScheduler(settings.redis_url, settings.queue_name, policy)

    def run(project_id: int, credentials: Credentials | None, covered_after: float) -> dict[str, Any]:
        from ml_backend.training import train_in_subprocess

        outcome = train_in_subprocess(settings, project_id, credentials, covered_after)
        metrics.inc("ml_backend_trainings_total", status=str(outcome.get("status")))
        return outcome

    return ThreadScheduler(run, policy)


#: glibc's mallopt options and what the serving process sets them to.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MALLOC_OPTIONS = ((_M_MMAP_THRESHOLD, 32 << 20), (_M_TRIM_THRESHOLD, 64 << 20))


def keep_freed_memory() -> None:
    """Keep freed memory in the process (up to 64 MiB) instead of giving it back to the kernel at once.

    By default glibc maps each block over 128 KiB on its own and unmaps it when freed, and trims the
    heap as soon as its free top passes 128 KiB: every 1,000-task /predict (its JSON and the feature
    arrays) then faults ~4,000 fresh pages in, about 16 % of its CPU time. Set in the master before
    gunicorn forks, so the workers inherit it; no-op where the C library has no ``mallopt`` (not glibc)."""
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is not None:
        for option, value in _MALLOC_OPTIONS:
            mallopt(option, value)


def build_service(settings: BackendSettings, *, preload: bool = True) -> BackendService:
    """The service; with ``preload``, the SDK's config parser and every project's newest model are
    loaded now (then frozen out of the garbage collector), so that gunicorn workers forked from this
    process share them and none pays for them on its first request."""
    metrics = Metrics()
    store = ModelStore(settings.model_dir, keep_versions=settings.keep_versions)
    if preload:
        warm_up()
        for project_id in store.project_ids():
            store.current(project_id)
        # Everything loaded so far lives as long as the process: out of the collector's sight, a
        # 1,000-task /predict (thousands of JSON containers, so several collections) costs ~25 % less
        # CPU, and forked gunicorn workers do not copy the pages a collection would touch.
        gc.freeze()
        keep_freed_memory()
    return BackendService(settings, store, build_scheduler(settings, metrics), metrics)


def build_app(settings: BackendSettings, *, preload: bool = True) -> Flask:
    return create_app(settings, build_service(settings, preload=preload))
