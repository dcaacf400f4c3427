"""Speed of the ML backend under gunicorn (printed figures, not a test).

Measures, on the model the backend selects and calibrates on all of sms_spam (its chosen candidate is
printed; with character n-grams it is slower than the word-only model of 2026-11-28):
- ``POST /predict`` with 1,000 Label-Studio-shaped tasks: tasks/s from one client, and from two, and
  the server's CPU time per request (its processes' user + system time, which other jobs on the
  machine do not move as they move wall-clock rates);
- ``POST /predict`` with one task: p50/p99 latency over a kept-alive connection;
- ``POST /score`` with 5,000 items;
and, in the same run, the baselines: a minimal Flask echo endpoint under the same gunicorn setup (the
HTTP + JSON floor), the reference backend's model (its sklearn example's TF-IDF 1-3-grams +
LogisticRegression C=10 pipeline, ``predict_proba``) in process and, with ``--compare-url``, any other
running Label Studio ML backend (such as that example, run by hand from its public repository), sent
the same tasks by the same clients. The servers take turns: each rate is the median of ``--passes``
alternating passes and single-task requests go to each server in turn, so load from other jobs falls
on all of them alike. Without ``--compare-url`` the bench prints a bound the reference backend cannot
beat instead: the echo's time plus its model's bare ``predict_proba`` time. Targets: >= 2x the
reference backend's batched throughput and <= 0.4x its single-task p50 latency.

Run: ``.venv/bin/python -m bench.bench_ml_speed [--compare-url URL [--compare-pid PID]]``
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from flask import Flask, Response, request

from bench import SHARED_DATASETS as DATASETS
from bench.bench_ml_quality import reference_model
from ls_companion.localserver import free_port, wait_for_health
from ls_companion.modelselect import SelectedModel
from ml_backend.labelconfig import parse_label_config
from ml_backend.models.bundle import ModelBundle, TrainedControl
from ml_backend.predictor import predict_tasks, serving_controls
from ml_backend.registry import plugin_named
from ml_backend.store import ModelStore
from tests.harness.ml_backend import start_ml_backend

CONFIG = """<View><Text name="text" value="$text"/>
  <Choices name="label" toName="text" choice="single"><Choice value="ham"/><Choice value="spam"/></Choices>
</View>"""
PROJECT = 1

#: The baseline app: reads the same JSON body and answers one empty list per task.
echo_app = Flask("echo")


@echo_app.post("/predict")
def _echo() -> Response:
    body = json.loads(request.get_data())
    return Response(json.dumps({"results": [[] for _ in body["tasks"]]}), mimetype="application/json")


def ls_task(task_id: int, text: str) -> dict[str, Any]:
    """A task as Label Studio 1.23 serializes it into /predict (TaskSimpleSerializer's fields)."""
    return {
        "id": task_id,
        "data": {"text": text},
        "meta": {},
        "created_at": "2026-11-28T04:00:00.000000Z",
        "updated_at": "2026-11-28T04:00:00.000000Z",
        "is_labeled": False,
        "overlap": 1,
        "inner_id": task_id,
        "total_annotations": 0,
        "cancelled_annotations": 0,
        "total_predictions": 0,
        "comment_count": 0,
        "unresolved_comment_count": 0,
        "last_comment_updated_at": None,
        "project": PROJECT,
        "updated_by": None,
        "file_upload": None,
        "comment_authors": [],
        "annotations": [],
        "predictions": [],
    }


def load_sms() -> tuple[list[str], list[str]]:
    with (DATASETS / "sms_spam" / "sms_spam.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [r["text"] for r in rows], [r["label"] for r in rows]


def publish_model(model_dir: Path, texts: list[str], labels: list[str]) -> tuple[str, str]:
    """The version and the name of its chosen candidate."""
    spec = parse_label_config(CONFIG).controls[0]
    model = plugin_named(spec.plugin).fit(spec, texts, labels, None)
    assert isinstance(model, SelectedModel)
    bundle = ModelBundle({spec.name: TrainedControl(spec, model)})
    store = ModelStore(model_dir)
    with store.lock(PROJECT):
        version: str = store.publish(PROJECT, bundle, {"controls": {}})["version"]
    return version, model.selection_.name


def start_echo(workdir: Path) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--threads",
            "4",
            "--worker-class",
            "gthread",
            "--no-control-socket",
            "bench.bench_ml_speed:echo_app",
        ],
        stdout=(workdir / "echo.log").open("ab"),
        stderr=subprocess.STDOUT,
        cwd=Path(__file__).resolve().parent.parent,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.post(f"{url}/predict", json={"tasks": []}, timeout=1)
            return url, process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the echo server did not start")


@dataclass(frozen=True)
class Server:
    """A /predict endpoint under measure: its name, URL, basic auth and the pid of its process tree."""

    name: str
    url: str
    auth: tuple[str, str] | None = None
    pid: int | None = None

    def client(self, timeout: float) -> httpx.Client:
        return httpx.Client(base_url=self.url, auth=self.auth, timeout=timeout, headers=JSON_HEADERS)

    def cpu_seconds(self) -> float:
        """User + system CPU of the server's process and its descendants (gunicorn workers); 0 without pid."""
        pids, total = [self.pid] if self.pid else [], 0.0
        while pids:
            pid = pids.pop()
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
                for task in Path(f"/proc/{pid}/task").iterdir():
                    pids += [int(c) for c in (task / "children").read_text().split()]
        return total


JSON_HEADERS = {"Content-Type": "application/json"}


def warm_up(server: Server, body: bytes) -> None:
    """A few requests on several fresh connections, so that every gunicorn worker has served one."""

    def one(_: int) -> None:
        with server.client(60) as client:
            client.post("/predict", content=body).raise_for_status()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(16)))


def batch_rate(
    server: Server, body: bytes, n_tasks: int, *, clients: int, rounds: int = 20
) -> tuple[float, float]:
    """Tasks per second over ``rounds`` batches per client, ``clients`` clients at once, and the server's
    CPU milliseconds per request."""

    def run(_: int) -> None:
        with server.client(60) as client:
            for _ in range(rounds):
                client.post("/predict", content=body).raise_for_status()

    cpu, started = server.cpu_seconds(), time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(run, range(clients)))
    elapsed, requests = time.perf_counter() - started, rounds * clients
    return n_tasks * requests / elapsed, (server.cpu_seconds() - cpu) * 1000 / requests


def single_latencies(servers: list[Server], bodies: list[bytes]) -> list[tuple[float, float]]:
    """p50 and p99 ms of one-task requests, each body sent to every server in turn (after 100 unmeasured)."""
    clients = [server.client(10) for server in servers]
    times: list[list[float]] = [[] for _ in servers]
    for k, body in enumerate(bodies):
        for client, kept in zip(clients, times, strict=True):
            started = time.perf_counter()
            client.post("/predict", content=body).raise_for_status()
            if k >= 100:
                kept.append(time.perf_counter() - started)
    for client in clients:
        client.close()
    return [(float(np.percentile(t, 50) * 1000), float(np.percentile(t, 99) * 1000)) for t in times]


def in_process(
    texts: list[str], labels: list[str], model_dir: Path, batch: list[dict[str, Any]]
) -> tuple[float, float]:
    """Prints the in-process rates; returns the reference model's seconds per 1,000-task batch (best of
    20) and its single-text ``predict_proba`` p50 in ms."""
    model = reference_model().fit(texts, labels)
    batch_texts = [t["data"]["text"] for t in batch]
    bare = min(_timed(lambda: model.predict_proba(batch_texts)) for _ in range(20))
    one = [_timed(functools.partial(model.predict_proba, [t])) for t in texts[:1000]]
    single = float(np.percentile(one, 50)) * 1000
    loaded = ModelStore(model_dir).current(PROJECT)
    assert loaded is not None
    controls = serving_controls(loaded, parse_label_config(CONFIG))
    ours = min(_timed(lambda: predict_tasks(controls, loaded.version, batch)) for _ in range(20))
    print("in process, 1,000 tasks (best of 20):")
    print(f"  baseline reference model (1-3g, C=10) predict_proba: {1000 / bare:10,.0f} tasks/s")
    print(
        f"  backend predict_tasks (+ uncertainty, LS results): {1000 / ours:10,.0f} tasks/s  ({bare / ours:.2f}x)"
    )
    return bare, single


def _timed(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--compare-url",
        metavar="URL",
        help="a running Label Studio ML backend whose POST /predict is measured beside ours (same tasks, "
        "same clients, the ratios printed); it must serve the sms_spam ham/spam config of this bench",
    )
    parser.add_argument("--compare-auth", metavar="USER:PASSWORD", help="basic auth of --compare-url")
    parser.add_argument(
        "--compare-pid", type=int, metavar="PID", help="its server process (gunicorn master): CPU per request"
    )
    parser.add_argument("--passes", type=int, default=3, help="alternating passes per rate (median printed)")
    args = parser.parse_args(argv)
    texts, labels = load_sms()
    workdir = Path(tempfile.mkdtemp(prefix="bench-ml-speed-"))
    model_dir = workdir / "models"
    version, chosen = publish_model(model_dir, texts, labels)
    batch = [ls_task(k, texts[k]) for k in range(1000)]
    batch_body = json.dumps({"project": f"{PROJECT}.1", "label_config": CONFIG, "tasks": batch}).encode()
    singles = [
        json.dumps(
            {"project": f"{PROJECT}.1", "label_config": CONFIG, "tasks": [ls_task(k, texts[k])]}
        ).encode()
        for k in range(2000)
    ]
    score_body = json.dumps(
        {
            "project": PROJECT,
            "tasks": [{"id": k, "data": {"text": texts[k % len(texts)]}} for k in range(5000)],
        }
    ).encode()
    print(
        f"model {version}: {chosen}, selected on 5,574 sms_spam texts; gunicorn 2 workers x 4 threads; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {os.getloadavg()[0]:.1f}"
    )
    reference_batch, reference_single = in_process(texts, labels, model_dir, batch)

    process = start_ml_backend(model_dir, label_studio_url="http://127.0.0.1:9", api_key=None)
    echo_url, echo = start_echo(workdir)
    backend = Server("backend", process.url, pid=process.process.pid if process.process else None)
    servers = [backend, Server("echo", echo_url, pid=echo.pid)]
    if args.compare_url:
        user, _, password = (args.compare_auth or "").partition(":")
        auth = (user, password) if args.compare_auth else None
        servers.append(Server("compare", args.compare_url.rstrip("/"), auth, args.compare_pid))
    try:
        wait_for_health(backend.url, 30)
        for server in servers:
            with server.client(60) as client:
                reply = client.post("/predict", content=batch_body).json()
            if len(reply.get("results", [])) != 1000:
                raise SystemExit(f"{server.name} {server.url}/predict did not answer 1,000 results")
            if server is backend:
                assert reply["results"][0][0]["model_version"] == version
            warm_up(server, batch_body)
        print(f"over HTTP, POST /predict with 1,000 tasks (median of {args.passes} alternating passes):")
        for clients in (1, 2):
            runs = [
                [batch_rate(s, batch_body, 1000, clients=clients) for s in servers]
                for _ in range(args.passes)
            ]
            rate, cpu = (np.median(np.array(runs), axis=0).T).tolist()
            line = f"  {clients} client(s): " + " | ".join(
                f"{s.name} {r:9,.0f} tasks/s" + (f", CPU {c:.1f} ms/request" if s.pid else "")
                for s, r, c in zip(servers, rate, cpu, strict=True)
            )
            # the reference backend answers no faster than the echo plus its model's bare predict_proba
            bound = 1000 / (1000 / rate[1] + reference_batch)
            line += f"\n    backend/echo {rate[0] / rate[1]:.2f}x; backend / (echo + reference model) bound {rate[0] / bound:.2f}x"
            if len(servers) == 3:
                line += f"; backend/compare {rate[0] / rate[2]:.2f}x"
                if servers[2].pid:
                    line += f" (CPU per request: compare/backend {cpu[2] / cpu[0]:.2f}x)"
            print(line)
        latencies = single_latencies(servers, singles)
        print("over HTTP, POST /predict with 1 task, 1,900 requests on one kept-alive connection per server:")
        print(
            "  "
            + " | ".join(
                f"{s.name} p50 {p50:.2f} ms, p99 {p99:.2f} ms"
                for s, (p50, p99) in zip(servers, latencies, strict=True)
            )
        )
        p50, e50 = latencies[0][0], latencies[1][0]
        line = f"  backend p50 / (echo p50 + reference model's one-text predict_proba p50): {p50 / (e50 + reference_single):.2f}x"
        if len(servers) == 3:
            line += f"; backend p50 / compare p50: {p50 / latencies[2][0]:.2f}x"
        print(line)
        started = time.perf_counter()
        rounds = 10
        with backend.client(60) as client:
            for _ in range(rounds):
                client.post("/score", content=score_body).raise_for_status()
        print(
            f"over HTTP, POST /score with 5,000 items: {5000 * rounds / (time.perf_counter() - started):,.0f} items/s"
        )
        print(
            f"load average {os.getloadavg()[0]:.1f}; targets: >= 2x the reference backend's batched rate, <= 0.4x its p50"
        )
    finally:
        process.stop()
        echo.terminate()
        echo.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
