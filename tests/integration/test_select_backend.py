"""``select`` scoring through the real ML backend's ``/score`` (``ml-backend serve``), end to end.

A project gets 40 annotated sms_spam texts; ``ml-backend train`` trains on them into MODEL_DIR; the
served backend then scores the pool for ``ls-companion select`` (a subprocess with the environment a
user would set). A project without a model gets HTTP 409 from the backend and cold-starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ls_companion import META_NAMESPACE
from ls_companion.client import LabelStudioClient
from ls_companion.localserver import LabelStudioProcess
from ls_companion.records import Project
from ls_companion.selection.scoring import HttpScorer
from ls_companion.sources import content_id, read_rows
from tests.conftest import REPO_ROOT, SHARED_DATASETS
from tests.harness.ml_backend import MLBackendProcess, start_ml_backend, train_model
from tests.integration.helpers import choice, new_project

pytestmark = pytest.mark.integration

USER, PASSWORD = "select-backend", "select-pass-789"
SMS = [dict(r) for r in read_rows(SHARED_DATASETS / "sms_spam" / "sms_spam.csv")]


@dataclass
class Served:
    backend: MLBackendProcess
    trained: Project
    untrained: Project
    env: dict[str, str]


@pytest.fixture(scope="module")
def served(
    label_studio: LabelStudioProcess, ls_client: LabelStudioClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    trained = new_project(ls_client, "select via backend")
    labeled = [r for r in SMS[:400] if r["label"] == "ham"][:20] + [
        r for r in SMS[:400] if r["label"] == "spam"
    ][:20]
    ids = ls_client.import_tasks(trained.id, [{"data": {"text": r["text"]}} for r in labeled])
    for task_id, row in zip(ids, labeled, strict=True):
        ls_client.create_annotation(task_id, choice(row["label"]))
    model_dir = tmp_path_factory.mktemp("select-backend") / "models"
    model_dir.mkdir()
    train_model(model_dir, trained.id, label_studio_url=label_studio.url, api_key=label_studio.token)
    backend = start_ml_backend(
        model_dir,
        label_studio_url=label_studio.url,
        api_key=label_studio.token,
        env={"BASIC_AUTH_USER": USER, "BASIC_AUTH_PASS": PASSWORD},
        workers=1,
        threads=2,
    )
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("LABEL_STUDIO_", "ML_BACKEND_", "DATA_DIR"))
    }
    env.update(
        LABEL_STUDIO_URL=label_studio.url,
        LABEL_STUDIO_API_KEY=label_studio.token,
        ML_BACKEND_URL=backend.url,
        ML_BACKEND_BASIC_AUTH_USER=USER,
        ML_BACKEND_BASIC_AUTH_PASS=PASSWORD,
        DATA_DIR=str(tmp_path_factory.mktemp("select-backend-data")),
        PYTHONPATH=str(REPO_ROOT),
    )
    try:
        yield Served(backend, trained, new_project(ls_client, "select untrained"), env)
    finally:
        backend.stop()


def _select(served: Served, project: Project, pool: Path, *extra: str) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "ls_companion",
        "select",
        str(pool),
        "--project",
        str(project.id),
        "--json",
    ]
    done = subprocess.run([*command, *extra], env=served.env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def _pool(tmp_path: Path) -> Path:
    path = tmp_path / "pool.jsonl"
    texts = list(dict.fromkeys(r["text"] for r in SMS[1000:1300]))
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    return path


def test_select_scores_the_pool_with_the_backend_and_imports_its_prelabels(
    served: Served, ls_client: LabelStudioClient, tmp_path: Path
) -> None:
    pool = _pool(tmp_path)
    args = ("--strategy", "entropy", "--batch", "30", "--with-predictions", "--workers", "2")
    report = _select(served, served.trained, pool, *args)
    version = report["model_version"]
    assert version and report["strategy"] == "entropy" and report["imported"] == 30

    ours = [t for t in ls_client.list_tasks(served.trained.id, predictions=True) if META_NAMESPACE in t.meta]
    assert len(ours) == 30
    # The meta's uncertainty is the backend's own entropy for that text; the pre-label is its top class.
    scorer = HttpScorer(served.backend.url, served.trained.id, auth=(USER, PASSWORD))
    try:
        items = [{"id": t.meta[META_NAMESPACE]["source_id"], "data": t.data} for t in ours[:5]]
        scores = scorer.score(items)
    finally:
        scorer.close()
    assert scores is not None and scores.proba is not None and scores.model_version == version
    for i, task in enumerate(ours[:5]):
        meta = task.meta[META_NAMESPACE]
        assert meta["source_id"] == content_id(task.data) and meta["model_version"] == version
        assert meta["uncertainty"] == pytest.approx(float(scores.measures["entropy"][i]), abs=1e-5)
        [pre] = task.predictions
        top = scores.classes[int(scores.proba[i].argmax())]
        assert pre.model_version == version and pre.result == choice(top)
        assert pre.score == pytest.approx(float(scores.confidence[i]), abs=1e-5)
    # The strategy's picks are the most uncertain items of the pool; the control slice is the rest.
    by_role: dict[str, list[float]] = {"entropy": [], "random": []}
    for task in ours:
        by_role[task.meta[META_NAMESPACE]["strategy"]].append(task.meta[META_NAMESPACE]["uncertainty"])
    assert len(by_role["entropy"]) == 27 and len(by_role["random"]) == 3
    assert min(by_role["entropy"]) >= max(by_role["random"])

    again = _select(served, served.trained, pool, *args)
    assert again["nothing_to_do"] and again["model_version"] == version


def test_an_untrained_backend_means_a_cold_start(
    served: Served, ls_client: LabelStudioClient, tmp_path: Path
) -> None:
    report = _select(served, served.untrained, _pool(tmp_path), "--strategy", "margin", "--batch", "20")
    assert report["model_version"] is None and report["strategy"] == "diversity" and report["imported"] == 20
    tasks = list(ls_client.list_tasks(served.untrained.id, annotations=False))
    assert {t.meta[META_NAMESPACE]["model_version"] for t in tasks} == {None}
    assert sum(1 for t in tasks if "cluster" in t.meta[META_NAMESPACE]) == 18  # the 2 control items have none
