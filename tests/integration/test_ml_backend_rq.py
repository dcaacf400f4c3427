"""Training as rq jobs: the web process only counts events in Redis; ``ml-backend worker`` trains."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from ls_companion.client import LabelStudioClient
from ls_companion.localserver import LabelStudioProcess
from tests.harness.ml_backend import MLBackendProcess, start_ml_backend, start_ml_worker, stop_process
from tests.harness.redis_server import RedisProcess
from tests.integration.helpers import choice, new_project

pytestmark = pytest.mark.integration

TEXTS = [
    ("Congratulations you WON a free cruise, call now to claim", "spam"),
    ("URGENT! Your mobile number has been awarded a 2000 prize", "spam"),
    ("FREE entry to win cash, text WIN to 80086", "spam"),
    ("Are we still meeting for lunch tomorrow?", "ham"),
    ("I'll call you when I get home", "ham"),
    ("Thanks for the birthday wishes, see you soon", "ham"),
]


@pytest.fixture(scope="module")
def rq_backend(
    label_studio: LabelStudioProcess, redis_server: RedisProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MLBackendProcess]:
    models = tmp_path_factory.mktemp("ml-backend-rq") / "models"
    settings = {"TRAIN_EVERY_N_ANNOTATIONS": "3", "TRAIN_DEBOUNCE_SECONDS": "30", "QUEUE_NAME": "ml-test"}
    server = start_ml_backend(
        models,
        label_studio_url=label_studio.url,
        api_key=label_studio.token,
        env={"REDIS_URL": redis_server.url, **settings},
        workers=1,
    )
    worker = start_ml_worker(
        models,
        label_studio_url=label_studio.url,
        api_key=label_studio.token,
        redis_url=redis_server.url,
        env=settings,
    )
    yield server
    stop_process(worker)
    server.stop()


def test_annotation_events_train_in_the_rq_worker(
    ls_client: LabelStudioClient, rq_backend: MLBackendProcess, redis_server: RedisProcess
) -> None:
    project = new_project(ls_client, "ml backend rq")
    ids = ls_client.import_tasks(project.id, [{"data": {"text": text}} for text, _ in TEXTS])
    for task_id, (_, label) in zip(ids[:4], TEXTS[:4], strict=True):
        ls_client.create_annotation(task_id, choice(label))
    hook = f"{rq_backend.url}/webhook"
    event = {"action": "ANNOTATION_CREATED", "project": {"id": project.id}, "annotation": {"id": 1}}
    for _ in range(2):  # below TRAIN_EVERY_N_ANNOTATIONS: counted in Redis, a delayed job is scheduled
        assert httpx.post(hook, json=event).json()["status"] == "accepted"
    pending = redis.Redis.from_url(redis_server.url).hget(f"ml-backend:pending:{project.id}", "count")
    assert pending == b"2"
    assert httpx.post(hook, json=event).status_code == 200  # the third event makes it due now

    deadline = time.monotonic() + 90
    latest = None
    while time.monotonic() < deadline and latest is None:
        latest = httpx.get(f"{rq_backend.url}/versions", params={"project": project.id}).json()["latest"]
        time.sleep(0.5)
    assert latest is not None, "the rq worker did not publish a version"
    scored = httpx.post(
        f"{rq_backend.url}/score",
        json={"project": project.id, "tasks": [{"id": "x", "data": {"text": "WIN a FREE prize now"}}]},
    ).json()
    assert scored["model_version"] == latest and scored["classes"] == ["ham", "spam"]
    assert redis.Redis.from_url(redis_server.url).exists(f"ml-backend:pending:{project.id}") == 0
