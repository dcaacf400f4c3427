"""A large project end to end: Label Studio under gunicorn on PostgreSQL (and SQLite alongside),
pre-labelling and write-back, each next to its naive path measured in the same run.

Per database: import ``--tasks`` tasks (10 % of them with 3 annotations, in bulk import requests), then
- a training's listing: what the backend's training lists from Label Studio (the annotated tasks, then
  the first ``PREDICT_AFTER_TRAINING`` unlabeled ones) next to every task with its data and
  annotations, as it listed before (``--listing-only`` stops there);
- pre-labelling: ``prelabel`` (``--via import``: chunks through the backend's /predict and bulk imports)
  of every task, next to serial single-task prediction creation (Label Studio's action on one task at
  a time, on a sample) and, last, one ``retrieve_tasks_predictions`` over as many new tasks in a second
  project, given 120 s (the request limit of Label Studio's image; reported as a timeout when it needs
  longer);
- write-back: the sync's PATCHes (``writeback.send_updates``) on disjoint samples with 1, 2, 4, 8
  writers, interleaved over 5 rounds (median rate per writer count, median and range of its ratio to
  1); the first full sync and an incremental sync after 1 % of the tasks got a new annotation, with
  wall time and PATCH time, next to the same PATCHes at the serial rate.
Targets: prelabel >= 5x the serial task rate with no timeout; write-back >= 1.6x the serial PATCH rate.

Run: ``.venv/bin/python -m bench.bench_scale --tasks 100000`` (``--db postgresql``/``sqlite`` for one).

``--dedicated`` (Linux, root): on a machine shared with other work, give Label Studio, its PostgreSQL
and the ML backend the CPU that hosts of their own would, by raising the priority of their scheduler
autogroups (``/proc/PID/autogroup``). With ``sched_autogroup`` on, each session shares the CPU
equally with every other busy session, whatever its number of processes: Label Studio's gunicorn, one
session, got one session's share however many writers it served, and more writers gained nothing
(docs/scale.md).
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import subprocess
import tempfile
import time
from itertools import islice
from pathlib import Path
from typing import Any

from ls_companion.client import LabelStudioClient, RetryPolicy
from ls_companion.errors import LabelStudioError
from ls_companion.localserver import (
    LabelStudioProcess,
    MLBackendProcess,
    Postgres,
    start_label_studio,
    start_ml_backend,
)
from ls_companion.prelabel import run_prelabel
from ls_companion.settings import Settings
from ls_companion.sync.engine import sync_inline
from ls_companion.sync.options import SyncOptions
from ls_companion.sync.writeback import MetaUpdate, send_updates
from ml_backend.settings import BackendSettings
from tests.harness.ml_backend import train_model

CONFIG = """<View><Text name="text" value="$text"/>
  <Choices name="label" toName="text" choice="single"><Choice value="ham"/><Choice value="spam"/></Choices>
</View>"""
WRITERS = (1, 2, 4, 8)
ONE_REQUEST_LIMIT = 120.0  # uWSGI's harakiri in Label Studio's image
WRITER_SAMPLE = 100
WRITER_ROUNDS = 5
SERIAL_SAMPLE = 40
SETUP_TIMEOUT = 1800.0  # a setup request on a loaded machine
DEDICATED_NICE = -10


def choice(value: str) -> list[dict[str, Any]]:
    return [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [value]}}]


def say(text: str) -> None:
    print(text, flush=True)


def set_autogroup_nice(pids: list[int], nice: int) -> None:
    """The scheduler priority of each pid's session (its autogroup), as ``--dedicated`` sets it."""
    for pid in pids:
        try:
            Path(f"/proc/{pid}/autogroup").write_text(str(nice))
        except OSError as exc:
            raise SystemExit(f"--dedicated: cannot set the autogroup of process {pid}: {exc}") from None


def postmaster_pid(postgres: Postgres) -> int:
    """The PostgreSQL server's pid: every backend it forks (one per Label Studio request) shares its session."""
    query = "select setting from pg_settings where name = 'data_directory'"
    command = ["psql", "-h", postgres.host, "-p", str(postgres.port), "-U", postgres.user, "-Atc", query]
    folder = subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()
    return int((Path(folder) / "postmaster.pid").read_text().split()[0])


def build(client: LabelStudioClient, n_tasks: int, users: list[int]) -> tuple[int, list[int], float]:
    project = client.create_project(title=f"bench scale {secrets.token_hex(3)}", label_config=CONFIG)
    tasks = []
    for i in range(n_tasks):
        spam = i % 3 == 0
        task: dict[str, Any] = {
            "data": {"text": f"message {i}: {'win a prize now' if spam else 'lunch at noon'}"}
        }
        if i % 10 == 0:
            answers = ["spam" if spam else "ham"] * 2 + ["ham" if i % 4 == 0 else ("spam" if spam else "ham")]
            task["annotations"] = [
                {"result": choice(a), "completed_by": u, "lead_time": 4.0}
                for u, a in zip(users, answers, strict=True)
            ]
        tasks.append(task)
    started = time.perf_counter()
    ids = client.import_tasks(project.id, tasks, chunk_size=1000)
    return project.id, ids, time.perf_counter() - started


def bench_training_listing(client: LabelStudioClient, project_id: int, rounds: int = 3) -> None:
    """What a training run of the backend lists from Label Studio: every task with its data and
    annotations (before 2026-12-07) against the annotated tasks, then the first PREDICT_AFTER_TRAINING
    unlabeled ones (now), alternated; the median of each and its ratio."""
    predict = BackendSettings().predict_after_training

    def every_task() -> int:
        return sum(1 for _ in client.list_tasks(project_id, data=True, annotations=True))

    def annotated_then_unlabeled() -> int:
        annotated = sum(1 for _ in client.list_tasks(project_id, data=True, annotations=True, annotated=True))
        unlabeled = client.list_tasks(project_id, annotations=False, annotated=False)
        return annotated + sum(1 for _ in islice(unlabeled, predict))

    seconds: dict[str, list[float]] = {"every task": [], "annotated + unlabeled": []}
    listed: dict[str, int] = {}
    for _ in range(rounds):
        for name, listing in (
            ("every task", every_task),
            ("annotated + unlabeled", annotated_then_unlabeled),
        ):
            started = time.perf_counter()
            listed[name] = listing()
            seconds[name].append(time.perf_counter() - started)
    before, now = (statistics.median(seconds[k]) for k in ("every task", "annotated + unlabeled"))
    say(
        f"  a training's listing: every task {listed['every task']} in {before:.1f} s; annotated and "
        f"the first {predict} unlabeled {listed['annotated + unlabeled']} in {now:.1f} s "
        f"({now / before:.2f}x; median of {rounds}, alternated)"
    )


def trained_backend(server: LabelStudioProcess, project_id: int, root: Path) -> MLBackendProcess:
    """Our ML backend, trained on the project's annotated tasks (``ml-backend train``), served."""
    model_dir = root / "models"
    model_dir.mkdir(parents=True, exist_ok=True)
    # No pre-labels pushed by the training itself (prelabel is measured), and a short model selection.
    train_model(
        model_dir,
        project_id,
        label_studio_url=server.url,
        api_key=server.token,
        env={"PREDICT_AFTER_TRAINING": "0", "SELECTION_BUDGET_SECONDS": "5"},
        timeout=1800,
    )
    # No training while the write-back is measured: each new annotation counts towards one, and a
    # training's listing and model selection would run beside the sync's PATCHes.
    quiet = {
        "PREDICT_AFTER_TRAINING": "0",
        "TRAIN_EVERY_N_ANNOTATIONS": "1000000",
        "TRAIN_DEBOUNCE_SECONDS": "1e9",
    }
    return start_ml_backend(model_dir, label_studio_url=server.url, api_key=server.token, env=quiet)


def serial_prediction_rate(client: LabelStudioClient, project_id: int, ids: list[int], version: str) -> float:
    """Tasks/s of the naive path: Label Studio's action on one task at a time (as opening each task does)."""
    started = time.perf_counter()
    for task_id in ids[-SERIAL_SAMPLE:]:
        client.retrieve_predictions(project_id, [task_id])
    rate = SERIAL_SAMPLE / (time.perf_counter() - started)
    client.delete_model_version_predictions(project_id, version)
    say(f"  naive: serial single-task prediction creation: {rate:.1f} tasks/s (sample of {SERIAL_SAMPLE})")
    return rate


def bench_prelabel(settings: Settings, client: LabelStudioClient, project_id: int, serial: float) -> None:
    result = run_prelabel(settings, client, project_id)
    rate = result.requested / result.seconds
    say(
        f"  prelabel (--via import): {result.requested} tasks in {result.requests} requests, {result.seconds:.1f} s, "
        f"{rate:.1f} tasks/s = {rate / serial:.1f}x serial (target >= 5x): {'ok' if rate >= 5 * serial else 'MISSED'}"
    )


def one_action_over_all(
    server: LabelStudioProcess, setup: LabelStudioClient, n_tasks: int, backend_url: str
) -> None:
    """The naive bulk path, last (gunicorn's threads do not stop a long request: it keeps running),
    on a second project of ``n_tasks`` new tasks with the same backend: clearing the first project's
    predictions instead takes Label Studio longer than the action (docs/scale.md)."""
    project = setup.create_project(title=f"bench scale naive {secrets.token_hex(3)}", label_config=CONFIG)
    tasks = [{"data": {"text": f"message {i}: lunch at noon"}} for i in range(n_tasks)]
    setup.import_tasks(project.id, tasks, chunk_size=1000)
    setup.create_ml_backend(project.id, backend_url, title="bench")
    client = LabelStudioClient(
        server.url, server.token, timeout=ONE_REQUEST_LIMIT, retry=RetryPolicy(attempts=1)
    )
    started = time.perf_counter()
    try:
        client.retrieve_predictions(project.id)
        outcome = "finished"
    except LabelStudioError as exc:
        outcome = f"FAILED: {exc}"
    say(
        f"  naive: one retrieve_tasks_predictions over all {n_tasks} tasks: {outcome} after "
        f"{time.perf_counter() - started:.1f} s (limit {ONE_REQUEST_LIMIT:.0f} s, as Label Studio's image)"
    )
    client.close()


def bench_writers(client: LabelStudioClient, project_id: int, ids: list[int]) -> float:
    """PATCH rate of the sync's write-back per writer count: WRITER_ROUNDS rounds, each sending its own
    WRITER_SAMPLE tasks with every writer count in turn, so that the machine's load moves all alike;
    prints the median rate and the median and range of the ratio to 1 writer within a round."""
    rounds = len(WRITERS) * WRITER_ROUNDS
    size = min(WRITER_SAMPLE, (len(ids) - 1) // rounds)  # smaller samples on a small project
    tasks = list(client.list_tasks(project_id, annotations=False, task_ids=ids[1 : 1 + size * rounds]))
    rates: dict[int, list[float]] = {w: [] for w in WRITERS}
    for k in range(rounds):
        workers = WRITERS[k % len(WRITERS)]
        sample = tasks[k * size : (k + 1) * size]
        updates = [MetaUpdate(t, {"bench": k}, {"lsc_bench": k}) for t in sample]
        started = time.perf_counter()
        sent = send_updates(client, updates, workers=workers)
        rates[workers].append(sent / (time.perf_counter() - started))
    parts = []
    for w, rs in rates.items():
        ratios = [r / s for r, s in zip(rs, rates[1], strict=True)]
        parts.append(
            f"{w}: {statistics.median(rs):.1f}/s ({statistics.median(ratios):.2f}x, "
            f"{min(ratios):.2f}-{max(ratios):.2f})"
        )
    say(
        f"  write-back PATCH/s by writers, median of {WRITER_ROUNDS} rounds (x 1 writer, range): "
        + "; ".join(parts)
    )
    return statistics.median(rates[1])


def bench_sync(
    settings: Settings,
    client: LabelStudioClient,
    project_id: int,
    ids: list[int],
    serial: float,
    users: list[int],
) -> None:
    options = SyncOptions(retrain_after=0)
    for name in ("first full sync", "incremental sync, 1 % changed"):
        if name.startswith("incremental"):
            for task_id in ids[1::100]:
                client.create_annotation(task_id, choice("spam"), completed_by=users[0], lead_time=3.0)
        result = sync_inline(settings, client, project_id, options)
        patch = result.timings.get("patch", 0.0)
        naive = result.seconds - patch + result.patches / serial
        rate = result.patches / patch if patch else 0.0
        say(
            f"  {name}: {result.seconds:.1f} s ({result.patches} PATCH in {patch:.1f} s, {rate:.1f}/s, "
            f"{options.patch_workers} writers); at the serial PATCH rate: {naive:.1f} s "
            f"({rate / serial:.2f}x serial, target >= 1.6x: {'ok' if rate >= 1.6 * serial else 'MISSED'})"
        )


def bench_database(database: str, n_tasks: int, dedicated: bool, listing_only: bool = False) -> None:
    say(f"\n--- Label Studio under gunicorn on {database}, {n_tasks} tasks ---")
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        root = Path(tmp)
        postgres = Postgres(f"scale_bench_{secrets.token_hex(4)}") if database == "postgresql" else None
        if postgres is not None:
            postgres.create()
        server = None
        backend = None
        try:
            server = start_label_studio(root / "ls", token=secrets.token_hex(20), postgres=postgres)
            if dedicated and server.process is not None:
                pids = [server.process.pid] + ([postmaster_pid(postgres)] if postgres is not None else [])
                set_autogroup_nice(pids, DEDICATED_NICE)
            client = LabelStudioClient(server.url, server.token, timeout=SETUP_TIMEOUT)
            tag = secrets.token_hex(3)
            users = [
                client.create_user(f"scale{k}-{tag}@example.com", password="pass-12345").id for k in range(3)
            ]
            project_id, ids, seconds = build(client, n_tasks, users)
            say(f"  import: {len(ids)} tasks ({n_tasks // 10} with 3 annotations) in {seconds:.1f} s")
            bench_training_listing(client, project_id)
            if listing_only:
                return
            started = time.perf_counter()
            backend = trained_backend(server, project_id, root)
            if dedicated and backend.process is not None:
                set_autogroup_nice([backend.process.pid], DEDICATED_NICE)
            say(f"  ml-backend train + serve: {time.perf_counter() - started:.1f} s")
            client.create_ml_backend(project_id, backend.url, title="bench")
            found = client.connected_backend(project_id)
            version = found.model_version if found is not None else ""
            settings = Settings(
                label_studio_url=server.url, label_studio_api_key=server.token, data_dir=root / "data"
            )
            serial = serial_prediction_rate(client, project_id, ids, version)
            bench_prelabel(settings, client, project_id, serial)
            serial_patch = bench_writers(client, project_id, ids)
            bench_sync(settings, client, project_id, ids, serial_patch, users)
            one_action_over_all(server, client, n_tasks, backend.url)
            client.close()
        finally:
            if postgres is not None and dedicated:
                set_autogroup_nice([postmaster_pid(postgres)], 0)  # the machine's server, shared
            if backend is not None:
                backend.stop()
            if server is not None:
                server.stop()
            if postgres is not None:
                postgres.drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--db", choices=("postgresql", "sqlite", "both"), default="both")
    parser.add_argument(
        "--dedicated", action="store_true", help="raise the servers' CPU share as on hosts of their own"
    )
    parser.add_argument(
        "--listing-only",
        action="store_true",
        help="stop after a training's listing (import, then the listings)",
    )
    args = parser.parse_args()
    for database in ("postgresql", "sqlite") if args.db == "both" else (args.db,):
        bench_database(database, args.tasks, args.dedicated, args.listing_only)


if __name__ == "__main__":
    main()
