"""Inline mode: the same sync in this process, without Redis (the default when REDIS_URL is unset)."""

from __future__ import annotations

from pathlib import Path

from ls_companion.client import LabelStudioClient
from ls_companion.settings import Settings
from ls_companion.sync.dispatch import InlineDispatcher
from ls_companion.sync.engine import SyncContext, SyncResult, run_sync
from ls_companion.sync.locks import LOCK_TTL, local_lock
from ls_companion.sync.options import SyncOptions
from ls_companion.sync.state import project_dir
from ls_companion.sync.store import AnnotationStore


def sync_inline(
    settings: Settings,
    client: LabelStudioClient,
    project_id: int,
    options: SyncOptions,
    *,
    full: bool = False,
    lock_wait: float = LOCK_TTL,
) -> SyncResult:
    folder = project_dir(settings.data_dir, project_id)
    with local_lock(folder, what=f"sync of project {project_id}", wait=lock_wait):
        ctx = SyncContext(settings, client, InlineDispatcher(settings, client))
        return run_sync(ctx, project_id, options, full=full)


def export_snapshot(settings: Settings, project_id: int, path: Path) -> int:
    """Write the project's stored tasks as a Label Studio JSON export; returns the task count."""
    folder = project_dir(settings.data_dir, project_id)
    with local_lock(folder, what=f"sync of project {project_id}", wait=LOCK_TTL):
        return AnnotationStore.export(AnnotationStore(folder).load(), path)
