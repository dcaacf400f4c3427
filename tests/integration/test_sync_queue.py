"""Queued sync: real Label Studio, real Redis, real ``ls-companion worker`` / ``schedule`` subprocesses."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from ls_companion.client import LabelStudioClient
from ls_companion.localserver import LabelStudioProcess
from ls_companion.projectdata import project_dir
from ls_companion.records import User
from ls_companion.settings import Settings
from ls_companion.sync.engine import sync_inline
from ls_companion.sync.options import SyncOptions, TopupOptions
from ls_companion.sync.queues import enqueue_sync, enqueue_topup
from ls_companion.sync.state import load_state
from ls_companion.sync.store import AnnotationStore
from tests.harness.fault_proxy import FaultProxy
from tests.harness.redis_server import RedisProcess
from tests.integration.helpers import choice, new_project
from tests.integration.sync_helpers import (
    annotated_project,
    companion_env,
    kill_tree,
    make_users,
    run_companion,
    start_companion,
    stop,
    wait_for,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def users(ls_client: LabelStudioClient) -> list[User]:
    return make_users(ls_client, 3)


@pytest.fixture
def queue(redis_server: RedisProcess) -> Iterator[Any]:
    """The harness's Redis, emptied, so one test's jobs never reach another test's workers."""
    connection = redis.Redis.from_url(redis_server.url)
    connection.flushdb()
    yield connection
    connection.close()


def quality(client: LabelStudioClient, project_id: int) -> dict[int, Any]:
    return {t.id: (t.meta.get("ls_companion") or {}).get("quality") for t in client.list_tasks(project_id)}


def job_status(connection: Any, job_id: str) -> str:
    from rq.job import Job

    return str(Job.fetch(job_id, connection=connection).get_status().value)


def finished(connection: Any, job_id: str) -> Callable[[], bool]:
    return lambda: job_status(connection, job_id) == "finished"


def logs(*paths: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in paths if p.exists())


def test_scheduled_sync_writes_quality_and_goes_quiet(
    ls_client: LabelStudioClient,
    label_studio: LabelStudioProcess,
    redis_server: RedisProcess,
    queue: Any,
    users: list[User],
    tmp_path: Path,
) -> None:
    project, ids = annotated_project(ls_client, "sync scheduled", users, 6, annotate=3)
    ls_client.sdk.tasks.update(str(ids[0]), meta={"reviewer": "bob"})
    worker_log, schedule_log = tmp_path / "worker.log", tmp_path / "schedule.log"
    data_dir = tmp_path / "data"
    folder = project_dir(data_dir, project.id)
    with FaultProxy(label_studio.url) as proxy:
        env = companion_env(proxy.url, label_studio.token, data_dir, REDIS_URL=redis_server.url)
        worker = start_companion(["worker", "--maintenance-interval", "2"], env, worker_log)
        scheduler = start_companion(
            ["schedule", "--project", str(project.id), "--every", "2"], env, schedule_log
        )
        try:
            wait_for("the first scheduled sync", lambda: load_state(folder, project.id).syncs >= 1, 90)
            metas = {t.id: t.meta for t in ls_client.list_tasks(project.id)}
            assert metas[ids[0]]["reviewer"] == "bob"  # another tool's key survives
            assert [metas[i]["ls_companion"]["quality"]["n_annotators"] for i in ids[:3]] == [3, 3, 3]
            assert metas[ids[2]]["ls_companion"]["quality"]["agreement"] == 0.333
            assert proxy.forwarded["PATCH"] == 3

            # Two more scheduled syncs with nothing new: not one PATCH reaches Label Studio.
            wait_for("two more syncs", lambda: load_state(folder, project.id).syncs >= 3, 60)
            assert proxy.forwarded["PATCH"] == 3
            assert load_state(folder, project.id).last_sync["patches"] == 0  # type: ignore[index]

            ls_client.create_annotation(ids[4], choice("ham"), completed_by=users[1].id)
            wait_for("the new annotation's metrics", lambda: quality(ls_client, project.id)[ids[4]], 60)
            assert quality(ls_client, project.id)[ids[4]]["n_annotators"] == 1
            assert proxy.forwarded["PATCH"] == 4

            status = run_companion(["status", "--project", str(project.id), "--json"], env)
            assert status.returncode == 0, status.stderr
            payload = json.loads(status.stdout)
            assert payload["failed_jobs"] == []
            assert [s["every_seconds"] for s in payload["schedules"]] == [2]
            assert payload["projects"][0]["patches_total"] == 4
            assert set(payload["queues"]) == {"sync", "select", "train"}
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{logs(worker_log, schedule_log)}") from None
        finally:
            stop(scheduler)
            stop(worker)


def test_killed_workers_jobs_are_finished_by_another_worker(
    ls_client: LabelStudioClient,
    label_studio: LabelStudioProcess,
    redis_server: RedisProcess,
    queue: Any,
    users: list[User],
    tmp_path: Path,
) -> None:
    # A sync with enough PATCHes to kill it half-way, and a top-up imported in small chunks.
    synced = new_project(ls_client, "sync kill")
    tasks = [
        {
            "data": {"text": f"message {i}"},
            "annotations": [
                {
                    "result": choice("spam" if (i + k) % 4 else "ham"),
                    "completed_by": u.id,
                    "ground_truth": False,
                }
                for k, u in enumerate(users[:2])
            ],
        }
        for i in range(120)
    ]
    ids = ls_client.import_tasks(synced.id, tasks)
    assert sum(len(t.annotations) for t in ls_client.list_tasks(synced.id, data=False)) == 240
    topped = new_project(ls_client, "topup kill")
    pool = tmp_path / "pool.csv"
    pool.write_text("id,text\n" + "".join(f"item{i},pool text number {i}\n" for i in range(400)))
    data_dir = tmp_path / "data"
    logs_dir = [tmp_path / "a-sync.log", tmp_path / "a-select.log", tmp_path / "b.log"]

    with FaultProxy(label_studio.url) as proxy:
        env = companion_env(proxy.url, label_studio.token, data_dir, REDIS_URL=redis_server.url)
        options = SyncOptions(retrain_after=0, job_retries=3, retry_backoff=(0,))
        topup = TopupOptions(
            pool=str(pool), below=1, batch=400, budget=400, strategy="random", id_column="id", chunk_size=5
        )
        sync_job = enqueue_sync(queue, synced.id, options).job_id
        topup_job = enqueue_topup(queue, topped.id, topup, options).job_id
        a_sync = start_companion(["worker", "-q", "sync", "--monitor-interval", "5"], env, logs_dir[0])
        a_select = b = None
        try:
            wait_for("the sync to be half-way", lambda: proxy.forwarded["PATCH"] >= 20, 120, every=0.05)
            kill_tree(a_sync)
            # The select worker starts only now: run beside a slow sync, the import (2 s) was done
            # before the sync was half-way (CI on PostgreSQL, 2026-12-02).
            posts = proxy.forwarded["POST"]
            a_select = start_companion(
                ["worker", "-q", "select", "--monitor-interval", "5"], env, logs_dir[1]
            )
            wait_for(
                "the import to be half-way", lambda: proxy.forwarded["POST"] >= posts + 8, 120, every=0.05
            )
            kill_tree(a_select)

            # Killed in the middle: nothing committed, part of the work is in Label Studio.
            state = load_state(project_dir(data_dir, synced.id), synced.id)
            assert state.watermark is None and state.syncs == 0
            written = sum(1 for q in quality(ls_client, synced.id).values() if q)
            assert 0 < written < 120
            imported = ls_client.count_tasks(topped.id)
            assert 0 < imported < 400
            # An annotation made while no worker runs.
            ls_client.create_annotation(ids[0], choice("ham"), completed_by=users[2].id)

            b = start_companion(
                ["worker", "--maintenance-interval", "2", "--monitor-interval", "5"], env, logs_dir[2]
            )
            for job_id in (sync_job, topup_job):
                wait_for(f"job {job_id} to finish", finished(queue, job_id), 180, 1)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{logs(*logs_dir)}") from None
        finally:
            for process in (a_sync, a_select, b):
                if process is not None:
                    stop(process)

        # The import: every pool item exactly once.
        sources = [t.meta["ls_companion"]["source_id"] for t in ls_client.list_tasks(topped.id, data=False)]
        assert len(sources) == 400 and len(set(sources)) == 400
        assert set(sources) == {f"item{i}" for i in range(400)}

        # The sync: every task's metrics, every annotation stored, the late one included.
        metrics = quality(ls_client, synced.id)
        assert all(metrics[i] is not None for i in ids)
        assert metrics[ids[0]]["n_annotators"] == 3
        assert {metrics[i]["n_annotators"] for i in ids[1:]} == {2}
        view = AnnotationStore(project_dir(data_dir, synced.id)).load()
        assert sum(len(s.annotations) for s in view.values()) == 241
        assert load_state(project_dir(data_dir, synced.id), synced.id).watermark is not None

        # And nothing is left to do: a clean sync sends no PATCH.
        proxy.reset_counts()
        settings = Settings(
            label_studio_url=proxy.url, label_studio_api_key=label_studio.token, data_dir=data_dir
        )
        client = LabelStudioClient.from_settings(settings)
        again = sync_inline(settings, client, synced.id, SyncOptions(retrain_after=0))
        assert (again.tasks_written, again.patches, proxy.forwarded["PATCH"]) == (0, 0, 0)


def test_sync_through_a_faulty_proxy_equals_a_clean_run(
    ls_client: LabelStudioClient,
    label_studio: LabelStudioProcess,
    redis_server: RedisProcess,
    queue: Any,
    users: list[User],
    tmp_path: Path,
) -> None:
    project, _ = annotated_project(ls_client, "sync faults", users, 12, annotate=9)
    faulty_dir, clean_dir = tmp_path / "faulty", tmp_path / "clean"
    log = tmp_path / "worker.log"
    with FaultProxy(label_studio.url, fault_rate=0.3, seed=7) as faulty:
        env = companion_env(faulty.url, label_studio.token, faulty_dir, REDIS_URL=redis_server.url)
        options = SyncOptions(retrain_after=0, job_retries=3, retry_backoff=(0,))
        job_id = enqueue_sync(queue, project.id, options).job_id
        worker = start_companion(["worker", "--burst"], env, log)
        try:
            worker.wait(240)
        finally:
            stop(worker)
        assert job_status(queue, job_id) == "finished", logs(log)
        assert sum(faulty.faults.values()) >= 5 and faulty.faults["reset_after"] >= 1

    with FaultProxy(label_studio.url) as counting:
        settings = Settings(
            label_studio_url=counting.url, label_studio_api_key=label_studio.token, data_dir=clean_dir
        )
        clean = sync_inline(
            settings, LabelStudioClient.from_settings(settings), project.id, SyncOptions(retrain_after=0)
        )
        # The faulty run already wrote exactly what a clean run computes: the clean run has nothing to send.
        assert (clean.tasks_written, clean.annotations_new, clean.patches) == (9, 27, 0)
        assert counting.forwarded["PATCH"] == 0
    faulty_state = load_state(project_dir(faulty_dir, project.id), project.id)
    # Same tasks, data and annotations stored (task ``updated_at`` differs: our PATCHes bumped it).
    faulty_view, clean_view = (
        AnnotationStore(project_dir(d, project.id)).load() for d in (faulty_dir, clean_dir)
    )
    assert {i: s.digest for i, s in faulty_view.items()} == {i: s.digest for i, s in clean_view.items()}
    assert len(faulty_view) == 9
    assert faulty_state.last_sync is not None and faulty_state.last_sync["quality"] == clean.quality
    assert all(q is not None and "rev" in q for q in list(quality(ls_client, project.id).values())[:9])
