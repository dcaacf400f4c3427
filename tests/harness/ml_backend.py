"""Start the real ML backend (``ml-backend serve``: gunicorn) on a free 127.0.0.1 port for tests and demos.

The harness's Label Studio runs with ML_BLOCK_LOCAL_IP=false, so it can call a backend on 127.0.0.1.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ls_companion.localserver import LocalServerError, free_port, wait_for_health

#: Environment variables the backend reads; inherited values are dropped so tests are hermetic.
_BACKEND_VARS = (
    "MODEL_DIR",
    "BASIC_AUTH_USER",
    "BASIC_AUTH_PASS",
    "WEBHOOK_SECRET",
    "LABEL_STUDIO_URL",
    "LABEL_STUDIO_API_KEY",
    "REDIS_URL",
    "QUEUE_NAME",
    "TRAIN_EVERY_N_ANNOTATIONS",
    "TRAIN_DEBOUNCE_SECONDS",
    "KEEP_VERSIONS",
    "MAX_BODY_BYTES",
    "HOST",
    "PORT",
    "WORKERS",
)


@dataclass
class MLBackendProcess:
    url: str
    model_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def log_tail(self, lines: int = 80) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout)


def backend_env(
    model_dir: Path,
    *,
    label_studio_url: str,
    api_key: str | None,
    port: int,
    extra: Mapping[str, str] | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    env = {k: v for k, v in (base if base is not None else os.environ).items() if k not in _BACKEND_VARS}
    env.update(
        {
            "MODEL_DIR": str(model_dir),
            "LABEL_STUDIO_URL": label_studio_url,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "LOG_LEVEL": "INFO",
        }
    )
    if api_key:
        env["LABEL_STUDIO_API_KEY"] = api_key
    env.update(extra or {})
    return env


def start_ml_backend(
    model_dir: Path,
    *,
    label_studio_url: str,
    api_key: str | None,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    workers: int = 2,
    threads: int = 4,
    timeout: float = 60.0,
) -> MLBackendProcess:
    """Run ``ml-backend serve`` with MODEL_DIR=model_dir; ``env`` adds settings (BASIC_AUTH_USER, ...)."""
    model_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log_path = model_dir.parent / f"ml-backend-{port}.log"
    full_env = backend_env(
        model_dir, label_studio_url=label_studio_url, api_key=api_key, port=port, extra=env
    )
    full_env["WORKERS"] = str(workers)
    command = [sys.executable, "-m", "ml_backend.cli", "serve", "--threads", str(threads)]
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=Path(__file__).resolve().parents[2],
            start_new_session=True,  # stop() signals gunicorn's master and its workers together
        )
    server = MLBackendProcess(f"http://127.0.0.1:{port}", model_dir, log_path, process)
    try:
        wait_for_health(server.url, timeout, process)
    except LocalServerError as exc:
        server.stop()
        raise LocalServerError(f"the ML backend did not start: {exc}", detail=server.log_tail()) from None
    return server


def start_ml_worker(
    model_dir: Path,
    *,
    label_studio_url: str,
    api_key: str,
    redis_url: str,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Run ``ml-backend worker`` (rq training jobs) against the same MODEL_DIR; stop it with ``stop_process``."""
    extra = {"REDIS_URL": redis_url, **(env or {})}
    full_env = backend_env(model_dir, label_studio_url=label_studio_url, api_key=api_key, port=0, extra=extra)
    full_env.pop("PORT")
    log_path = model_dir.parent / "ml-worker.log"
    with log_path.open("ab") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "ml_backend.cli", "worker"],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=Path(__file__).resolve().parents[2],
            start_new_session=True,
        )


def stop_process(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout)
