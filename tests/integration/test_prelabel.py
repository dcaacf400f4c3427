"""``ls-companion prelabel`` against the real Label Studio and the real ML backend (``ml-backend serve``).

A project of 40 annotated and 560 new sms_spam texts, the backend trained on it and connected: the
command (``--via action``) is SIGKILLed once about a third of the tasks have their prediction, then run
again (``--via import``, the default); every task then has exactly one prediction of the backend's
model version, and a third run asks for nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ls_companion.client import LabelStudioClient
from ls_companion.localserver import LabelStudioProcess
from ls_companion.sources import read_rows
from tests.conftest import REPO_ROOT, SHARED_DATASETS
from tests.harness.ml_backend import start_ml_backend, train_model
from tests.integration.helpers import choice, new_project

pytestmark = pytest.mark.integration

SMS = [dict(r) for r in read_rows(SHARED_DATASETS / "sms_spam" / "sms_spam.csv")]
NEW_TASKS = 560


def _versions(client: LabelStudioClient, project_id: int, version: str) -> Counter[int]:
    """How many predictions of ``version`` each task of the project has."""
    tasks = client.list_tasks(
        project_id, data=False, annotations=False, predictions=True, prediction_results=False
    )
    return Counter({t.id: sum(p.model_version == version for p in t.predictions) for t in tasks})


def test_prelabel_killed_halfway_and_rerun_leaves_one_prediction_per_task(
    label_studio: LabelStudioProcess, ls_client: LabelStudioClient, tmp_path: Path
) -> None:
    project = new_project(ls_client, "prelabel")
    labeled = [r for r in SMS[:400] if r["label"] == "ham"][:20] + [
        r for r in SMS[:400] if r["label"] == "spam"
    ][:20]
    ids = ls_client.import_tasks(project.id, [{"data": {"text": r["text"]}} for r in labeled])
    for task_id, row in zip(ids, labeled, strict=True):
        ls_client.create_annotation(task_id, choice(row["label"]))
    ls_client.import_tasks(project.id, [{"data": {"text": r["text"]}} for r in SMS[1000 : 1000 + NEW_TASKS]])
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    # PREDICT_AFTER_TRAINING=0: else training itself pre-labels the unlabeled tasks
    train_model(
        model_dir,
        project.id,
        label_studio_url=label_studio.url,
        api_key=label_studio.token,
        env={"PREDICT_AFTER_TRAINING": "0"},
    )
    backend = start_ml_backend(
        model_dir, label_studio_url=label_studio.url, api_key=label_studio.token, workers=1, threads=2
    )
    try:
        ls_client.create_ml_backend(project.id, backend.url, title="prelabel test")
        found = ls_client.connected_backend(project.id)
        assert found is not None and found.model_version
        version = found.model_version
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LABEL_STUDIO_", "DATA_DIR"))}
        env.update(
            LABEL_STUDIO_URL=label_studio.url,
            LABEL_STUDIO_API_KEY=label_studio.token,
            DATA_DIR=str(tmp_path / "data"),
            PYTHONPATH=str(REPO_ROOT),
        )
        command = [sys.executable, "-m", "ls_companion", "prelabel", "--project", str(project.id), "--json"]
        total = len(labeled) + NEW_TASKS

        # Label Studio's action, in small chunks, is slow enough to be killed halfway.
        first = subprocess.Popen(
            [*command, "--via", "action", "--chunk", "20"], env=env, stdout=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 300
        while sum(_versions(ls_client, project.id, version).values()) < total // 3:
            assert first.poll() is None, "prelabel ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.3)
        first.send_signal(signal.SIGKILL)
        first.wait(30)
        partial = _versions(ls_client, project.id, version)
        assert 0 < sum(partial.values()) < total  # killed halfway

        def run() -> dict[str, Any]:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, done.stderr
            result: dict[str, Any] = json.loads(done.stdout)
            return result

        second = run()
        assert second["model_version"] == version and second["tasks"] == total
        # Chunks grow with speed: the request the killed run left in flight may have covered every task
        # left (seen on PostgreSQL), so the rerun may find nothing to ask; it never asks again for what was done.
        assert second["requested"] <= total - sum(partial.values())
        counts = _versions(ls_client, project.id, version)
        assert len(counts) == total and set(counts.values()) == {1}

        third = run()
        assert (third["requested"], third["already"], third["duplicates_removed"]) == (0, total, 0)
    finally:
        backend.stop()
