"""Model plugins through the real Label Studio 1.23.2: OCR pre-labels, image classification learned from
annotations, task media failures, and a third-party plugin found by entry point."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from label_studio_sdk.label_interface.interface import LabelInterface

from ls_companion import META_NAMESPACE
from ls_companion.client import LabelStudioClient
from ls_companion.errors import InputError
from ls_companion.localserver import LabelStudioProcess, free_port
from ls_companion.records import Project
from ls_companion.selection.importer import SelectRequest, run_select
from ls_companion.selection.scoring import HttpScorer
from ml_backend.errors import MediaError
from ml_backend.media import ACCESS_TOKEN_LEEWAY, MediaFetcher
from ml_backend.settings import BackendSettings
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
DIGIT_NAMES = {0: "zero", 1: "one", 7: "seven"}
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


@dataclass
class Digits:
    """An Image + Choices project of 30 uploaded digit scans, 18 annotated, trained once (``version``)."""

    project: Project
    ids: list[int]
    label_of: dict[int, str]
    version: str


@pytest.fixture(scope="module")
def digits(
    ls_client: LabelStudioClient, label_studio: LabelStudioProcess, backend: MLBackendProcess
) -> Digits:
    project = new_project(ls_client, "image classes", label_config=DIGITS_CONFIG)
    digits = [(digit, k) for k in range(10) for digit in DIGIT_NAMES]  # 30 scans, 10 of each class
    files = {f"d{digit}_{k}.png": digit_png(digit, k) for digit, k in digits}
    ids = upload(ls_client, label_studio, project.id, files)
    label_of = {i: DIGIT_NAMES[d] for i, (d, _) in zip(ids, digits, strict=True)}
    backend_id = connect(ls_client, project, backend)
    hook = ls_client.list_webhooks(project.id)[0]
    ls_client.update_webhook(hook.id, is_active=False)  # training comes from the "Start training" button
    for task_id in ids[:18]:
        ls_client.create_annotation(task_id, image_choice(label_of[task_id]))
    ls_client.train(backend_id)
    return Digits(project, ids, label_of, wait_trained(ls_client, backend, project.id, annotated=18))


def test_image_classification_learned_from_annotations(
    ls_client: LabelStudioClient, backend: MLBackendProcess, digits: Digits
) -> None:
    project, ids, label_of, version = digits.project, digits.ids, digits.label_of, digits.version
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


class _QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """``folder`` over plain http (an image host that is not Label Studio); its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietFiles, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_select_ranks_an_image_pool_with_the_backend_and_cold_starts_without_clustering(
    ls_client: LabelStudioClient, backend: MLBackendProcess, digits: Digits, tmp_path: Path
) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    for digit in DIGIT_NAMES:
        for k in range(10, 14):
            (folder / f"p{digit}_{k}.png").write_bytes(digit_png(digit, k))
    pool = tmp_path / "pool.csv"
    with serve_folder(folder) as base:
        urls = sorted(f"{base}/{p.name}" for p in folder.iterdir())
        (folder / "broken.png").write_bytes(b"not an image")
        dead = [f"{base}/broken.png", f"{base}/missing.png"]  # one undecodable, one 404
        pool.write_text("image\n" + "\n".join([dead[0], *urls, dead[1]]) + "\n", encoding="utf-8")
        scorer = HttpScorer(backend.url, digits.project.id, auth=AUTH)
        try:
            request = SelectRequest(
                digits.project.id, pool, batch=5, random_fraction=0.0, with_predictions=True
            )
            report = run_select(ls_client, scorer, request, data_dir=tmp_path / "data")
            scores = scorer.score([{"id": u, "data": {"image": u}} for u in [dead[0], *urls, dead[1]]])
        finally:
            scorer.close()
    assert (report.strategy, report.model_version, report.imported) == ("entropy", digits.version, 5)
    # The images the backend could not fetch or decode are left out of the scan, not fatal to it.
    assert (report.pool_rows, report.pool_eligible, report.pool_unscorable) == (len(urls) + 2, len(urls), 2)
    assert scores is not None and scores.proba is not None
    assert scores.skipped == (0, len(urls) + 1) and len(scores) == len(urls)
    entropy = dict(zip(urls, scores.measures["entropy"].tolist(), strict=True))
    ours = [
        t
        for t in ls_client.list_tasks(digits.project.id, data=True, predictions=True)
        if META_NAMESPACE in t.meta
    ]
    chosen = {str(t.data["image"]): t for t in ours}
    # The batch is the pool's five most uncertain images by the backend's own entropy (the scans are
    # easy: most tie at 0, and ties are broken at random), each with the top class as its pre-label.
    assert len(chosen) == 5
    assert min(entropy[u] for u in chosen) >= max(entropy[u] for u in urls if u not in chosen)
    for url, task in chosen.items():
        assert task.meta[META_NAMESPACE]["uncertainty"] == pytest.approx(entropy[url], abs=1e-5)
        proba = scores.proba[urls.index(url)]
        [pre] = task.predictions
        assert pre.result == image_choice(scores.classes[int(proba.argmax())])

    # No model yet: the default cold start (diversity) would cluster URL strings, so images get a
    # seeded uniform pick instead; local paths and clustering strategies are refused up front.
    untrained = new_project(ls_client, "image cold start", label_config=DIGITS_CONFIG)
    cold = HttpScorer(backend.url, untrained.id, auth=AUTH)
    try:

        def pick(seed: int) -> list[str]:
            request = SelectRequest(untrained.id, pool, batch=4, seed=seed, dry_run=True)
            report = run_select(ls_client, cold, request, data_dir=tmp_path / "data")
            assert (report.strategy, report.model_version) == ("random", None)
            assert all(item["cluster"] is None for item in report.items)
            return [item["source_id"] for item in report.items]

        assert pick(3) == pick(3) != pick(4)
        local = tmp_path / "local.csv"
        local.write_text(f"image\n{urls[0]}\n{folder}/p0_10.png\n", encoding="utf-8")
        with pytest.raises(InputError, match=r"row 2: .* is a local path.*/data/local-files/\?d="):
            run_select(ls_client, cold, SelectRequest(untrained.id, local), data_dir=tmp_path / "data")
        with pytest.raises(InputError, match="holds images: use random or an uncertainty strategy"):
            run_select(
                ls_client, cold, SelectRequest(untrained.id, pool, strategy="diversity"), data_dir=tmp_path
            )
    finally:
        cold.close()


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


def test_a_personal_access_token_serves_the_client_and_the_media_fetch(
    ls_client: LabelStudioClient, label_studio: LabelStudioProcess, tmp_path: Path
) -> None:
    """Label Studio 1.23 hands out personal access tokens (JWT refresh tokens), the only kind where
    legacy tokens are off. As such one opens nothing, not even a file: the SDK exchanges it for the
    companion's API calls, the backend's media fetch exchanges it itself and renews the access token."""
    legacy = {"Authorization": f"Token {label_studio.token}"}
    created = httpx.post(f"{label_studio.url}/api/token/", headers=legacy, timeout=30)
    assert created.status_code == 201, created.text
    pat = created.json()["token"]
    project = new_project(ls_client, "personal token", label_config=DIGITS_CONFIG)
    images = {"seven.png": digit_png(7, 0), "one.png": digit_png(1, 0)}
    ids = upload(ls_client, label_studio, project.id, images)
    paths = [str(ls_client.get_task(i).data["image"]) for i in ids]
    as_is = httpx.get(label_studio.url + paths[0], headers={"Authorization": f"Token {pat}"}, timeout=30)
    assert as_is.status_code == 401

    client = LabelStudioClient(label_studio.url, pat)
    try:
        client.update_task_meta(ids[0], {"probe": 1})
        assert ls_client.get_task(ids[0]).meta[META_NAMESPACE] == {"probe": 1}
        # An access token the SDK still holds valid but Label Studio refuses (it ran out during a
        # request, or our clock is behind): one 401, a new exchange, the call goes through.
        tokens = client.sdk._client_wrapper._tokens_client
        held = tokens._access_token
        assert held is not None
        tokens._access_token = held[: held.rindex(".") + 1] + "Zm9yZ2Vk"  # same claims, wrong signature
        client.update_task_meta(ids[1], {"probe": 2})
        assert ls_client.get_task(ids[1]).meta[META_NAMESPACE] == {"probe": 2}
        assert tokens._access_token is not None and not tokens._access_token.endswith("Zm9yZ2Vk")
    finally:
        client.close()

    fetcher = MediaFetcher(BackendSettings(model_dir=tmp_path), label_studio.url, pat)
    try:
        assert fetcher.auth is not None and fetcher.auth.personal
        assert fetcher.fetch(paths[0], ids[0]) == images["seven.png"]
        first = fetcher.auth.header()
        assert first["Authorization"].startswith("Bearer ") and pat not in first["Authorization"]
        fetcher.auth._expires = time.monotonic() + ACCESS_TOKEN_LEEWAY  # about to expire: renewed first
        assert fetcher.fetch(paths[1], ids[1]) == images["one.png"]
        assert fetcher.auth._expires > time.monotonic() + 250  # Label Studio's 300 s
    finally:
        fetcher.close()
    # A token Label Studio does not know is refused with one line, not a traceback.
    wrong = MediaFetcher(BackendSettings(model_dir=tmp_path / "wrong"), label_studio.url, pat[:-4] + "AAAA")
    try:
        with pytest.raises(MediaError, match=r"refused the personal access token \(HTTP 401\)"):
            wrong.fetch(paths[0], ids[0])
    finally:
        wrong.close()
