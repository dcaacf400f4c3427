"""Pre-labels worth trusting, through the real Label Studio 1.23.2: a model selected and calibrated on
300 sms_spam annotations pre-labels the other 300 accurately, a project's minimum score keeps LS
from storing any prediction below it, and with WORD_VECTORS a pooled-vector candidate wins where the
sentiment words of the unlabeled tasks were never seen in training."""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from ls_companion.client import LabelStudioClient
from ls_companion.localserver import LabelStudioProcess
from ml_backend.cli import main as ml_backend_main
from tests.conftest import SHARED_DATASETS
from tests.harness.ml_backend import MLBackendProcess, start_ml_backend
from tests.integration.helpers import CHOICES_CONFIG, choice, new_project

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def backend(
    label_studio: LabelStudioProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MLBackendProcess]:
    # Trains only when asked (START_TRAINING): the annotations come in one import, not as events.
    server = start_ml_backend(
        tmp_path_factory.mktemp("prelabels") / "models",
        label_studio_url=label_studio.url,
        api_key=label_studio.token,
        env={"TRAIN_EVERY_N_ANNOTATIONS": "100000", "TRAIN_DEBOUNCE_SECONDS": "3600"},
    )
    yield server
    server.stop()


def latest(backend: MLBackendProcess, project_id: int, newer_than: str = "") -> dict[str, Any] | None:
    details = httpx.get(f"{backend.url}/versions", params={"project": project_id}, timeout=10).json()[
        "details"
    ]
    return details[0] if details and details[0]["version"] > newer_than else None


def train(
    client: LabelStudioClient, backend: MLBackendProcess, project_id: int, ml_id: int, after: str = ""
) -> Any:
    client.train(ml_id)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        found = latest(backend, project_id, after)
        if found and client.get_project(project_id).model_version == found["version"]:
            return found
        time.sleep(1)
    raise AssertionError(f"no new version of project {project_id} within 300 s")


def test_selected_calibrated_prelabels_and_the_minimum_score(
    ls_client: LabelStudioClient, backend: MLBackendProcess
) -> None:
    with (SHARED_DATASETS / "sms_spam" / "sms_spam.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))[:600]
    project = new_project(ls_client, "prelabels sms")
    annotated = [
        {"data": {"text": r["text"]}, "annotations": [{"result": choice(r["label"])}]} for r in rows[:300]
    ]
    ls_client.import_tasks(project.id, annotated)
    truth = {r["text"]: r["label"] for r in rows[300:]}
    ls_client.import_tasks(project.id, [{"data": {"text": r["text"]}} for r in rows[300:]])
    ml = ls_client.create_ml_backend(project.id, backend.url, title="ls-companion")

    first = train(ls_client, backend, project.id, ml.id)
    model = first["controls"]["label"]["model"]
    assert model["chosen"] != "word-C10" and len(model["candidates"]) >= 3  # chosen, not the old default
    assert model["cv_ece"] <= 0.05
    unlabeled = [t for t in ls_client.list_tasks(project.id, predictions=True) if not t.annotations]
    predicted = {t.id: p for t in unlabeled for p in t.predictions if p.model_version == first["version"]}
    assert len(predicted) == len(unlabeled) == 300
    text = {t.id: t.data["text"] for t in unlabeled}
    right = sum(p.result[0]["value"]["choices"][0] == truth[text[i]] for i, p in predicted.items())
    assert right / 300 >= 0.95

    # A minimum score (what bootstrap's ml_backend.min_score writes): the next version withholds the rest.
    cut = sorted(p.score or 0.0 for p in predicted.values())[
        30
    ]  # about the 30 least certain tasks fall below it
    ls_client.update_ml_backend(ml, extra_params={"min_score": cut})
    second = train(ls_client, backend, project.id, ml.id, first["version"])
    assert second["min_score"] == cut
    tasks = [t for t in ls_client.list_tasks(project.id, predictions=True) if not t.annotations]
    scored = httpx.post(
        f"{backend.url}/score",
        json={"project": project.id, "tasks": [{"id": t.id, "data": t.data} for t in tasks]},
        timeout=60,
    ).json()["items"]
    score = {item["id"]: item["score"] for item in scored}  # /score still scores every task
    kept = {t.id for t in tasks if any(p.model_version == second["version"] for p in t.predictions)}
    below = {t.id for t in tasks if score[t.id] < cut}
    assert below and kept == {t.id for t in tasks} - below
    # Asking LS to predict a withheld task again stores nothing either.
    ls_client.retrieve_predictions(project.id, sorted(below)[:3])
    for task in ls_client.list_tasks(project.id, task_ids=sorted(below)[:3], predictions=True):
        assert not [p for p in task.predictions if p.model_version == second["version"]]


@pytest.fixture(scope="module")
def vector_backend(
    label_studio: LabelStudioProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[MLBackendProcess, list[str], list[str]]]:
    """A backend with WORD_VECTORS: a vectors file made by ``ml-backend word-vectors`` from a small text
    file of made-up words (no data/ file needed), positive ones near one axis, negative near another."""
    rng = np.random.default_rng(0)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    made_up = sorted({"".join(rng.choice(letters, 8)) for _ in range(100)})[:60]
    positive, negative = made_up[:30], made_up[30:]
    folder = tmp_path_factory.mktemp("vectors")
    rows = [(w, 2) for w in _NEUTRAL] + [(w, 0) for w in positive] + [(w, 1) for w in negative]
    (folder / "vectors.txt").write_text(
        "".join(
            f"{w} " + " ".join(f"{x:.4f}" for x in np.eye(8)[axis] + rng.normal(0, 0.1, 8)) + "\n"
            for w, axis in rows
        ),
        encoding="utf-8",
    )
    assert ml_backend_main(["word-vectors", str(folder / "vectors.txt"), str(folder / "vectors.npz")]) == 0
    server = start_ml_backend(
        folder / "models",
        label_studio_url=label_studio.url,
        api_key=label_studio.token,
        env={
            "TRAIN_EVERY_N_ANNOTATIONS": "100000",
            "TRAIN_DEBOUNCE_SECONDS": "3600",
            "WORD_VECTORS": str(folder / "vectors.npz"),
        },
    )
    yield server, positive, negative
    server.stop()


_NEUTRAL = ["the", "kettle", "lamp", "was", "is", "my", "new"]


def test_word_vectors_win_on_sentiment_words_never_seen_in_training(
    ls_client: LabelStudioClient, vector_backend: tuple[MLBackendProcess, list[str], list[str]]
) -> None:
    backend, positive, negative = vector_backend
    config = CHOICES_CONFIG.replace('"ham"', '"Negative"').replace('"spam"', '"Positive"')
    project = new_project(ls_client, "prelabels vectors", config)

    def review(k: int, word: str) -> str:
        return (
            f"{('the', 'my new')[k % 2]} {('kettle', 'lamp')[k // 2 % 2]} {('was', 'is')[k // 4 % 2]} {word}"
        )

    # Each sentiment word is in one review only: n-grams learn nothing that carries over, the vectors do.
    seen = [(review(k, w), label) for label, words in (("Positive", positive), ("Negative", negative))
            for k, w in enumerate(words[:20])]  # fmt: skip
    ls_client.import_tasks(
        project.id, [{"data": {"text": t}, "annotations": [{"result": choice(label)}]} for t, label in seen]
    )
    truth = {review(k, w): label for label, words in (("Positive", positive), ("Negative", negative))
             for k, w in enumerate(words[20:])}  # fmt: skip
    ls_client.import_tasks(project.id, [{"data": {"text": t}} for t in truth])
    ml = ls_client.create_ml_backend(project.id, backend.url, title="ls-companion")

    version = train(ls_client, backend, project.id, ml.id)
    model = version["controls"]["label"]["model"]
    names = [c["name"] for c in model["candidates"]]
    assert {"vectors-balanced-C1", "union+vectors-balanced-C10"} <= set(names)
    assert model["chosen"] in ("vectors-balanced-C1", "union+vectors-balanced-C10")
    unlabeled = [t for t in ls_client.list_tasks(project.id, predictions=True) if not t.annotations]
    predicted = {
        t.data["text"]: p for t in unlabeled for p in t.predictions if p.model_version == version["version"]
    }
    assert len(predicted) == len(unlabeled) == 20
    assert sum(p.result[0]["value"]["choices"][0] == truth[text] for text, p in predicted.items()) >= 18
