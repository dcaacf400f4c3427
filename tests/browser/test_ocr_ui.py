"""An OCR task in the real Label Studio 1.23.2 editor: the backend's predicted line regions and their text.

The project: label_configs/ocr.xml, one rendered document uploaded through LS's import API, the real
backend (OCR plugin, no training) connected, predictions stored through the Data Manager action.
Screenshot: test-artifacts/browser/10-ocr-prediction.png.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (dev extra)")

from playwright.sync_api import Page, expect

from ls_companion.client import LabelStudioClient
from ls_companion.localserver import LabelStudioProcess
from ls_companion.records import Prediction
from tests.browser.conftest import save_screenshot
from tests.harness.images import document_png
from tests.harness.ml_backend import MLBackendProcess, start_ml_backend
from tests.integration.helpers import new_project
from tests.integration.test_ml_images import OCR_CONFIG, upload

pytestmark = pytest.mark.browser

LINES = ["INVOICE 2024-117", "Total due 42.00 EUR"]
TIMEOUT = 30_000  # ms


@pytest.fixture(scope="module")
def ocr_backend(
    label_studio: LabelStudioProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MLBackendProcess]:
    folder = tmp_path_factory.mktemp("ml-backend-ocr-ui")
    server = start_ml_backend(
        folder / "models", label_studio_url=label_studio.url, api_key=label_studio.token, workers=1
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ocr_task(
    ls_client: LabelStudioClient, label_studio: LabelStudioProcess, ocr_backend: MLBackendProcess
) -> tuple[int, int, Prediction]:
    project = new_project(ls_client, "ocr ui", label_config=OCR_CONFIG)
    [task_id] = upload(ls_client, label_studio, project.id, {"invoice.png": document_png(LINES, size=32)})
    ls_client.create_ml_backend(project.id, ocr_backend.url, title="ls-companion ocr")
    ls_client.retrieve_predictions(project.id, [task_id])
    [prediction] = ls_client.get_task(task_id).predictions
    return project.id, task_id, prediction


def test_editor_shows_the_predicted_lines_and_their_text(
    page: Page, label_studio: LabelStudioProcess, ocr_task: tuple[int, int, Prediction], artifacts: Path
) -> None:
    project_id, task_id, prediction = ocr_task
    texts = [r["value"]["text"][0] for r in prediction.result if r["type"] == "textarea"]
    assert len(texts) == len(LINES)
    page.goto(f"{label_studio.url}/projects/{project_id}/data?task={task_id}")
    tab = page.locator(f".lsf-annotation-button[data-annotation-id='{prediction.id}']")
    expect(tab.locator(".lsf-annotation-button__name")).to_have_text("pretrained", timeout=TIMEOUT)
    # The annotation LS opens is pre-filled with the prediction: one region per line, each with its text.
    for text in texts:
        expect(page.get_by_text(text, exact=True).first).to_be_visible(timeout=TIMEOUT)
    save_screenshot(page, artifacts / "10-ocr-prediction.png")
