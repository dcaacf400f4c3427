"""Model plugins through the real Label Studio 1.23.2: OCR pre-labels, image classification learned from
annotations, task media failures, and a third-party plugin found by entry point."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from label_studio_sdk.label_interface.interface import LabelInterface

from ls_companion.client import LabelStudioClient
from ls_companion.localserver import LabelStudioProcess, free_port
from tests.conftest import REPO_ROOT
from tests.harness.images import digit_png, document_png
from tests.harness.ml_backend import MLBackendProcess, start_ml_backend
from tests.integration.helpers import new_project
from tests.integration.test_ml_backend import (
    AUTH,
    PASSWORD,
    SECRET,
    USER,
    backend_versions,
    connect,
    current_predictions,
    wait_trained,
)

pytestmark = pytest.mark.integration

OCR_CONFIG = (REPO_ROOT / "label_configs" / "ocr.xml").read_text()
DIGITS_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <Choices name="label" toName="image" choice="single">
    <Choice value="zero"/><Choice value="one"/><Choice value="seven"/>
  </Choices>
</View>"""
RATING_CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Rating name="stars" toName="text" maxRating="5"/>
</View>"""
DOCUMENTS = [
    ["INVOICE 2024-117", "Total due 42.00 EUR"],
    ["Delivery note", "Parcel 7 of 9", "Signed by Ada"],
]


@pytest.fixture(scope="module")
def backend(
    label_studio: LabelStudioProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MLBackendProcess]:
    """One backend with the test plugin package on PYTHONPATH (the only way it is "installed")."""
    folder = tmp_path_factory.mktemp("ml-backend-images")
    server = start_ml_backend(
        folder / "models",
        label_studio_url=label_studio.url,
        api_key=label_studio.token,
        env={
            "BASIC_AUTH_USER": USER,
            "BASIC_AUTH_PASS": PASSWORD,
            "WEBHOOK_SECRET": SECRET,
            "MEDIA_TIMEOUT": "3",
            "PYTHONPATH": str(REPO_ROOT / "tests" / "plugin_package"),
        },
        workers=1,
    )
    yield server
    server.stop()


def upload(
    ls_client: LabelStudioClient, label_studio: LabelStudioProcess, project_id: int, files: dict[str, bytes]
) -> list[int]:
    """Import files through Label Studio's upload API (one form field per file: one task each); the
    task ids in the order of ``files`` (LS stores each as ``/data/upload/<project>/<prefix>-<name>``)."""
    response = httpx.post(
        f"{label_studio.url}/api/projects/{project_id}/import",
        headers={"Authorization": f"Token {label_studio.token}"},
        files={f"file{k}": (name, data, "image/png") for k, (name, data) in enumerate(files.items())},
        timeout=60,
    )
    assert response.status_code == 201, response.text
    by_name = {
        str(t.data["image"]).rsplit("-", 1)[-1]: t.id for t in ls_client.list_tasks(project_id, data=True)
    }
    return [by_name[name] for name in files]


def normalised(text: str) -> str:
    # PP-OCR's English recogniser often drops the spaces between words: compare without them.
    return "".join(text.split()).lower()


def test_ocr_prelabels_through_label_studio(
    ls_client: LabelStudioClient, label_studio: LabelStudioProcess, backend: MLBackendProcess
) -> None:
    project = new_project(ls_client, "ocr", label_config=OCR_CONFIG)
    files = {f"doc{k}.png": document_png(lines) for k, lines in enumerate(DOCUMENTS)}
    files["broken.png"] = b"\x89PNG\r\n\x1a\n this is not an image"
    ids = upload(ls_client, label_studio, project.id, files)
    tasks = {t.id: t for t in ls_client.list_tasks(project.id, data=True)}
    assert all(str(tasks[i].data["image"]).startswith(f"/data/upload/{project.id}/") for i in ids)
    unreachable = ls_client.import_tasks(
        project.id, [{"data": {"image": f"http://127.0.0.1:{free_port()}/gone.png"}}]
    )
    ml = connect_pretrained(ls_client, project.id, backend)
    assert ml == "pretrained"

    # "Retrieve predictions" for the whole batch: the broken and the unreachable image cost no 5xx.
    ls_client.retrieve_predictions(project.id, [*ids, *unreachable])
    by_id = {t.id: t for t in ls_client.list_tasks(project.id, predictions=True, data=True)}
    interface = LabelInterface(OCR_CONFIG)
    for task_id, lines in zip(ids[: len(DOCUMENTS)], DOCUMENTS, strict=True):
        [prediction] = current_predictions(by_id[task_id], "pretrained")
        assert interface.validate_prediction({"result": prediction.result, "score": prediction.score})  # type: ignore[no-untyped-call]
        boxes = [r for r in prediction.result if r["type"] == "rectanglelabels"]
        texts = {r["id"]: r["value"]["text"][0] for r in prediction.result if r["type"] == "textarea"}
        assert len(boxes) == len(lines) and set(texts) == {b["id"] for b in boxes}
        assert all(b["value"]["rectanglelabels"] == ["Text"] and 0 < b["score"] <= 1 for b in boxes)
        assert all(0 <= b["value"]["y"] < 100 and 0 < b["value"]["width"] <= 100 for b in boxes)
        ordered = [texts[b["id"]] for b in sorted(boxes, key=lambda b: b["value"]["y"])]
        assert [normalised(t) for t in ordered] == [normalised(t) for t in lines]
        assert prediction.score == min(b["score"] for b in boxes)
    failed = [ids[-1], *unreachable]
    assert all(by_id[i].predictions == () for i in failed)
    logged = backend.log_path.read_text(errors="replace")
    assert f"task {ids[-1]}: no prediction for bbox: " in logged and "cannot decode the image" in logged
    assert f"task {unreachable[0]}: no prediction for bbox: " in logged and "ConnectError" in logged


def connect_pretrained(ls_client: LabelStudioClient, project_id: int, backend: MLBackendProcess) -> str:
    ml = ls_client.create_ml_backend(
        project_id,
        backend.url,
        title="ls-companion",
        auth_method="BASIC_AUTH",
        basic_auth_user=USER,
        basic_auth_pass=PASSWORD,
    )
    assert ml.state == "CO"
    return str(ml.model_version)


def image_choice(value: str) -> list[dict[str, Any]]:
    return [{"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [value]}}]


def test_image_classification_learned_from_annotations(
    ls_client: LabelStudioClient, label_studio: LabelStudioProcess, backend: MLBackendProcess
) -> None:
    project = new_project(ls_client, "image classes", label_config=DIGITS_CONFIG)
    names = {0: "zero", 1: "one", 7: "seven"}
    digits = [(digit, k) for k in range(10) for digit in names]  # 30 scans, 10 of each class
    files = {f"d{digit}_{k}.png": digit_png(digit, k) for digit, k in digits}
    ids = upload(ls_client, label_studio, project.id, files)
    label_of = {i: names[d] for i, (d, _) in zip(ids, digits, strict=True)}
    backend_id = connect(ls_client, project, backend)
    hook = ls_client.list_webhooks(project.id)[0]
    ls_client.update_webhook(hook.id, is_active=False)  # training comes from the "Start training" button

    labeled = ids[:18]
    for task_id in labeled:
        ls_client.create_annotation(task_id, image_choice(label_of[task_id]))
    ls_client.train(backend_id)
    version = wait_trained(ls_client, backend, project.id, annotated=len(labeled))
    [info] = backend_versions(backend, project.id)["details"]
    assert info["controls"]["label"]["plugin"] == "image-classifier"
    assert info["controls"]["label"]["training_size"] == 18

    # The new version's predictions were pushed for the unlabeled scans: they name the right digit.
    right = 0
    for task in ls_client.list_tasks(project.id, task_ids=ids[18:], predictions=True):
        [prediction] = current_predictions(task, version)
        [item] = prediction.result
        assert item["score"] == prediction.score and 0 < item["score"] <= 1
        right += item["value"]["choices"] == [label_of[task.id]]
    assert right >= 10  # of 12

    # /score ranks image tasks too (probabilities per class).
    body = {
        "project": project.id,
        "tasks": [{"id": i, "data": {"image": files_url(ls_client, i)}} for i in ids[18:20]],
    }
    scored = httpx.post(f"{backend.url}/score", json=body, auth=AUTH, timeout=60)
    assert scored.status_code == 200, scored.text
    rows = scored.json()["items"]
    assert [r["id"] for r in rows] == ids[18:20]
    assert all(abs(sum(r["probabilities"]) - 1) < 1e-6 for r in rows)


def files_url(ls_client: LabelStudioClient, task_id: int) -> str:
    return str(ls_client.get_task(task_id).data["image"])


def test_third_party_plugin_is_found_by_entry_point(
    ls_client: LabelStudioClient, backend: MLBackendProcess
) -> None:
    setup = httpx.post(
        f"{backend.url}/setup", json={"project": "999999.1", "schema": RATING_CONFIG}, auth=AUTH, timeout=30
    ).json()
    [stars] = setup["controls"]
    assert (stars["plugin"], stars["classes"], stars["trained"]) == (
        "rating-most-frequent",
        ["1", "2", "3", "4", "5"],
        False,
    )
    assert (
        httpx.post(f"{backend.url}/setup", json={"project": "999999.1", "schema": RATING_CONFIG}).status_code
        == 401
    )

    project = new_project(ls_client, "rating plugin", label_config=RATING_CONFIG)
    ids = ls_client.import_tasks(project.id, [{"data": {"text": f"review {k}"}} for k in range(8)])
    ml_id = connect(ls_client, project, backend)
    rating = [{"from_name": "stars", "to_name": "text", "type": "rating", "value": {"rating": 4}}]
    for task_id in ids[:3]:
        ls_client.create_annotation(task_id, rating)
    ls_client.create_annotation(ids[3], [{**rating[0], "value": {"rating": 2}}])
    ls_client.train(ml_id)
    version = wait_trained(ls_client, backend, project.id, annotated=4)
    [info] = backend_versions(backend, project.id)["details"]
    assert info["controls"]["stars"]["plugin"] == "rating-most-frequent"
    assert info["controls"]["stars"]["classes"] == ["2", "4"]
    for task in ls_client.list_tasks(project.id, task_ids=ids[4:], predictions=True):
        [prediction] = current_predictions(task, version)
        assert prediction.result[0]["value"] == {"rating": 4} and prediction.score == 0.75
    assert httpx.get(f"{backend.url}/versions", params={"project": project.id}).status_code == 401
