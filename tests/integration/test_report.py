"""``ls-companion report`` against the real Label Studio and the real ML backend.

A project of 40 sms_spam texts in three active-learning rounds is answered by three annotators (API
users; the admin records their annotations), with gold in the local store and one ground truth. The
backend (``ml-backend train``, then ``ml-backend serve`` with basic auth) holds two versions. The
report's JSON must carry the engine's numbers for the same project and the backend's holdout metrics,
and every plot must be on disk and inlined in the page.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from ls_companion import META_NAMESPACE
from ls_companion.cli import main
from ls_companion.client import LabelStudioClient
from ls_companion.localserver import LabelStudioProcess
from ls_companion.projectdata import gold_store_path
from ls_companion.quality import adapter, consensus
from ls_companion.quality.engine import QualityOptions, compute_project_quality
from ls_companion.quality.records import jsonable
from ls_companion.records import User
from ls_companion.report import PLOTS, write_report
from ls_companion.report.gather import NO_BACKEND, drift_series
from ls_companion.settings import Settings
from ls_companion.sources import read_rows
from tests.conftest import SHARED_DATASETS
from tests.harness.ml_backend import MLBackendProcess, start_ml_backend, train_model
from tests.integration.helpers import choice, new_project
from tests.integration.sync_helpers import make_users

pytestmark = pytest.mark.integration

BASIC_USER, BASIC_PASS = "report-backend", "report-pass-314"
FAST = (consensus.MAJORITY_VOTE, consensus.DAWID_SKENE)
N_TASKS = 40
GOLD_TASKS = range(1, 13)  # positions in the store's gold; position 0 gets a ground truth in LS
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def texts() -> list[dict[str, str]]:
    """20 ham and 20 spam messages, alternating, so every prefix holds both classes."""
    rows = [dict(r) for r in read_rows(SHARED_DATASETS / "sms_spam" / "sms_spam.csv")][:600]
    ham = [r for r in rows if r["label"] == "ham"][:20]
    spam = [r for r in rows if r["label"] == "spam"][:20]
    return [r for pair in zip(ham, spam, strict=True) for r in pair]


ROWS = texts()


def answer(i: int, user: int) -> str:
    """User 0 is always right, user 1 misses every 7th task, user 2 every 4th."""
    right = ROWS[i]["label"]
    wrong = "ham" if right == "spam" else "spam"
    return wrong if (user == 1 and i % 7 == 3) or (user == 2 and i % 4 == 1) else right


def round_meta(i: int) -> dict[str, Any]:
    if i < 10:
        return {"source_id": f"r{i}", "al_round": 0, "strategy": "pilot"}
    if i < 25:
        return {"source_id": f"r{i}", "al_round": 1, "strategy": "diversity", "uncertainty": None}
    return {
        "source_id": f"r{i}",
        "al_round": 2,
        "strategy": "entropy",
        "uncertainty": 0.3,
        "model_version": "vA",
    }


@dataclass
class Project:
    id: int
    tasks: list[int]
    users: list[User]
    backend: MLBackendProcess


def _annotate(client: LabelStudioClient, tasks: list[int], users: list[User], positions: range) -> None:
    for i in positions:
        for k, user in enumerate(users):
            client.create_annotation(tasks[i], choice(answer(i, k)), completed_by=user.id, lead_time=2.0 + k)


def _train(label_studio: LabelStudioProcess, model_dir: Path, project_id: int) -> None:
    train_model(model_dir, project_id, label_studio_url=label_studio.url, api_key=label_studio.token)


@pytest.fixture(scope="module")
def project(
    ls_client: LabelStudioClient,
    label_studio: LabelStudioProcess,
    ls_settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Project]:
    created = new_project(ls_client, "report")
    tasks = ls_client.import_tasks(
        created.id,
        [{"data": {"text": r["text"]}, "meta": {META_NAMESPACE: round_meta(i)}} for i, r in enumerate(ROWS)]
        + [{"data": {"text": f"loose {i}"}} for i in range(5)],  # imported by hand: no round
    )
    users = make_users(ls_client, 3)
    model_dir = tmp_path_factory.mktemp("report-backend") / "models"
    _annotate(ls_client, tasks, users, range(0, 20))
    _train(label_studio, model_dir, created.id)  # version 1: 20 examples, 4 held out
    _annotate(ls_client, tasks, users, range(20, N_TASKS))
    _train(label_studio, model_dir, created.id)  # version 2: 40 examples, 8 held out
    ls_client.create_annotation(tasks[0], choice(ROWS[0]["label"]), ground_truth=True)  # by the admin
    store = gold_store_path(ls_settings.data_dir, created.id)
    store.parent.mkdir(parents=True, exist_ok=True)
    store.write_text(
        "".join(
            json.dumps(
                {"task_id": tasks[i], "source_id": f"r{i}", "control": "label", "answer": ROWS[i]["label"]}
            )
            + "\n"
            for i in GOLD_TASKS
        )
    )
    backend = start_ml_backend(
        model_dir,
        label_studio_url=label_studio.url,
        api_key=label_studio.token,
        env={"BASIC_AUTH_USER": BASIC_USER, "BASIC_AUTH_PASS": BASIC_PASS},
        workers=1,
        threads=2,
    )
    try:
        yield Project(created.id, tasks, users, backend)
    finally:
        backend.stop()


def _engine(ls_client: LabelStudioClient, ls_settings: Settings, project_id: int) -> Any:
    data = adapter.fetch_project(ls_client, project_id)
    gold = adapter.load_gold(data, data_dir=ls_settings.data_dir)
    return compute_project_quality(
        data.table, data.controls, gold, data.predictions, QualityOptions(methods=FAST)
    )


def _without_seconds(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_seconds(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [_without_seconds(v) for v in value]
    return value


def test_report_command_matches_the_engine_and_the_backend(
    project: Project,
    ls_client: LabelStudioClient,
    label_studio: LabelStudioProcess,
    ls_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in {
        "LABEL_STUDIO_URL": label_studio.url,
        "LABEL_STUDIO_API_KEY": label_studio.token,
        "DATA_DIR": str(ls_settings.data_dir),
        "ML_BACKEND_URL": project.backend.url,
        "ML_BACKEND_BASIC_AUTH_USER": BASIC_USER,
        "ML_BACKEND_BASIC_AUTH_PASS": BASIC_PASS,
    }.items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "report"
    args = ["report", "--project", str(project.id), "--out", str(out), "--json", "--methods", ",".join(FAST)]
    assert main(args) == 0
    printed = json.loads(capsys.readouterr().out)
    report = json.loads((out / "report.json").read_text())
    assert printed == report

    quality = _engine(ls_client, ls_settings, project.id)
    engine = json.loads(json.dumps(quality.to_dict(), default=str))
    for key, value in engine.items():
        assert _without_seconds(report[key]) == _without_seconds(value), key
    assert report["drift_series"] == jsonable(drift_series(quality.drift_series))
    assert report["summary"]["n_tasks"] == N_TASKS and report["summary"]["n_annotations"] == 3 * N_TASKS
    assert report["project"]["task_number"] == N_TASKS + 5
    assert report["project"]["url"] == f"{label_studio.url}/projects/{project.id}/"

    # What the annotators did, read back: gold is the ground truth plus the store's 12 tasks.
    ids = [str(u.id) for u in project.users]
    by_user = {row["annotator"]: row for row in report["annotators"]}
    gold_positions = [0, *GOLD_TASKS]
    for k, uid in enumerate(ids):
        right = sum(answer(i, k) == ROWS[i]["label"] for i in gold_positions)
        assert (by_user[uid]["gold_n_gold"], by_user[uid]["gold_correct"]) == (len(gold_positions), right)
    assert report["annotator_names"][ids[0]] == project.users[0].email
    pairs = {(p["annotator_a"], p["annotator_b"]): p for p in report["pair_agreement"]["label"]}
    first, second = sorted(ids[:2])
    same = sum(answer(i, 0) == answer(i, 1) for i in range(N_TASKS)) / N_TASKS
    assert pairs[(first, second)]["n_tasks"] == N_TASKS
    assert pairs[(first, second)]["agreement"] == pytest.approx(same, abs=1e-4)
    labels = {r["label"]: r["answers"] for r in report["label_distribution"]["label"]["labels"]}
    answers = [answer(i, k) for i in range(N_TASKS) for k in range(3)]
    assert labels == {"ham": answers.count("ham"), "spam": answers.count("spam")}

    # Rounds from the tasks' meta.
    rounds = report["active_learning"]["rounds"]
    assert [(r["round"], r["tasks"], r["annotated"], r["gold"]) for r in rounds] == [
        (0, 10, 10, 10), (1, 15, 15, 3), (2, 15, 15, 0)
    ]  # fmt: skip
    assert rounds[1]["strategies"] == {"diversity": 15} and rounds[1]["mean_uncertainty"] is None
    assert rounds[2]["mean_uncertainty"] == 0.3 and rounds[2]["model_versions"] == ["vA"]
    assert report["active_learning"]["tasks_without_round"] == 5

    # Models: the backend's own /versions, oldest first, with the holdout metrics.
    served = httpx.get(
        f"{project.backend.url}/versions", params={"project": project.id}, auth=(BASIC_USER, BASIC_PASS)
    ).json()
    models = report["models"]
    assert models["available"] and models["latest"] == served["latest"]
    assert [v["version"] for v in models["versions"]] == list(reversed(served["versions"]))
    assert [v["controls"]["label"]["training_size"] for v in models["versions"]] == [20, 40]
    assert [v["controls"]["label"]["holdout"] for v in models["versions"]] == [
        d["controls"]["label"]["holdout"] for d in reversed(served["details"])
    ]
    # measured on the model selection's out-of-fold predictions of every training example
    assert [v["controls"]["label"]["holdout"]["size"] for v in models["versions"]] == [20, 40]
    assert {v["controls"]["label"]["holdout"]["method"] for v in models["versions"]} == {"out-of-fold"}
    # The predictions LS holds per version: each training pushed its predictions of the unlabeled tasks
    # (25, then the 5 loose ones), and both versions are kept
    assert models["label_studio_predictions"] == [
        {"model_version": v["version"], "predictions": n, "kept_by_backend": True}
        for v, n in zip(models["versions"], (25, 5), strict=True)
    ]

    # Every plot on disk, and the same bytes inlined in the page.
    html = (out / "index.html").read_text()
    for name in PLOTS:
        png = (out / "plots" / f"{name}.png").read_bytes()
        assert png.startswith(PNG_SIGNATURE), name
        assert base64.b64encode(png).decode() in html, name
    assert report["plots"] == {name: f"plots/{name}.png" for name in PLOTS}


def test_connected_backend_is_found_through_label_studio(
    project: Project, ls_client: LabelStudioClient, ls_settings: Settings, tmp_path: Path
) -> None:
    ls_client.create_ml_backend(
        project.id,
        project.backend.url,
        title="ls-companion",
        auth_method="BASIC_AUTH",
        basic_auth_user=BASIC_USER,
        basic_auth_pass=BASIC_PASS,
    )
    settings = ls_settings.model_copy(
        update={"ml_backend_url": None, "ml_backend_basic_auth_user": BASIC_USER,
                "ml_backend_basic_auth_pass": SecretStr(BASIC_PASS)}
    )  # fmt: skip
    result = write_report(ls_client, settings, project.id, tmp_path / "connected")
    models = result.payload["models"]
    assert models["available"] and models["backend_url"] == project.backend.url
    assert len(models["versions"]) == 2
    assert json.loads(result.json.read_text()) == result.payload
    assert result.html.is_file() and set(result.plots) == set(PLOTS)


def test_project_without_answers_or_backend(
    ls_client: LabelStudioClient, ls_settings: Settings, tmp_path: Path
) -> None:
    empty = new_project(ls_client, "report empty")
    ls_client.import_tasks(empty.id, [{"data": {"text": "nothing yet"}}])
    result = write_report(ls_client, ls_settings, empty.id, tmp_path / "empty")
    payload = result.payload
    assert payload["summary"]["n_tasks"] == 0 and payload["project"]["task_number"] == 1
    assert payload["models"] == {**payload["models"], "available": False, "reason": NO_BACKEND}
    for path in result.plots.values():
        assert path.read_bytes().startswith(PNG_SIGNATURE)
    assert "no ML backend" in result.html.read_text()
