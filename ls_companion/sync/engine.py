"""One sync of one project, whatever runs it (inline, an rq job): the steps, in crash-safe order.

1. list the tasks updated since ``watermark - overlap`` (all of them on the first or a full sync);
2. store the changed task snapshots (one atomic segment);
3. score the project from the store and PATCH quality into the meta of listed tasks that need it;
4. escalate low-agreement tasks, raise drift alerts, ask for training / a top-up when due;
5. only then advance the watermark, in the same atomic write as the counters.

A crash anywhere before 5 leaves the watermark where it was: the next run lists the same tasks
again, finds them stored (no duplicates) and PATCHes only what is still missing.

Inline mode (``sync_inline``, the default when REDIS_URL is unset) runs it in this process, without
Redis; the rq jobs of ``ls_companion.sync.jobs`` run it in a worker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ls_companion.client import LabelStudioClient
from ls_companion.errors import CompanionError
from ls_companion.files import read_json, write_json_atomic
from ls_companion.projectdata import gold_store_path, project_dir
from ls_companion.records import Project, Task, format_filter_time, unique_tasks
from ls_companion.settings import Settings
from ls_companion.sync import alerts as alert_log
from ls_companion.sync.followups import Dispatcher, InlineDispatcher, topup_due, training_due
from ls_companion.sync.locks import LOCK_TTL, LockLost, local_lock
from ls_companion.sync.options import SyncOptions
from ls_companion.sync.quality_step import EscalationRule, QualityOutcome, assess, escalate
from ls_companion.sync.state import ProjectState, advance, list_since, load_state, save_state
from ls_companion.sync.store import (
    COMPACT_AFTER,
    AnnotationStore,
    Snapshot,
    View,
    apply,
    changed_snapshots,
    new_annotation_versions,
    vanished,
)
from ls_companion.sync.writeback import plan_updates, send_updates

log = logging.getLogger(__name__)

#: The last ``GET /oof`` answer, in the project's folder (its version is the ETag of the next request).
OOF_FILE = "oof.json"


@dataclass
class SyncResult:
    project_id: int
    mode: str
    full: bool
    started_at: str
    finished_at: str = ""
    seconds: float = 0.0
    listed_since: str | None = None
    watermark_before: str | None = None
    watermark_after: str | None = None
    tasks_listed: int = 0
    tasks_written: int = 0
    tasks_removed: int = 0
    annotations_new: int = 0
    tasks_stored: int = 0
    annotations_stored: int = 0
    patches: int = 0
    escalated: int = 0
    quality: dict[str, Any] = field(default_factory=dict)
    alerts_new: list[dict[str, Any]] = field(default_factory=list)
    train: dict[str, Any] | None = None
    topup: dict[str, Any] | None = None
    #: Seconds spent listing, storing, scoring and PATCHing.
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SyncContext:
    settings: Settings
    client: LabelStudioClient
    dispatcher: Dispatcher
    #: Whether this run still owns its lock (False once a Redis lock expired under it).
    lock_held: Callable[[], bool] = lambda: True


class _Stopwatch:
    """``with clock("step"):`` adds the block's wall time to ``timings["step"]``."""

    def __init__(self, timings: dict[str, float]) -> None:
        self._timings = timings

    @contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            spent = self._timings.get(step, 0.0) + time.perf_counter() - started
            self._timings[step] = round(spent, 3)


def _now() -> str:
    return format_filter_time(datetime.now(UTC))


def _score(
    ctx: SyncContext,
    project: Project,
    view: View,
    listed: list[Task],
    options: SyncOptions,
    oof: dict[str, Any] | None,
) -> QualityOutcome:
    escalation = None
    if options.escalation is not None:
        overlaps = {t.id: t.overlap or 1 for t in listed if t.id in view}
        escalation = EscalationRule(options.escalation.below, options.escalation.max_overlap, overlaps)
    return assess(
        [snapshot.to_task() for snapshot in view.values()],
        project.label_config,
        [t.id for t in listed if t.id in view],
        gold_file=Path(options.gold) if options.gold else None,
        gold_store=gold_store_path(ctx.settings.data_dir, project.id),
        escalation=escalation,
        oof=oof,
    )


def _out_of_fold(ctx: SyncContext, folder: Path, project_id: int) -> dict[str, Any] | None:
    """The ML backend's stored out-of-fold probabilities (``GET /oof``); None without a backend or
    when it cannot answer (the sync goes on without label issues).

    The last answer is kept in ``OOF_FILE``: asked with its version, the backend answers a bodiless 304
    until it publishes a new one, so an unchanged model costs one small request, not the whole download.
    """
    from ls_companion.selection.resolve import http_scorer

    scorer = http_scorer(ctx.settings, ctx.client, project_id, "auto")
    if scorer is None:
        return None
    kept = _kept_out_of_fold(folder / OOF_FILE)
    try:
        fresh = scorer.out_of_fold(kept.get("model_version") if kept else None)
        if fresh is None:
            return kept
        if fresh.get("model_version") is not None:
            write_json_atomic(folder / OOF_FILE, fresh)
        return fresh
    except CompanionError as exc:
        log.warning("project %d: no out-of-fold probabilities from the ML backend (%s)", project_id, exc)
        return None
    finally:
        scorer.close()


def _kept_out_of_fold(path: Path) -> dict[str, Any] | None:
    """The kept ``/oof`` answer; None when there is none or it is unreadable (then it is downloaded again)."""
    try:
        kept = read_json(path)
    except (OSError, ValueError):
        return None
    return kept if isinstance(kept, dict) and isinstance(kept.get("model_version"), str) else None


def _store(store: AnnotationStore, view: View, listed: list[Task], full: bool) -> tuple[list[Snapshot], int]:
    """Save what changed; returns (the saved snapshots, new annotation versions among them)."""
    snapshots = [Snapshot.of_task(task) for task in listed]
    changed = changed_snapshots(view, snapshots)
    if full:
        changed += vanished(view, (s.task_id for s in snapshots))
    new_versions = new_annotation_versions(view, changed)
    store.append(changed)
    apply(view, changed)
    if store.segment_count() >= COMPACT_AFTER:
        store.compact(view)
    return changed, new_versions


def _follow_ups(
    ctx: SyncContext, project: Project, state: ProjectState, options: SyncOptions, result: SyncResult
) -> None:
    """Training after enough new annotations; a top-up when unlabeled tasks run low."""
    state.annotations_since_train += result.annotations_new
    if training_due(state.annotations_since_train, options.retrain_after):
        backend = ctx.client.connected_backend(project.id)
        if backend is None:
            result.train = {"requested": False, "reason": "no ML backend is connected to the project"}
        else:
            result.train = ctx.dispatcher.train(project.id, backend.id)
            if "error" not in result.train:
                result.train["annotations"] = state.annotations_since_train
                result.train["at"] = _now()
                state.last_train = result.train
                state.annotations_since_train = 0
    if options.topup is not None and topup_due(project, options.topup):
        result.topup = ctx.dispatcher.topup(project.id, options.topup)
        state.last_topup = {**result.topup, "at": _now()}


def _commit(folder: Path, state: ProjectState, result: SyncResult, watermark: str | None) -> None:
    """The last step: the new watermark and the counters, in one atomic write."""
    state.watermark = result.watermark_after = watermark
    result.finished_at = _now()
    state.syncs += 1
    state.tasks_written_total += result.tasks_written
    state.patches_total += result.patches
    state.last_sync = {k: v for k, v in result.to_json().items() if k != "alerts_new"}
    save_state(folder, state)


def run_sync(
    ctx: SyncContext,
    project_id: int,
    options: SyncOptions,
    *,
    full: bool = False,
) -> SyncResult:
    """Sync one project (the module docstring has the steps). ``full`` lists every task, notices
    tasks deleted in Label Studio and recomputes every listed task's quality."""
    started = time.monotonic()
    folder = project_dir(ctx.settings.data_dir, project_id)
    state = load_state(folder, project_id)
    full = full or state.watermark is None
    timings: dict[str, float] = {}
    clock = _Stopwatch(timings)
    with clock("list"):
        project = ctx.client.get_project(project_id)
        oof = _out_of_fold(ctx, folder, project_id)
        # A new model version judges every task's label again: list them all once (PATCHed only
        # where the label issue changed, unless the sync is --full).
        oof_version = (oof or {}).get("model_version")
        relist = full or (oof_version is not None and oof_version != state.oof_version)
        since = None if relist else list_since(state.watermark, options.overlap_seconds)
        listing_started = ctx.client.server_time()
        listed = unique_tasks(ctx.client.list_tasks(project_id, updated_since=since))
    result = SyncResult(project_id, ctx.dispatcher.mode, full, _now(), listed_since=since, timings=timings)
    result.watermark_before = state.watermark
    result.tasks_listed = len(listed)

    with clock("store"):
        store = AnnotationStore(folder)
        view = store.load()
        changed, result.annotations_new = _store(store, view, listed, relist)
    result.tasks_written = sum(1 for s in changed if s.annotations)
    result.tasks_removed = len(changed) - result.tasks_written
    result.tasks_stored = len(view)
    result.annotations_stored = sum(len(s.annotations) for s in view.values())

    with clock("quality"):
        quality = _score(ctx, project, view, listed, options, oof)
    result.quality = quality.summary if quality.skipped is None else {"skipped": quality.skipped}
    with clock("patch"):
        revs = {t.id: view[t.id].rev for t in listed if t.id in view}
        updates = plan_updates(listed, revs, quality.per_task, mirror=options.mirror, refresh=full)
        result.patches = send_updates(ctx.client, updates, workers=options.patch_workers)
        result.escalated = escalate(ctx.client, quality.escalations)

    webhook = str(options.alert_webhook) if options.alert_webhook is not None else None
    state.alerts, result.alerts_new = alert_log.raise_alerts(
        state.alerts, quality.alerts, project_id=project_id, now=_now(), webhook=webhook
    )
    _follow_ups(ctx, project, state, options, result)

    if not ctx.lock_held():
        raise LockLost(f"sync of project {project_id}: the lock expired while it ran; not committing")
    result.seconds = round(time.monotonic() - started, 3)
    state.oof_version = oof_version or state.oof_version
    _commit(folder, state, result, advance(state.watermark, (t.updated_at for t in listed), listing_started))
    log.info(
        "project %d: %d listed, %d stored, %d PATCH in %.1f s",
        project_id,
        result.tasks_listed,
        result.tasks_written,
        result.patches,
        result.seconds,
    )
    return result


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
