"""Soak: the ML backend under gunicorn with basic auth and sustained mixed load, then a webhook flood.

A real Label Studio holds a project of sms_spam texts, 200 of them labeled; the backend trains from it.
For ``--minutes`` (default 10), ``--clients`` threads (default 4) each loop over a mix of requests:
``/predict`` with a batch of 100 tasks, ``/predict`` with one task, ``/setup``, ``/score`` of 500 items,
and a burst of 20 annotation webhooks; meanwhile a START_TRAINING webhook every ``--retrain-every``
seconds (default 60) makes the backend retrain and publish a new version (the debounced annotation
webhooks do too). Printed: errors (any answer but 200, any exception: must be 0), p50/p99 per route,
requests/s, the gunicorn workers' RSS after a 30 s warm-up of every route, each minute and at the end
(growth must stay within 10 %), and the versions published.

Then, once the soak's own webhooks are trained on (no new version for 30 s), the flood: 1,000
ANNOTATION_CREATED events in 10 s from 8 threads. Printed: how many were
acknowledged within Label Studio's 1 s (must be all), the slowest ack, and how many versions the flood
published once the debounce window has passed (must be 1). The backend runs with
TRAIN_EVERY_N_ANNOTATIONS above the flood and a 15 s debounce, so the flood is one pending batch;
``--train-every 10`` (the backend's default) shows instead what a burst costs with the default.

All traffic stays on 127.0.0.1. Run: ``.venv/bin/python -m bench.bench_soak --minutes 10``
"""

from __future__ import annotations

import argparse
import json
import secrets
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.bench_ml_speed import CONFIG, load_sms, ls_task
from ls_companion.client import LabelStudioClient
from ls_companion.localserver import start_label_studio, start_ml_backend

USER, PASSWORD, SECRET = "soak", "soak-pass-123", "soak-secret-456"
AUTH = (USER, PASSWORD)
HOOK_HEADERS = {"X-Webhook-Secret": SECRET}
DEBOUNCE_SECONDS = 15.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def worker_pids(master: int) -> list[int]:
    """The gunicorn workers: the master's direct children (a training's child process is a grandchild)."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return sorted(int(pid) for pid in children)


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.times: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, list[str]] = defaultdict(list)

    def call(self, route: str, send: Callable[[], httpx.Response]) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            response = send()
        except httpx.HTTPError as exc:
            with self.lock:
                self.errors[route].append(type(exc).__name__)
            return None
        elapsed = time.perf_counter() - started
        with self.lock:
            self.times[route].append(elapsed)
            if response.status_code != 200:
                self.errors[route].append(f"HTTP {response.status_code}: {response.text[:120]}")
        return response


def versions(url: str, project: int) -> list[str]:
    answer = httpx.get(f"{url}/versions", params={"project": project}, auth=AUTH, timeout=30).json()
    return list(answer.get("versions") or [])


def wait_for_new_version(url: str, project: int, known: set[str], timeout: float) -> set[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = set(versions(url, project)) - known
        if new:
            return new
        time.sleep(1.0)
    return set()


def hook(project: int, action: str = "ANNOTATION_CREATED") -> dict[str, Any]:
    return {"action": action, "project": {"id": project}, "annotation": {"id": 1}}


def _sample(pids: list[int], samples: list[list[float]], minutes: float) -> None:
    for _ in range(int(minutes)):
        time.sleep(60)
        samples.append([rss_mb(pid) for pid in pids])


def wait_idle(url: str, project: int) -> None:
    """Until no version was published for two debounce windows: the soak's webhooks are all trained on."""
    last, quiet_since = versions(url, project), time.monotonic()
    while time.monotonic() - quiet_since < 2 * DEBOUNCE_SECONDS:
        time.sleep(2.0)
        now = versions(url, project)
        if now != last:
            last, quiet_since = now, time.monotonic()


def soak(
    url: str,
    project: int,
    texts: list[str],
    minutes: float,
    clients: int,
    retrain_every: float,
    *,
    quiet: bool = False,
) -> None:
    batch = json.dumps(
        {
            "project": project,
            "label_config": CONFIG,
            "tasks": [ls_task(i, t) for i, t in enumerate(texts[:100])],
        }
    ).encode()
    singles = [
        json.dumps({"project": project, "label_config": CONFIG, "tasks": [ls_task(i, t)]}).encode()
        for i, t in enumerate(texts[100:300])
    ]
    score = json.dumps(
        {"project": project, "tasks": [{"id": i, "data": {"text": t}} for i, t in enumerate(texts[:500])]}
    ).encode()
    setup = json.dumps({"project": project, "schema": CONFIG}).encode()
    json_headers = {"Content-Type": "application/json"}
    recorder = Recorder()
    stop_at = time.monotonic() + minutes * 60

    def client_loop(k: int) -> int:
        n = 0
        with httpx.Client(timeout=60, auth=AUTH, headers=json_headers) as http:
            while time.monotonic() < stop_at:
                step = n % 10
                if step in (0, 5):
                    recorder.call("/predict batch", lambda: http.post(f"{url}/predict", content=batch))
                elif step == 3:
                    recorder.call("/setup", lambda: http.post(f"{url}/setup", content=setup))
                elif step == 7:
                    recorder.call("/score", lambda: http.post(f"{url}/score", content=score))
                elif step == 9:
                    for _ in range(20):
                        recorder.call(
                            "/webhook",
                            lambda: http.post(f"{url}/webhook", json=hook(project), headers=HOOK_HEADERS),
                        )
                else:
                    body = singles[(n + k) % len(singles)]
                    recorder.call("/predict single", lambda b=body: http.post(f"{url}/predict", content=b))  # type: ignore[misc]
                n += 1
        return n

    def retrainer() -> list[str]:
        published: list[str] = []
        known = set(versions(url, project))
        while time.monotonic() + retrain_every < stop_at:
            time.sleep(retrain_every)
            recorder.call(
                "/webhook",
                lambda: httpx.post(
                    f"{url}/webhook", json=hook(project, "START_TRAINING"), headers=HOOK_HEADERS, auth=AUTH
                ),
            )
            new = wait_for_new_version(url, project, known, timeout=max(5.0, stop_at - time.monotonic()))
            published += sorted(new)
            known |= new
        return published

    started = time.monotonic()
    with ThreadPoolExecutor(clients + 1) as pool:
        trainer = pool.submit(retrainer)
        loops = [pool.submit(client_loop, k) for k in range(clients)]
        for loop in loops:
            loop.result()
        published = trainer.result()
    elapsed = time.monotonic() - started
    if quiet:
        return
    total = sum(len(v) for v in recorder.times.values())
    errors = sum(len(v) for v in recorder.errors.values())
    print(
        f"soak: {minutes:g} min, {clients} clients, {total:,} requests, {total / elapsed:,.1f} req/s, errors: {errors}"
    )
    for route in sorted(recorder.times):
        times = np.asarray(recorder.times[route]) * 1000
        print(
            f"  {route:16} {len(times):7,} requests  p50 {np.percentile(times, 50):8.1f} ms  "
            f"p99 {np.percentile(times, 99):8.1f} ms  errors {len(recorder.errors[route])}"
        )
    for route, messages in recorder.errors.items():
        if messages:
            print(f"  first errors of {route}: {messages[:3]}")
    print(f"  versions published by the retrains during the soak: {len(published)}")


def flood(url: str, project: int, events: int = 1000, seconds: float = 10.0, threads: int = 8) -> None:
    known = set(versions(url, project))
    acks: list[float] = []
    failed: list[str] = []
    lock = threading.Lock()
    started = time.monotonic()

    def sender(k: int) -> None:
        with httpx.Client(timeout=5, auth=AUTH, headers=HOOK_HEADERS) as http:
            for i in range(k, events, threads):
                pause = started + seconds * i / events - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                t0 = time.perf_counter()
                try:
                    response = http.post(f"{url}/webhook", json=hook(project))
                    outcome = None if response.status_code == 200 else f"HTTP {response.status_code}"
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                with lock:
                    acks.append(time.perf_counter() - t0)
                    if outcome:
                        failed.append(outcome)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(sender, range(threads)))
    sent_in = time.monotonic() - started
    within = sum(1 for a in acks if a <= 1.0) - len(failed)
    print(
        f"flood: {events:,} annotation events sent in {sent_in:.1f} s; acknowledged within 1 s: {within:,}; "
        f"failed: {len(failed)}; slowest ack {max(acks) * 1000:.0f} ms, p99 {np.percentile(acks, 99) * 1000:.0f} ms"
    )
    wait_for_new_version(url, project, known, timeout=DEBOUNCE_SECONDS + 120)
    time.sleep(DEBOUNCE_SECONDS + 30)  # every worker's debounce window has passed, any second run has ended
    new = set(versions(url, project)) - known
    print(f"  training runs the flood published: {len(new)} (versions {sorted(new)})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--retrain-every", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--train-every",
        type=int,
        default=1_000_000,
        help="TRAIN_EVERY_N_ANNOTATIONS (default: above the flood)",
    )
    args = parser.parse_known_args()[0]  # `python -m bench soak` leaves the module name in argv

    texts, labels = load_sms()
    workdir = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    token = secrets.token_hex(20)
    ls = start_label_studio(workdir / "label-studio", token=token)
    backend = None
    try:
        client = LabelStudioClient(ls.url, token)
        project = client.create_project(title="soak", label_config=CONFIG)
        ids = client.import_tasks(project.id, [{"data": {"text": t}} for t in texts[:300]])
        for task_id, label in zip(ids[:200], labels[:200], strict=True):
            client.create_annotation(
                task_id,
                [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [label]}}],
            )
        backend = start_ml_backend(
            workdir / "models",
            label_studio_url=ls.url,
            api_key=token,
            workers=args.workers,
            env={
                "BASIC_AUTH_USER": USER,
                "BASIC_AUTH_PASS": PASSWORD,
                "WEBHOOK_SECRET": SECRET,
                "TRAIN_EVERY_N_ANNOTATIONS": str(args.train_every),
                "TRAIN_DEBOUNCE_SECONDS": str(DEBOUNCE_SECONDS),
                "SYNC_PROJECT_MODEL_VERSION": "false",
            },
        )
        url = backend.url
        httpx.post(f"{url}/setup", json={"project": project.id, "schema": CONFIG}, auth=AUTH, timeout=60)
        httpx.post(f"{url}/webhook", json=hook(project.id, "START_TRAINING"), headers=HOOK_HEADERS, auth=AUTH)
        if not wait_for_new_version(url, project.id, set(), timeout=180):
            raise SystemExit(f"the first training did not publish a version; see {backend.log_path}")
        # Every route on every worker (first loads of code and model) before the first RSS reading.
        soak(url, project.id, texts, 0.5, args.clients, retrain_every=3600, quiet=True)
        assert backend.process is not None
        pids = worker_pids(backend.process.pid)
        samples = [[rss_mb(pid) for pid in pids]]
        sampler = threading.Thread(target=_sample, args=(pids, samples, args.minutes), daemon=True)
        sampler.start()
        soak(url, project.id, texts, args.minutes, args.clients, args.retrain_every)
        sampler.join()
        after = {pid: rss_mb(pid) for pid in worker_pids(backend.process.pid)}
        for k, pid in enumerate(pids):
            end = after.get(pid)
            growth = "restarted" if end is None else f"{(end / samples[0][k] - 1) * 100:+.1f} %"
            series = " ".join(f"{row[k]:.0f}" for row in samples)
            print(
                f"  worker {pid}: RSS {samples[0][k]:.0f} MB at start, {end or 0:.0f} MB at end ({growth}); each minute: {series}"
            )
        wait_idle(url, project.id)
        flood(url, project.id)
    finally:
        if backend is not None:
            backend.stop()
        ls.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
