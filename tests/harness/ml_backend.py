"""The real ML backend for tests: ``ml-backend serve`` (from ``ls_companion.localserver``) and its rq worker.

The harness's Label Studio runs with ML_BLOCK_LOCAL_IP=false, so it can call a backend on 127.0.0.1.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from ls_companion.localserver import (
    REPO_ROOT,
    MLBackendProcess,
    backend_env,
    start_ml_backend,
    stop_process,
)

__all__ = [
    "MLBackendProcess",
    "backend_env",
    "start_ml_backend",
    "start_ml_worker",
    "stop_process",
    "train_model",
]


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
            cwd=REPO_ROOT,
            start_new_session=True,
        )


def train_model(
    model_dir: Path,
    project_id: int,
    *,
    label_studio_url: str,
    api_key: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
) -> None:
    """Train and publish one version with ``ml-backend train`` (the CLI, in its own process), or fail the
    caller with the command's output."""
    full_env = backend_env(model_dir, label_studio_url=label_studio_url, api_key=api_key, port=0, extra=env)
    full_env.pop("PORT")  # training serves nothing
    done = subprocess.run(
        [sys.executable, "-m", "ml_backend.cli", "train", str(project_id)],
        env=full_env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"ml-backend train failed ({done.returncode}):\n{done.stdout}{done.stderr}")
