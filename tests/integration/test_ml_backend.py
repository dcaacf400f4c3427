"""The ML backend against the real Label Studio 1.23.2: registration, webhooks, background training,
versions, predictions stored by LS, the uncertainty stream, concurrency, auth and errors."""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import pytest
from label_studio_sdk.label_interface.interface import LabelInterface

from ls_companion.client import LabelStudioClient
from ls_companion.localserver import LabelStudioProcess
from ls_companion.records import Project, Task
from ml_backend.models.word_clusters import build_clusters
from ml_backend.settings import BackendSettings
from ml_backend.store import ModelStore
from ml_backend.training import Trainer
from tests.conftest import REPO_ROOT, SHARED_DATASETS
from tests.harness.ml_backend import MLBackendProcess, start_ml_backend
from tests.integration.helpers import CHOICES_CONFIG, choice, new_project

pytestmark = pytest.mark.integration

USER, PASSWORD, SECRET = "lsc-backend", "backend-pass-123", "webhook-secret-456"
AUTH = (USER, PASSWORD)
T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 90.0, every: float = 0.5) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def ner_vocabulary() -> list[str]:
    return sorted({word.lower() for text, _ in wnut_documents(30) for word in text.split()})


@pytest.fixture(scope="module")
def backend(
    label_studio: LabelStudioProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MLBackendProcess]:
    folder = tmp_path_factory.mktemp("ml-backend")
    # Word clusters of random vectors: the NER test checks they reach the trained model, not their value.
    words = ner_vocabulary()
    vectors = np.random.default_rng(0).normal(size=(len(words), 8)).astype(np.float32)
    build_clusters(words, vectors, (2, 3, 5)).save(folder / "word-clusters.npz")
    server = start_ml_backend(
        folder / "models",
        label_studio_url=label_studio.url,
        api_key=label_studio.token,
        env={
            "BASIC_AUTH_USER": USER,
            "BASIC_AUTH_PASS": PASSWORD,
            "WEBHOOK_SECRET": SECRET,
            "TRAIN_EVERY_N_ANNOTATIONS": "5",
            "TRAIN_DEBOUNCE_SECONDS": "2",
            "KEEP_VERSIONS": "3",
            "WORD_CLUSTERS": str(folder / "word-clusters.npz"),
        },
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sms() -> dict[str, list[str]]:
    with (SHARED_DATASETS / "sms_spam" / "sms_spam.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return {label: [r["text"] for r in rows if r["label"] == label][:60] for label in ("ham", "spam")}


def connect(client: LabelStudioClient, project: Project, backend: MLBackendProcess) -> int:
    """Register the backend as the bootstrap does: basic auth, and the secret on LS's own webhook."""
    ml = client.create_ml_backend(
        project.id,
        backend.url,
        title="ls-companion",
        auth_method="BASIC_AUTH",
        basic_auth_user=USER,
        basic_auth_pass=PASSWORD,
    )
    assert ml.state == "CO"  # LS called /health and /setup with basic auth
    assert ml.model_version == "untrained"
    [hook] = client.list_webhooks(project.id)  # created by LS itself, without any header
    assert hook.url == f"{backend.url}/webhook" and hook.headers == {} and hook.send_for_all_actions
    client.update_webhook(hook.id, headers={"X-Webhook-Secret": SECRET})
    return ml.id


def backend_versions(backend: MLBackendProcess, project_id: int) -> dict[str, Any]:
    response = httpx.get(f"{backend.url}/versions", params={"project": project_id}, auth=AUTH, timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def wait_trained(
    client: LabelStudioClient,
    backend: MLBackendProcess,
    project_id: int,
    annotated: int,
    newer_than: str = "",
) -> str:
    """The version trained on ``annotated`` tasks, once LS's project points at it (sync done)."""

    def probe() -> str | None:
        details = backend_versions(backend, project_id)["details"]
        if not details or details[0]["version"] <= newer_than:
            return None
        if details[0]["training"]["annotated_tasks"] < annotated:
            return None
        version: str = details[0]["version"]
        return version if client.get_project(project_id).model_version == version else None

    return wait_for(f"a model of project {project_id} trained on {annotated} tasks", probe)


def current_predictions(task: Task, version: str) -> list[Any]:
    return [p for p in task.predictions if p.model_version == version]


def test_pruned_versions_predictions_deleted_only_when_small(
    ls_client: LabelStudioClient, tmp_path: Path
) -> None:
    # LS deletes a version's predictions in one transaction that blocks the project's saves: a pruned
    # version with more than PRUNE_PREDICTIONS_MAX predictions is left and reported, a smaller one goes.
    project = new_project(ls_client, "prune predictions")
    ids = ls_client.import_tasks(project.id, [{"data": {"text": f"text {i}"}} for i in range(3)])
    rows = [("small", ids[:2]), ("big", ids), ("current", ids[:1])]
    ls_client.import_predictions(
        project.id,
        [
            {"task": i, "result": choice("spam"), "score": 0.5, "model_version": v}
            for v, vs in rows
            for i in vs
        ],
    )
    assert ls_client.model_version_counts(project.id) == {"small": 2, "big": 3, "current": 1}
    settings = BackendSettings(model_dir=tmp_path, prune_predictions_max=2)
    trainer = Trainer(settings, ModelStore(tmp_path))

    left = trainer._delete_pruned(ls_client, project.id, ["small", "big", "current", "gone"], "current")

    assert left == {"big": 3}
    assert ls_client.model_version_counts(project.id) == {"big": 3, "current": 1}


def test_classification_round_trip(
    ls_client: LabelStudioClient, backend: MLBackendProcess, sms: dict[str, list[str]]
) -> None:
    project = new_project(ls_client, "ml backend classification")
    texts = [(t, "ham") for t in sms["ham"][:20]] + [(t, "spam") for t in sms["spam"][:20]]
    ids = ls_client.import_tasks(project.id, [{"data": {"text": text}} for text, _ in texts])
    label_of = {task_id: label for task_id, (_, label) in zip(ids, texts, strict=True)}
    connect(ls_client, project, backend)

    # Untrained: opening a task asks the backend, which answers without predictions, so LS stores none.
    assert ls_client.get_task(ids[0]).predictions == ()

    # Annotations through the API: LS fires webhooks, the backend trains in the background.
    labeled = ids[:6] + ids[20:26]
    for task_id in labeled:
        ls_client.create_annotation(task_id, choice(label_of[task_id]))
    first = wait_trained(ls_client, backend, project.id, annotated=len(labeled))

    # The new version was pushed for every unlabeled task, with confidences as scores.
    tasks = list(ls_client.list_tasks(project.id, predictions=True))
    unlabeled = [t for t in tasks if not t.annotations]
    assert len(unlabeled) == 28
    for task in unlabeled:
        [prediction] = current_predictions(task, first)
        assert 0.5 <= (prediction.score or 0) <= 1.0
        [item] = prediction.result
        assert item["value"]["choices"][0] in ("ham", "spam") and item["score"] == prediction.score

    # The Data Manager action and opening a task make LS call /setup + /predict and store the reply.
    fresh = ls_client.import_tasks(
        project.id, [{"data": {"text": t}} for t in ("WIN a FREE prize, call now!", "see you at lunch", "ok")]
    )
    ls_client.retrieve_predictions(project.id, fresh[:2])
    for task in ls_client.list_tasks(project.id, task_ids=fresh[:2], predictions=True):
        [prediction] = current_predictions(task, first)
        assert prediction.score is not None and prediction.score >= 0.5
    assert [p.model_version for p in ls_client.get_task(fresh[2]).predictions] == [first]

    # Uncertainty sampling serves the least certain task of the current version first.
    ls_client.update_project(project.id, sampling="Uncertainty sampling")
    candidates = [
        (current_predictions(t, first)[0].score, t.id)
        for t in ls_client.list_tasks(project.id, predictions=True)
        if not t.annotations
    ]
    next_task = ls_client.next_task(project.id)
    assert next_task is not None and next_task.id == min(candidates)[1]

    # More annotations: a newer version (names sort by time), and LS's project follows it.
    for task_id in ids[6:9] + ids[26:29]:
        ls_client.create_annotation(task_id, choice(label_of[task_id]))
    second = wait_trained(ls_client, backend, project.id, annotated=len(labeled) + 6, newer_than=first)
    assert second > first
    setup = httpx.post(
        f"{backend.url}/setup", json={"project": f"{project.id}.1", "schema": CHOICES_CONFIG}, auth=AUTH
    )
    assert setup.json()["model_version"] == second
    still_unlabeled = [t for t in ls_client.list_tasks(project.id, predictions=True) if not t.annotations]
    assert all(len(current_predictions(t, second)) == 1 for t in still_unlabeled)


WNUT_TO_CONFIG = {
    "person": "Person",
    "location": "Location",
    "corporation": "Organization",
    "product": "Product",
    "creative-work": "Creative-Work",
    "group": "Group",
}


def wnut_documents(limit: int) -> list[tuple[str, list[tuple[int, int, str]]]]:
    """WNUT-17 train sentences with entities, as text + character spans (tokens joined by spaces)."""
    docs: list[tuple[str, list[tuple[int, int, str]]]] = []
    tokens: list[tuple[str, str]] = []
    for line in [*(SHARED_DATASETS / "wnut17" / "train.conll").read_text(encoding="utf-8").splitlines(), ""]:
        if line:
            token, tag = line.split(" ")
            tokens.append((token, tag))
            continue
        text, offset = "", 0
        spans: list[list[Any]] = []
        for token, tag in tokens:
            start = offset + (1 if text else 0)
            text = f"{text} {token}" if text else token
            offset = len(text)
            if tag.startswith("B-"):
                spans.append([start, offset, WNUT_TO_CONFIG[tag[2:]]])
            elif tag.startswith("I-") and spans:
                spans[-1][1] = offset
        tokens = []
        if spans and len(text) < 200:
            docs.append((text, [(int(s), int(e), str(label)) for s, e, label in spans]))
        if len(docs) == limit:
            break
    return docs


def span_result(text: str, spans: list[tuple[int, int, str]]) -> list[dict[str, Any]]:
    return [
        {
            "from_name": "labels",
            "to_name": "text",
            "type": "labels",
            "value": {"start": s, "end": e, "text": text[s:e], "labels": [label]},
        }
        for s, e, label in spans
    ]


def test_ner_round_trip(ls_client: LabelStudioClient, backend: MLBackendProcess) -> None:
    config = (REPO_ROOT / "label_configs" / "ner.xml").read_text()
    project = new_project(ls_client, "ml backend ner", label_config=config)
    docs = wnut_documents(30)
    ids = ls_client.import_tasks(project.id, [{"data": {"text": text}} for text, _ in docs])
    # Unlabeled copies of labeled sentences: a model trained on 30 sentences should find those entities.
    copies = ls_client.import_tasks(project.id, [{"data": {"text": text}} for text, _ in docs[:4]])
    backend_id = connect(ls_client, project, backend)
    hook = ls_client.list_webhooks(project.id)[0]
    ls_client.update_webhook(hook.id, is_active=False)  # training comes from the "Start training" button

    for task_id, (text, spans) in zip(ids, docs, strict=True):
        ls_client.create_annotation(task_id, span_result(text, spans))
    ls_client.train(backend_id)  # LS sends START_TRAINING to /webhook with the backend's basic auth
    version = wait_trained(ls_client, backend, project.id, annotated=len(ids))
    [info] = backend_versions(backend, project.id)["details"]
    assert info["controls"]["labels"]["kind"] == "spans"
    assert info["controls"]["labels"]["training_size"] == 30
    assert info["controls"]["labels"]["word_clusters"] == {"words": len(ner_vocabulary()), "sizes": [2, 3, 5]}

    ls_client.retrieve_predictions(project.id, copies)
    interface = LabelInterface(config)
    found = 0
    for task, (text, gold) in zip(
        ls_client.list_tasks(project.id, task_ids=copies, predictions=True), docs[:4], strict=True
    ):
        [prediction] = current_predictions(task, version)
        assert prediction.score is not None and 0 < prediction.score <= 1
        assert interface.validate_prediction({"result": prediction.result, "score": prediction.score})  # type: ignore[no-untyped-call]
        for region in prediction.result:
            value = region["value"]
            assert value["text"] == text[value["start"] : value["end"]]
            assert value["labels"][0] in WNUT_TO_CONFIG.values() and 0 < region["score"] <= 1
            found += (value["start"], value["end"], value["labels"][0]) in gold
    assert found >= 2


def predict_body(project_id: int, texts: list[str]) -> dict[str, Any]:
    return {
        "project": f"{project_id}.1700000000",
        "label_config": CHOICES_CONFIG,
        "tasks": [{"id": k, "data": {"text": t}} for k, t in enumerate(texts)],
    }


def test_concurrent_predictions_during_retrain(
    ls_client: LabelStudioClient, backend: MLBackendProcess, sms: dict[str, list[str]]
) -> None:
    project = new_project(ls_client, "ml backend concurrency")
    texts = [(t, "ham") for t in sms["ham"][:15]] + [(t, "spam") for t in sms["spam"][:15]]
    ids = ls_client.import_tasks(project.id, [{"data": {"text": t}} for t, _ in texts])
    for task_id, (_, label) in zip(ids, texts, strict=True):
        ls_client.create_annotation(task_id, choice(label))  # no backend connected yet: no webhooks
    webhook = f"{backend.url}/webhook"
    start = {"action": "START_TRAINING", "project": {"id": project.id}}
    assert (
        httpx.post(webhook, json=start, headers={"X-Webhook-Secret": SECRET}).json()["status"] == "accepted"
    )
    first = wait_for("the first version", lambda: backend_versions(backend, project.id)["latest"])

    body = predict_body(project.id, sms["ham"][30:60] + sms["spam"][30:60])
    started = time.monotonic()
    assert httpx.post(webhook, json=start, headers={"X-Webhook-Secret": SECRET}).status_code == 200
    assert time.monotonic() - started < 1.0  # LS gives a webhook one second

    def call(_: int) -> tuple[int, set[str]]:
        response = httpx.post(f"{backend.url}/predict", json=body, auth=AUTH, timeout=30)
        versions = {p["model_version"] for per_task in response.json()["results"] for p in per_task}
        return response.status_code, versions

    seen: set[str] = set()
    with ThreadPoolExecutor(max_workers=50) as pool:
        while time.monotonic() - started < 60:
            outcomes = list(pool.map(call, range(50)))
            assert all(status == 200 for status, _ in outcomes)
            assert all(len(versions) == 1 for _, versions in outcomes)  # one consistent version per answer
            seen.update(v for _, versions in outcomes for v in versions)
            if len(seen) > 1:
                break
    second = backend_versions(backend, project.id)["latest"]
    assert second > first and seen == {first, second}


def test_auth_and_errors_over_http(backend: MLBackendProcess) -> None:
    url = backend.url
    assert httpx.get(f"{url}/health").status_code == 200
    denied = httpx.post(f"{url}/predict", json={})
    assert denied.status_code == 401 and denied.json()["error"] == "unauthorized"
    assert httpx.post(f"{url}/predict", json={}, auth=(USER, "wrong")).status_code == 401
    hook = {"action": "PROJECT_UPDATED", "project": {"id": 1}}
    assert httpx.post(f"{url}/webhook", json=hook).status_code == 401
    assert httpx.post(f"{url}/webhook", json=hook, headers={"X-Webhook-Secret": "nope"}).status_code == 401
    ignored = httpx.post(f"{url}/webhook", json=hook, headers={"X-Webhook-Secret": SECRET})
    assert ignored.json() == {"status": "ignored", "action": "PROJECT_UPDATED"}

    bad_json = httpx.post(f"{url}/predict", content=b"{not json", auth=AUTH)
    assert bad_json.status_code == 400 and bad_json.json()["error"] == "invalid_json"
    missing = httpx.post(f"{url}/predict", json={"project": "3.1", "tasks": []}, auth=AUTH)
    assert missing.status_code == 422 and missing.json()["field"] == "label_config"
    wrong = httpx.post(f"{url}/score", json={"project": 3, "tasks": [{"id": 1, "data": []}]}, auth=AUTH)
    assert wrong.status_code == 422 and wrong.json()["field"] == "tasks[0].data"
    untrained = httpx.post(f"{url}/score", json={"project": 987654, "tasks": []}, auth=AUTH)
    assert untrained.status_code == 409 and untrained.json()["error"] == "not_trained"
    for response in (bad_json, missing, wrong, untrained):
        assert "Traceback" not in response.text
    metrics = httpx.get(f"{url}/metrics", auth=AUTH).text
    assert 'ml_backend_requests_total{worker="' in metrics
    assert set(httpx.get(f"{url}/openapi.json", auth=AUTH).json()["paths"]) >= {
        "/setup",
        "/predict",
        "/webhook",
        "/score",
        "/versions",
        "/metrics",
    }
