"""What a team sees in the real Label Studio 1.23.2 UI once the companion and the ML backend did their work:
the backend connected in the project's Model settings, its pre-label with its score in the labeling
editor, and the synced quality fields as Data Manager columns. Screenshots go to test-artifacts/browser/.

The project: 24 SMS messages, 12 labeled by three annotators (two tasks with one dissenter), the real
backend trained once on them (LS's "Start training"), predictions stored for every task through the Data
Manager action, then an inline sync mirroring agreement and consensus into the task data.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (dev extra)")

from playwright.sync_api import Locator, Page, expect

from ls_companion.client import LabelStudioClient
from ls_companion.localserver import LabelStudioProcess
from ls_companion.records import Prediction, Project, Task
from ls_companion.settings import Settings
from ls_companion.sync.engine import sync_inline
from ls_companion.sync.options import SyncOptions
from tests.browser.conftest import save_screenshot
from tests.conftest import SHARED_DATASETS
from tests.harness.ml_backend import MLBackendProcess, start_ml_backend
from tests.integration.helpers import choice, new_project
from tests.integration.sync_helpers import make_users, wait_for

pytestmark = pytest.mark.browser

BACKEND_TITLE = "ls-companion text classifier"
LABELED_PER_CLASS = 6
UNLABELED_PER_CLASS = 6
#: Positions (among the labeled tasks) where the third annotator disagrees with the other two.
DISSENT = (2, 7)
MIRROR = ("agreement", "consensus")
TIMEOUT = 30_000  # ms, for every UI expectation (the editor bundle is heavy on 2 busy cores)


@dataclass(frozen=True)
class UIProject:
    url: str  # Label Studio's
    project: Project
    backend: MLBackendProcess
    version: str
    labeled: list[int]
    unlabeled: list[int]
    tasks: dict[int, Task]  # after the sync: data with lsc_* keys, meta with our quality

    def prediction(self, task_id: int) -> Prediction:
        [prediction] = self.tasks[task_id].predictions
        return prediction

    def quality(self, task_id: int) -> dict[str, Any]:
        quality: dict[str, Any] = self.tasks[task_id].meta["ls_companion"]["quality"]
        return quality


def sms_texts() -> dict[str, list[str]]:
    with (SHARED_DATASETS / "sms_spam" / "sms_spam.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    wanted = LABELED_PER_CLASS + UNLABELED_PER_CLASS
    return {label: [r["text"] for r in rows if r["label"] == label][:wanted] for label in ("ham", "spam")}


def interleave(ham: list[str], spam: list[str]) -> list[tuple[str, str]]:
    return [pair for h, s in zip(ham, spam, strict=True) for pair in ((h, "ham"), (s, "spam"))]


def trained_version(
    backend: MLBackendProcess, client: LabelStudioClient, project_id: int, n: int
) -> str | None:
    """The backend's newest version once it was trained on ``n`` tasks and LS's project points at it."""
    response = httpx.get(f"{backend.url}/versions", params={"project": project_id}, timeout=10)
    details = response.json().get("details") or []
    if not details or details[0]["training"]["annotated_tasks"] < n:
        return None
    version: str = details[0]["version"]
    return version if client.get_project(project_id).model_version == version else None


@pytest.fixture(scope="module")
def ui_project(
    ls_client: LabelStudioClient,
    ls_settings: Settings,
    label_studio: LabelStudioProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[UIProject]:
    texts = sms_texts()
    labeled = interleave(texts["ham"][:LABELED_PER_CLASS], texts["spam"][:LABELED_PER_CLASS])
    unlabeled = interleave(texts["ham"][LABELED_PER_CLASS:], texts["spam"][LABELED_PER_CLASS:])
    project = new_project(ls_client, "browser ui")
    ids = ls_client.import_tasks(project.id, [{"data": {"text": t}} for t, _ in labeled + unlabeled])
    labeled_ids, unlabeled_ids = ids[: len(labeled)], ids[len(labeled) :]
    users = make_users(ls_client, 3)
    for k, (task_id, (_, label)) in enumerate(zip(labeled_ids, labeled, strict=True)):
        answers = [label, label, "spam" if label == "ham" else "ham"] if k in DISSENT else [label] * 3
        for user, answer in zip(users, answers, strict=True):
            ls_client.create_annotation(task_id, choice(answer), completed_by=user.id, lead_time=4.0)

    # Webhooks alone never train it: the one training is LS's "Start training" below.
    backend = start_ml_backend(
        tmp_path_factory.mktemp("browser-ml") / "models",
        label_studio_url=label_studio.url,
        api_key=label_studio.token,
        env={"TRAIN_EVERY_N_ANNOTATIONS": "100000", "TRAIN_DEBOUNCE_SECONDS": "100000"},
        workers=1,
    )
    try:
        ml = ls_client.create_ml_backend(project.id, backend.url, title=BACKEND_TITLE)
        assert (ml.state, ml.model_version) == ("CO", "untrained")
        ls_client.train(ml.id)
        version = wait_for(
            "the backend's first trained version",
            lambda: trained_version(backend, ls_client, project.id, len(labeled_ids)),
            timeout=90,
        )
        ls_client.retrieve_predictions(project.id)  # the Data Manager's "Batch predictions" action
        synced = sync_inline(ls_settings, ls_client, project.id, SyncOptions(retrain_after=0, mirror=MIRROR))
        assert synced.tasks_written == len(labeled_ids)
        tasks = {t.id: t for t in ls_client.list_tasks(project.id, predictions=True)}
        for task in tasks.values():
            assert [p.model_version for p in task.predictions] == [version], task
        yield UIProject(label_studio.url, project, backend, version, labeled_ids, unlabeled_ids, tasks)
    finally:
        backend.stop()


# -- how Label Studio's frontend renders values (read in web/dist/apps/labelstudio of .venv-ls) -----------


def js_number(value: float) -> str:
    """``String(x)`` in JavaScript for the short decimals we write (1.0 -> "1", 0.333 -> "0.333")."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def js_percent(score: float) -> str:
    """``(100 * score).toFixed(2)``: the exact double, rounded half up (as toFixed does)."""
    return str(Decimal(100 * score).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def short_name(name: str) -> str:
    """The annotation tab's label: names over 15 characters become first 8 + "..." + last 6."""
    return name if len(name) <= 15 else f"{name[:8]}...{name[-6:]}"


def column_index(page: Page, name: str) -> int:
    """Position of a Data Manager column (header cells and row cells line up one to one)."""
    heads = page.locator(".lsf-th")
    expect(heads.filter(has_text=re.compile(rf"^{re.escape(name)}"))).to_have_count(1, timeout=TIMEOUT)
    titles = [t.strip() for t in heads.all_inner_texts()]
    [index] = [i for i, title in enumerate(titles) if title.split("\n")[0] == name]
    return index


def task_row(page: Page, task_id: int) -> Locator:
    return page.get_by_test_id("table-row").filter(
        has=page.get_by_label(f"Select Task {task_id}", exact=True)
    )


def choice_box(page: Page, value: str) -> Locator:
    return page.locator(f".lsf-main-view .lsf-choices input[type=checkbox][name='{value}']")


# -- the tests -------------------------------------------------------------------------------------------


def test_project_list_shows_the_project(page: Page, ui_project: UIProject, artifacts: Path) -> None:
    ui = ui_project
    page.goto(f"{ui.url}/projects/")
    card = page.locator(".lsf-project-card").filter(
        has=page.locator(".lsf-project-card__title-text").get_by_text(ui.project.title, exact=True)
    )
    # Completed tasks / all tasks, then submitted annotations and predictions.
    expect(card.locator(".lsf-project-card__total")).to_have_text(
        f"{len(ui.labeled)} / {len(ui.tasks)}", timeout=TIMEOUT
    )
    expect(card.locator(".lsf-project-card__detail-item_type_completed")).to_have_text(
        str(3 * len(ui.labeled))
    )
    expect(card.locator(".lsf-project-card__detail-item_type_predictions")).to_have_text(str(len(ui.tasks)))
    save_screenshot(page, artifacts / "01-projects.png")


def test_model_settings_show_the_backend_connected(
    page: Page, ui_project: UIProject, artifacts: Path
) -> None:
    ui = ui_project
    page.goto(f"{ui.url}/projects/{ui.project.id}/settings/ml")  # Settings > Model
    card = page.locator(".lsf-backend-card").filter(has_text=ui.backend.url)
    expect(card.locator(".lsf-backend-card__title")).to_have_text(BACKEND_TITLE, timeout=TIMEOUT)
    expect(card.locator(".lsf-ml__status-label")).to_have_text("Connected")
    expect(card.locator(".lsf-ml__indicator_state_CO")).to_have_count(
        1
    )  # LS's state "CO": /health + /setup answered
    expect(card).to_contain_text(ui.backend.url)
    save_screenshot(page, artifacts / "02-model-settings.png")

    # Settings > Predictions: one card per model version, with how many predictions LS stores for it.
    page.goto(f"{ui.url}/projects/{ui.project.id}/settings/predictions")
    versions = page.locator(".lsf-prediction-card")
    expect(versions.locator(".lsf-prediction-card__title")).to_have_text([ui.version], timeout=TIMEOUT)
    expect(versions.locator(".lsf-prediction-card__group").first).to_have_text(
        re.compile(rf"^\s*{len(ui.tasks)}\s*$")
    )
    save_screenshot(page, artifacts / "03-predictions-settings.png")


def test_editor_shows_the_prelabel_and_its_score(page: Page, ui_project: UIProject, artifacts: Path) -> None:
    ui = ui_project
    # The unlabeled task the model is least sure about: the one uncertainty sampling would serve first.
    task_id = min(ui.unlabeled, key=lambda i: ui.prediction(i).score or 0.0)
    prediction = ui.prediction(task_id)
    assert prediction.score is not None and prediction.id is not None
    [label] = prediction.result[0]["value"]["choices"]
    other = "ham" if label == "spam" else "spam"

    page.goto(f"{ui.url}/projects/{ui.project.id}/data?task={task_id}")
    # The prediction's tab above the editor: model version (shortened) and " · <score as %>".
    tab = page.locator(f".lsf-annotation-button[data-annotation-id='{prediction.id}']")
    expect(tab.locator(".lsf-annotation-button__name")).to_have_text(short_name(ui.version), timeout=TIMEOUT)
    score = tab.locator(f"span[title='Prediction score = {js_number(prediction.score)}']")
    expect(score).to_have_text(re.compile(rf"^\W*{re.escape(js_percent(prediction.score))}%$"))
    expect(page.locator(".lsf-annotation-button__userpic_prediction")).to_have_count(1)  # no other prediction

    # The annotation LS opens is pre-filled with the prediction (project setting "use predictions to
    # prelabel", on by default): the predicted choice is ticked and still editable.
    expect(choice_box(page, label)).to_be_checked(timeout=TIMEOUT)
    expect(choice_box(page, label)).to_be_enabled()
    expect(choice_box(page, other)).not_to_be_checked()
    expect(page.locator(".lsf-richtext")).to_have_text(ui.tasks[task_id].data["text"])
    save_screenshot(page, artifacts / "04-editor-prelabel.png")

    # The prediction itself, read-only.
    tab.click()
    expect(choice_box(page, label)).to_be_disabled(timeout=TIMEOUT)
    expect(choice_box(page, label)).to_be_checked()
    expect(choice_box(page, other)).not_to_be_checked()
    save_screenshot(page, artifacts / "05-editor-prediction.png")


def test_data_manager_shows_the_quality_columns(page: Page, ui_project: UIProject, artifacts: Path) -> None:
    ui = ui_project
    # What the sync wrote: meta holds the quality, data mirrors the chosen keys as lsc_<key>.
    for task_id in ui.labeled:
        data, quality = ui.tasks[task_id].data, ui.quality(task_id)
        assert {k: data[f"lsc_{k}"] for k in MIRROR} == {k: quality[k] for k in MIRROR}
    low = sorted(i for i in ui.labeled if ui.quality(i)["agreement"] < 1)
    assert low == sorted(ui.labeled[k] for k in DISSENT)
    assert all(ui.quality(i)["agreement"] == 0.333 for i in low)
    assert all("lsc_agreement" not in ui.tasks[i].data for i in ui.unlabeled)

    page.goto(f"{ui.url}/projects/{ui.project.id}/data")
    columns = {key: column_index(page, f"lsc_{key}") for key in MIRROR}
    text_column = column_index(page, "text")
    for task_id in [*ui.labeled, ui.unlabeled[0]]:  # the labeled tasks come first in the default order
        cells = task_row(page, task_id).locator(":scope > .lsf-table__cell")
        expect(cells.nth(text_column)).to_have_text(ui.tasks[task_id].data["text"], timeout=TIMEOUT)
        for key, index in columns.items():
            value = ui.tasks[task_id].data.get(f"lsc_{key}")
            shown = "" if value is None else js_number(value) if isinstance(value, float) else str(value)
            expect(cells.nth(index)).to_have_text(shown)
    save_screenshot(page, artifacts / "06-data-manager.png")
