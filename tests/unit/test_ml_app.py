"""The Flask app in process: auth, the LS protocol shapes, and one JSON error format for every failure."""

from __future__ import annotations

import base64
import io
import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from ml_backend.app import create_app
from ml_backend.metrics import Metrics
from ml_backend.scheduler import Credentials
from ml_backend.service import BackendService
from ml_backend.settings import BackendSettings
from ml_backend.store import ModelStore
from tests.unit.test_ml_store import OOF, publish

CONFIG = """<View><Text name="text" value="$text"/>
  <Choices name="label" toName="text"><Choice value="ham"/><Choice value="spam"/></Choices></View>"""
BASIC = {"Authorization": "Basic " + base64.b64encode(b"u:p").decode()}


class RecordingScheduler:
    def __init__(self) -> None:
        self.calls: list[tuple[int, bool, Credentials | None]] = []

    def notify(
        self, project_id: int, *, events: int = 1, force: bool = False, credentials: Credentials | None = None
    ) -> None:
        self.calls.append((project_id, force, credentials))

    def status(self) -> dict[str, Any]:
        return {"mode": "test"}


def make_client(tmp_path: Path, **overrides: Any) -> tuple[FlaskClient, RecordingScheduler]:
    settings = BackendSettings(model_dir=tmp_path, **overrides)
    scheduler = RecordingScheduler()
    service = BackendService(settings, ModelStore(tmp_path), scheduler, Metrics())
    return create_app(settings, service).test_client(), scheduler


@pytest.fixture
def client(tmp_path: Path) -> FlaskClient:
    return make_client(tmp_path)[0]


def predict(client: FlaskClient, tasks: list[Any], **headers: str) -> Any:
    return client.post(
        "/predict", json={"project": "1.17", "label_config": CONFIG, "tasks": tasks}, headers=headers
    )


def test_untrained_backend_answers_one_empty_list_per_task(client: FlaskClient) -> None:
    setup = client.post("/setup", json={"project": "1.17", "schema": CONFIG, "access_token": "secret"})
    assert setup.json["model_version"] == "untrained"  # type: ignore[index]
    assert setup.json["controls"][0]["trained"] is False  # type: ignore[index]
    response = predict(client, [{"id": 1, "data": {"text": "hi"}}, {"id": 2, "data": {"text": "yo"}}])
    assert response.status_code == 200 and response.json["results"] == [[], []]
    score = client.post("/score", json={"project": 1, "tasks": [{"id": 1, "data": {"text": "hi"}}]})
    assert score.status_code == 409 and score.json == {
        "error": "not_trained",
        "detail": "project 1 has no trained model yet",
    }


def test_trained_backend_predicts_by_position_with_versions(client: FlaskClient, tmp_path: Path) -> None:
    version = publish(ModelStore(tmp_path))
    response = predict(client, [{"id": 9, "data": {"text": "win cash"}}, {"data": {"other": 1}}])
    first, missing_text = response.json["results"]
    assert missing_text == []
    [prediction] = first
    assert prediction["model_version"] == version and prediction["score"] > 0.5
    assert prediction["result"][0]["value"]["choices"] == ["spam"]
    assert set(prediction) == {"result", "score", "model_version"}  # what LS stores; /score has the triple
    # A config whose control the model does not serve any more gets no predictions, not wrong ones.
    changed = CONFIG.replace('name="label"', 'name="topic"')
    other = client.post(
        "/predict", json={"project": 1, "label_config": changed, "tasks": [{"data": {"text": "a"}}]}
    )
    assert other.json["results"] == [[]]  # type: ignore[index]
    assert client.get("/versions?project=1").json["latest"] == version  # type: ignore[index]
    # the sync reads the version's out-of-fold probabilities without training again
    assert client.get("/oof?project=1").json == {"project": 1, "model_version": version, "controls": OOF}
    assert client.get("/oof?project=2").json == {"project": 2, "model_version": None, "controls": {}}
    # the ETag is the version: a client holding it gets a bodiless 304 until a new version is published
    assert client.get("/oof?project=1").headers["ETag"] == f'"{version}"'
    unchanged = client.get("/oof?project=1", headers={"If-None-Match": f'"{version}"'})
    assert (unchanged.status_code, unchanged.data, unchanged.headers["ETag"]) == (304, b"", f'"{version}"')
    older = client.get("/oof?project=1", headers={"If-None-Match": '"20200101-000000-000000"'})
    assert older.status_code == 200 and older.json["controls"] == OOF  # type: ignore[index]
    assert client.get("/oof?project=2", headers={"If-None-Match": '"untrained"'}).status_code == 304
    assert client.get("/oof").json["field"] == "project"  # type: ignore[index]


@pytest.mark.parametrize(
    ("path", "body", "status", "error", "field"),
    [
        ("/predict", b"", 400, "invalid_json", None),
        ("/predict", b"[1, 2]", 400, "invalid_json", None),
        # not JSON, though Python's parser takes them; LS refuses them too, so no task holds one
        (
            "/predict",
            b'{"project": 1, "label_config": "<View/>", "tasks": [{"data": {"n": NaN}}]}',
            400,
            "invalid_json",
            None,
        ),
        ("/score", b'{"project": 1, "tasks": [{"id": -Infinity, "data": {}}]}', 400, "invalid_json", None),
        ("/predict", b'{"project": "1.2", "label_config": "<View/>"}', 422, "invalid_request", "tasks"),
        ("/predict", b'{"project": "x", "label_config": "", "tasks": []}', 422, "invalid_request", "project"),
        (
            "/predict",
            b'{"project": 1, "label_config": "<View", "tasks": []}',
            422,
            "invalid_label_config",
            "label_config",
        ),
        (
            "/predict",
            b'{"project": 1, "label_config": "<View/>", "tasks": [{"data": 3}]}',
            422,
            "invalid_request",
            "tasks[0].data",
        ),
        ("/setup", b'{"project": 1}', 422, "invalid_request", "schema"),
        ("/score", b'{"project": 1, "control": 5, "tasks": []}', 422, "invalid_request", "control"),
        (
            "/score",
            b'{"project": 1, "tasks": [{"id": [1], "data": {}}]}',
            422,
            "invalid_request",
            "tasks[0].id",
        ),
        ("/webhook", b'{"action": "START_TRAINING"}', 422, "invalid_request", "project.id"),
        ("/webhook", b'{"project": {"id": 1}}', 422, "invalid_request", "action"),
    ],
)
def test_bad_requests_get_4xx_json_with_the_field(
    client: FlaskClient, path: str, body: bytes, status: int, error: str, field: str | None
) -> None:
    response = client.post(path, data=body, content_type="application/json")
    assert response.status_code == status
    payload = response.json
    assert payload is not None and payload["error"] == error and payload.get("field") == field
    assert "Traceback" not in response.get_data(as_text=True)
    if b"NaN" in body or b"Infinity" in body:
        assert "is not a JSON number" in payload["detail"]


@pytest.mark.parametrize("project", ["²", "1²", "١٢", "9" * 19, 10**18, -1, True, 1.5, "", ".5"])
def test_project_ids_that_are_not_ascii_digits_get_422_not_500(client: FlaskClient, project: Any) -> None:
    response = client.post("/setup", json={"project": project, "schema": CONFIG})
    assert response.status_code == 422 and response.json["field"] == "project"  # type: ignore[index]


def test_project_ids_take_digits_and_label_studios_uid(client: FlaskClient) -> None:
    for project in (7, 7.0, "7", "7.1764300000", "7.", 10**18 - 1):
        response = client.post("/setup", json={"project": project, "schema": CONFIG})
        assert response.status_code == 200 and response.json["model_version"] == "untrained"  # type: ignore[index]
    assert client.get("/versions?project=7").json["project"] == 7  # type: ignore[index]
    assert client.get("/versions?project=%C2%B2").json["field"] == "project"  # type: ignore[index]


class CountingStream(io.RawIOBase):
    """An endless request body that counts what the server reads of it."""

    def __init__(self) -> None:
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self.read_bytes += len(buffer)
        buffer[:] = b"x" * len(buffer)
        return len(buffer)


def test_an_oversize_body_gets_413_before_it_is_read(tmp_path: Path) -> None:
    client, _ = make_client(tmp_path, max_body_bytes=2048)
    declared = CountingStream()
    response = client.post(
        "/predict",
        environ_overrides={"wsgi.input": declared, "CONTENT_LENGTH": str(10**9)},
        content_type="application/json",
    )
    assert response.status_code == 413 and response.json["error"] == "payload_too_large"  # type: ignore[index]
    assert declared.read_bytes == 0
    chunked = CountingStream()  # no Content-Length: read only up to the limit, then refused
    response = client.post(
        "/predict",
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input": chunked, "wsgi.input_terminated": True},
        content_type="application/json",
    )
    assert response.status_code == 413 and 2048 <= chunked.read_bytes <= 2048 + 65536


def test_answers_orjson_cannot_write_are_written_by_the_standard_library(
    client: FlaskClient, tmp_path: Path
) -> None:
    publish(ModelStore(tmp_path))
    ids = [2**70 + 1, -(2**64) - 1, 1.5, "\ud800", "ü"]  # past 64 bits, a lone surrogate
    tasks = [{"id": i, "data": {"text": "win cash"}} for i in ids]
    body = json.dumps({"project": 1, "tasks": tasks})
    score = client.post("/score", data=body, content_type="application/json")
    assert score.status_code == 200
    assert [item["id"] for item in json.loads(score.data)["items"]] == ids


def test_limits_on_tasks_label_configs_and_nesting(tmp_path: Path) -> None:
    client, _ = make_client(tmp_path, max_tasks=3, max_label_config_length=1024, max_json_depth=8)
    tasks = [{"id": k, "data": {"text": "a"}} for k in range(4)]
    for path in ("/predict", "/score"):
        many = client.post(path, json={"project": 1, "label_config": CONFIG, "tasks": tasks})
        assert many.status_code == 413 and many.json["field"] == "tasks"  # type: ignore[index]
    assert predict(client, tasks[:3]).json["results"] == [[], [], []]
    long_config = CONFIG.replace("<View>", "<View>" + " " * 1024)
    for path, key in (("/setup", "schema"), ("/predict", "label_config")):
        long = client.post(path, json={"project": 1, key: long_config, "tasks": []})
        assert long.status_code == 413 and long.json["field"] == key  # type: ignore[index]
    # depth 8 is allowed (body, tasks, task, data, and four levels of task data), 9 is not
    nested: Any = "deep"
    for _ in range(4):
        nested = [nested]
    assert predict(client, [{"id": 1, "data": {"text": "a", "n": nested}}]).json["results"] == [[]]
    deeper = predict(client, [{"id": 1, "data": {"text": "a", "n": [nested]}}])
    assert deeper.status_code == 400 and "MAX_JSON_DEPTH" in deeper.json["detail"]
    brackets = client.post("/predict", data=b"[" * 100_000 + b"]" * 100_000, content_type="application/json")
    assert brackets.status_code == 400 and brackets.json["error"] == "invalid_json"  # type: ignore[index]
    unclosed = client.post("/setup", data=b'{"a":' + b"[" * 100_000, content_type="application/json")
    assert unclosed.status_code == 400 and "MAX_JSON_DEPTH" in unclosed.json["detail"]  # type: ignore[index]


@pytest.mark.parametrize(
    "config",
    [
        '<?xml version="1.0"?><!DOCTYPE v [<!ENTITY l0 "lol">'
        + "".join(f'<!ENTITY l{k} "{f"&l{k - 1};" * 10}">' for k in range(1, 10))
        + ']><View><Text name="t" value="&l9;"/></View>',
        """<?xml version="1.0"?><!DOCTYPE v [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<View><Text name="t" value="$text"/><Header value="&x;"/></View>""",
    ],
    ids=["billion-laughs", "external-entity"],
)
def test_entity_label_configs_stay_refused(client: FlaskClient, config: str) -> None:
    response = client.post("/setup", json={"project": 1, "schema": config})
    assert response.status_code == 422 and response.json["error"] == "invalid_label_config"  # type: ignore[index]
    assert "root:" not in response.get_data(as_text=True)


def test_basic_auth_everywhere_but_health_and_webhook_takes_the_secret(tmp_path: Path) -> None:
    client, scheduler = make_client(tmp_path, basic_auth_user="u", basic_auth_pass="p", webhook_secret="s")
    assert client.get("/health").status_code == 200
    for path in ("/", "/versions", "/metrics", "/openapi.json"):
        denied = client.get(path)
        assert denied.status_code == 401 and denied.headers["WWW-Authenticate"].startswith("Basic")
        assert client.get(path, headers=BASIC).status_code == 200
    wrong = {"Authorization": "Basic " + base64.b64encode(b"u:x").decode()}
    assert predict(client, [], **wrong).status_code == 401
    event = {"action": "ANNOTATION_CREATED", "project": {"id": 4}, "annotation": {"id": 1}}
    assert client.post("/webhook", json=event).status_code == 401
    assert client.post("/webhook", json=event, headers={"X-Webhook-Secret": "no"}).status_code == 401
    assert client.post("/webhook", json=event, headers={"X-Webhook-Secret": "s"}).json["status"] == "accepted"  # type: ignore[index]
    train = {"action": "START_TRAINING", "project": {"id": 4, "title": "x"}}
    assert client.post("/webhook", json=train, headers=BASIC).status_code == 200
    assert [(p, force) for p, force, _ in scheduler.calls] == [(4, False), (4, True)]


def test_setup_credentials_reach_the_scheduler_and_other_events_are_ignored(tmp_path: Path) -> None:
    client, scheduler = make_client(tmp_path)
    client.post(
        "/setup",
        json={"project": "5.1", "schema": CONFIG, "hostname": "http://ls:8080/", "access_token": "tok-123"},
    )
    client.post(
        "/webhook", json={"action": "ANNOTATIONS_DELETED", "project": {"id": 5}, "annotations": [{"id": 1}]}
    )
    ignored = client.post("/webhook", json={"action": "TASKS_CREATED", "project": {"id": 5}})
    assert ignored.json == {"status": "ignored", "action": "TASKS_CREATED"}
    [(project, force, credentials)] = scheduler.calls
    assert (project, force) == (5, False) and credentials == Credentials("http://ls:8080", "tok-123")
    assert "tok-123" not in repr(credentials)


def test_metrics_and_openapi(client: FlaskClient) -> None:
    client.get("/health")
    client.post("/predict", data=b"{")
    text = client.get("/metrics").get_data(as_text=True)
    assert "# TYPE ml_backend_requests_total counter" in text
    assert 'route="/predict",status="400"' in text and "ml_backend_request_seconds_bucket" in text
    document = client.get("/openapi.json").json
    assert document is not None and document["openapi"].startswith("3.1")
    assert "409" in document["paths"]["/score"]["post"]["responses"]


def test_openapi_states_the_auth_and_limits_of_this_process(tmp_path: Path) -> None:
    secured, _ = make_client(
        tmp_path, basic_auth_user="u", basic_auth_pass="p", webhook_secret="s", max_tasks=7
    )
    paths = secured.get("/openapi.json", headers=BASIC).json["paths"]  # type: ignore[index]
    assert paths["/health"]["get"]["security"] == [] and "401" not in paths["/health"]["get"]["responses"]
    assert (
        paths["/metrics"]["get"]["security"] == [{"basic": []}]
        and "401" in paths["/metrics"]["get"]["responses"]
    )
    assert paths["/webhook"]["post"]["security"] == [{"basic": []}, {"webhookSecret": []}]
    body = paths["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["tasks"]["maxItems"] == 7 and set(paths["/predict"]["post"]["responses"]) == {
        "200",
        "400",
        "401",
        "413",
        "422",
        "503",  # Label Studio did not exchange the personal access token that task media needed
    }
    open_paths = make_client(tmp_path)[0].get("/openapi.json").json["paths"]  # type: ignore[index]
    assert all(
        op["security"] == [] and "401" not in op["responses"]
        for p in open_paths.values()
        for op in p.values()
    )
    not_allowed = secured.delete("/health")
    assert not_allowed.status_code == 405 and set(not_allowed.headers["Allow"].split(", ")) == {
        "GET",
        "HEAD",
        "OPTIONS",
    }


def test_interactive_context_is_accepted(client: FlaskClient, tmp_path: Path) -> None:
    publish(ModelStore(tmp_path))
    body = {
        "project": "1.17",
        "label_config": CONFIG,
        "tasks": [
            {"id": 1, "data": {"text": "win cash"}, "drafts": [], "predictions": [], "annotations": []}
        ],
        "params": {"login": None, "password": None, "context": {"result": [{"type": "keypoint"}]}},
    }
    [[prediction]] = client.post("/predict", json=body).json["results"]  # type: ignore[index]
    assert prediction["result"][0]["value"]["choices"] == ["spam"]


FAULTS_PER_ALLOCATION = """
import resource, sys
import numpy as np
from ml_backend.wiring import keep_freed_memory
if sys.argv[1] == "keep":
    keep_freed_memory()
def request():  # arrays of 8, 2, 3 and 4 MiB, as a 1,000-task /predict makes and frees them
    return [np.ones(n) for n in (1 << 20, 1 << 18, 3 << 17, 1 << 19)]
request()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    request()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 10)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_the_serving_process_keeps_freed_memory_instead_of_faulting_it_back_in() -> None:
    def faults(mode: str) -> int:
        run = subprocess.run(
            [sys.executable, "-c", FAULTS_PER_ALLOCATION, mode], capture_output=True, text=True
        )
        return int(run.stdout)

    assert faults("default") > 1000  # of the 4,352 pages each time (glibc 2.36: ~2,300)
    assert faults("keep") < 20
