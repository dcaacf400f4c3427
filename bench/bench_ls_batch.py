"""How large is the largest /predict request Label Studio sends? (printed figures, not a test)

The Data Manager's *Retrieve predictions* sends every selected task in ONE /predict request, each task
serialized with its annotations and predictions. This starts a Label Studio here (SQLite, from
``.venv-ls``), connects a recording stand-in backend on 127.0.0.1, and runs the action on two projects of
``N_TASKS`` reviews from ``examples/reviews.csv``: unlabeled, and labeled (three annotations and one
prediction of an older model version per task, what a project looks like after a few rounds). It
prints the body size per task and the JSON nesting depth, against the backend's default limits
(``MAX_BODY_BYTES``, ``MAX_TASKS``, ``MAX_JSON_DEPTH``), which are sized from these figures
(docs/ml-backend.md, "Request limits").

Run: ``.venv/bin/python -m bench.bench_ls_batch``
"""

from __future__ import annotations

import csv
import json
import secrets
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ls_companion.client import LabelStudioClient
from ls_companion.localserver import REPO_ROOT, start_label_studio
from ml_backend.protocol import nesting_depth
from ml_backend.settings import BackendSettings

N_TASKS = 1_000
CONFIG = (REPO_ROOT / "label_configs" / "sentiment.xml").read_text()


class Recorder(BaseHTTPRequestHandler):
    """A stand-in ML backend that records the /predict bodies and predicts nothing."""

    bodies: list[bytes] = []  # noqa: RUF012 - one recorder per run

    def _answer(self, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._answer({"status": "UP"})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path.startswith("/predict"):
            Recorder.bodies.append(body)
            self._answer({"results": [[] for _ in json.loads(body)["tasks"]]})
        else:
            self._answer({"model_version": "v2"})

    def log_message(self, *args: Any) -> None:
        pass


def reviews(n: int) -> list[str]:
    with (REPO_ROOT / "examples" / "reviews.csv").open(newline="") as handle:
        texts = [row["text"] for row in csv.DictReader(handle)]
    return [texts[i % len(texts)] for i in range(n)]


def choice(value: str) -> list[dict[str, Any]]:
    return [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [value]}}]


def measure(client: LabelStudioClient, backend_url: str, labeled: bool) -> tuple[int, int, int, float]:
    project = client.create_project(
        title=f"batch {'labeled' if labeled else 'unlabeled'}", label_config=CONFIG
    )
    tasks: list[dict[str, Any]] = []
    for k, text in enumerate(reviews(N_TASKS)):
        task: dict[str, Any] = {"data": {"id": f"rev{k:05d}", "text": text}}
        if labeled:
            task["annotations"] = [
                {"result": choice(v), "lead_time": 4.2} for v in ("Positive", "Positive", "Neutral")
            ]
            task["predictions"] = [{"result": choice("Positive"), "score": 0.61, "model_version": "v1"}]
        tasks.append(task)
    client.import_tasks(project.id, tasks)
    client.create_ml_backend(project.id, backend_url, title="recorder")
    Recorder.bodies.clear()
    started = time.perf_counter()
    client.retrieve_predictions(project.id)
    seconds = time.perf_counter() - started
    [body] = Recorder.bodies
    payload = json.loads(body)
    return len(body), len(payload["tasks"]), nesting_depth(payload, 1000), seconds


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    backend_url = f"http://127.0.0.1:{server.server_address[1]}"
    limits = BackendSettings()
    with tempfile.TemporaryDirectory() as scratch:
        token = secrets.token_hex(20)
        ls = start_label_studio(Path(scratch) / "ls", token=token)
        client = LabelStudioClient(ls.url, token, timeout=600)
        try:
            for labeled in (False, True):
                size, count, depth, seconds = measure(client, backend_url, labeled)
                per_task = size / count
                print(
                    f"{'labeled  ' if labeled else 'unlabeled'} {count:,} tasks: {size:,} bytes "
                    f"({per_task:,.0f} per task), JSON depth {depth}, action {seconds:.1f} s; "
                    f"MAX_BODY_BYTES {limits.max_body_bytes:,} holds {limits.max_body_bytes / per_task:,.0f} "
                    f"such tasks (MAX_TASKS {limits.max_tasks:,}, MAX_JSON_DEPTH {limits.max_json_depth})"
                )
        finally:
            client.close()
            ls.stop()
            server.shutdown()


if __name__ == "__main__":
    main()
