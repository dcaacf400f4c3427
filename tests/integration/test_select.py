"""``select`` against the real Label Studio: idempotent, resumable after SIGKILL, gold answers kept out."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ls_companion import META_NAMESPACE
from ls_companion.client import LabelStudioClient
from ls_companion.projectdata import GoldStore, gold_store_path
from ls_companion.records import Task
from ls_companion.selection.gold import read_gold
from ls_companion.selection.importer import SelectRequest, run_select
from ls_companion.selection.scoring import SklearnScorer
from ls_companion.settings import Settings
from ls_companion.sources import read_rows
from tests.conftest import REPO_ROOT, SHARED_DATASETS
from tests.integration.helpers import new_project

pytestmark = pytest.mark.integration

SMS = [dict(r) for r in read_rows(SHARED_DATASETS / "sms_spam" / "sms_spam.csv")]
# Unique texts (sms_spam repeats some), so that every pool row is its own item.
TEXTS = list(dict.fromkeys(r["text"] for r in SMS))


def _csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _gold_rows(n: int) -> list[list[str]]:
    """Gold items from the end of the file whose texts do not contain the answer words themselves."""
    rows = [r for r in SMS[4500:] if "ham" not in r["text"].lower() and "spam" not in r["text"].lower()]
    return [[r["text"], r["label"]] for r in rows[:n]]


def _ours(task: Task) -> dict[str, Any]:
    return dict(task.meta.get(META_NAMESPACE) or {})


@pytest.fixture(scope="module")
def model() -> SklearnScorer:
    train = SMS[3000:4000]
    return SklearnScorer(control="label").fit([r["text"] for r in train], [r["label"] for r in train])


def test_select_twice_imports_nothing_the_second_time(
    ls_client: LabelStudioClient, ls_settings: Settings, model: SklearnScorer, tmp_path: Path
) -> None:
    project = new_project(ls_client, "select twice")
    pool = _csv(tmp_path / "pool.csv", ["text"], [[t] for t in TEXTS[:400]])
    gold = _csv(tmp_path / "gold.csv", ["text", "answer"], _gold_rows(30))
    request = SelectRequest(
        project_id=project.id,
        pool=pool,
        strategy="hybrid",
        batch=60,
        gold=gold,
        with_predictions=True,
        chunk_size=25,
    )
    first = run_select(ls_client, model, request, data_dir=ls_settings.data_dir)
    assert (first.al_round, first.imported, first.gold_imported, first.control_imported) == (1, 60, 3, 6)
    assert first.model_version == model.model_version_

    tasks = list(ls_client.list_tasks(project.id, predictions=True))
    assert len(tasks) == 60
    sources = [_ours(t)["source_id"] for t in tasks]
    assert len(set(sources)) == 60
    for task in tasks:
        ours = _ours(task)
        assert ours["al_round"] == 1 and ours["al_request"] == first.request
        assert ours["strategy"] in ("hybrid", "random")
        assert 0.0 <= ours["uncertainty"] <= 1.0 and ours["model_version"] == model.model_version_
        [pre] = task.predictions
        assert pre.model_version == model.model_version_ and pre.score is not None
        # The cluster LS orders its uncertainty stream by was written onto the prediction.
        assert pre.cluster == ours.get("cluster")
    assert sum(1 for t in tasks if "cluster" in _ours(t)) == first.clusters_written == 51
    store_before = gold_store_path(ls_settings.data_dir, project.id).read_bytes()

    second = run_select(ls_client, model, request, data_dir=ls_settings.data_dir)
    assert second.nothing_to_do and second.imported == 0 and second.clusters_written == 0
    assert ls_client.count_tasks(project.id) == 60
    assert gold_store_path(ls_settings.data_dir, project.id).read_bytes() == store_before

    # A new round (here forced; a retrained model does the same) takes items not imported yet.
    third = run_select(
        ls_client,
        model,
        SelectRequest(**{**request.__dict__, "new_round": True}),
        data_dir=ls_settings.data_dir,
    )
    assert (third.al_round, third.imported) == (2, 60)
    all_sources = [_ours(t)["source_id"] for t in ls_client.list_tasks(project.id, annotations=False)]
    assert len(all_sources) == len(set(all_sources)) == 120


def test_gold_answers_stay_out_of_label_studio(
    ls_client: LabelStudioClient, ls_settings: Settings, model: SklearnScorer, tmp_path: Path
) -> None:
    project = new_project(ls_client, "gold")
    pool = _csv(tmp_path / "pool.csv", ["text"], [[t] for t in TEXTS[:200]])
    gold_rows = _gold_rows(40)
    gold = _csv(tmp_path / "gold.csv", ["text", "answer"], gold_rows)
    answers = {text: answer for text, answer in gold_rows}
    request = SelectRequest(
        project_id=project.id, pool=pool, strategy="entropy", batch=100, gold=gold, gold_rate=0.1
    )
    report = run_select(ls_client, model, request, data_dir=ls_settings.data_dir)
    assert report.gold_imported == 10

    records = GoldStore(gold_store_path(ls_settings.data_dir, project.id)).load()
    assert len(records) == 10
    for task_id, record in records.items():
        raw = ls_client.sdk.tasks.get(str(task_id)).model_dump(mode="json")
        text = raw["data"]["text"]
        assert raw["data"] == {"text": text}  # no answer column
        assert record.answer == answers[text] and record.control == "label"
        assert raw["meta"][META_NAMESPACE]["source_id"] == record.source_id
        assert set(raw["meta"][META_NAMESPACE]) == {
            "source_id",
            "al_round",
            "al_request",
            "strategy",
            "uncertainty",
            "model_version",
        }  # same keys as every other task: nothing marks it as gold
        assert raw["meta"][META_NAMESPACE]["strategy"] == "entropy"
        assert not raw.get("predictions") and not raw.get("annotations")
        dumped = json.dumps(raw).lower()
        assert "answer" not in dumped and "gold" not in dumped and record.answer not in dumped


def _select_cmd(pool: Path, gold: Path, project_id: int, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "ls_companion", "select", str(pool), "--project", str(project_id),
        "--strategy", "random", "--batch", "2000", "--chunk-size", "40", "--gold", str(gold),
        "--scorer", "none", "--json", *extra,
    ]  # fmt: skip


def _env(settings: Settings, data_dir: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("LABEL_STUDIO_", "ML_BACKEND_", "DATA_DIR"))
    }
    assert settings.label_studio_api_key is not None
    env.update(
        LABEL_STUDIO_URL=settings.label_studio_url,
        LABEL_STUDIO_API_KEY=settings.label_studio_api_key.get_secret_value(),
        DATA_DIR=str(data_dir),
        PYTHONPATH=str(REPO_ROOT),
    )
    return env


def test_sigkill_in_the_middle_of_an_import_then_rerun_gives_exactly_the_batch(
    ls_client: LabelStudioClient, ls_settings: Settings, tmp_path: Path
) -> None:
    project = new_project(ls_client, "sigkill")
    pool = _csv(tmp_path / "pool.csv", ["text"], [[t] for t in TEXTS[:3000]])
    gold = _csv(tmp_path / "gold.csv", ["text", "answer"], _gold_rows(150))
    data_dir = tmp_path / "data"
    env = _env(ls_settings, data_dir)

    process = subprocess.Popen(
        _select_cmd(pool, gold, project.id), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while ls_client.count_tasks(project.id) < 400 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    after_kill = ls_client.count_tasks(project.id)
    assert 0 < after_kill < 2000, "the kill must land in the middle of the import"

    rerun = subprocess.run(
        _select_cmd(pool, gold, project.id), env=env, capture_output=True, text=True, timeout=300
    )
    assert rerun.returncode == 0, rerun.stderr
    report = json.loads(rerun.stdout)
    assert report["resumed"] and report["al_round"] == 1
    assert report["in_round_before"] == after_kill and report["imported"] == 2000 - after_kill

    tasks = list(ls_client.list_tasks(project.id, data=False, annotations=False))
    sources = Counter(_ours(t)["source_id"] for t in tasks)
    assert len(tasks) == 2000 and len(sources) == 2000 and max(sources.values()) == 1
    assert {_ours(t)["al_round"] for t in tasks} == {1}

    # Exactly the intended set: what an uninterrupted run plans for an empty project.
    empty = new_project(ls_client, "sigkill plan")
    planned = subprocess.run(
        _select_cmd(pool, gold, empty.id, "--dry-run"), env=env, capture_output=True, text=True, timeout=300
    )
    assert planned.returncode == 0, planned.stderr
    intended = {item["source_id"] for item in json.loads(planned.stdout)["items"]}
    assert set(sources) == intended

    # Every gold item in the project has its answer in the store, once, even those imported just
    # before the kill: the 100 gold tasks (5 % of 2000), plus any pool item that repeats a gold item.
    records = GoldStore(gold_store_path(data_dir, project.id)).load()
    gold_sources = {item.source_id for item in read_gold(gold)}
    assert {r.source_id for r in records.values()} == gold_sources & set(sources)
    assert len(records) >= 100 and len({r.source_id for r in records.values()}) == len(records)
    roles = Counter(item["role"] for item in json.loads(planned.stdout)["items"])
    assert roles == {"gold": 100, "control": 190, "strategy": 1710}

    again = subprocess.run(
        _select_cmd(pool, gold, project.id), env=env, capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0 and json.loads(again.stdout)["nothing_to_do"]
    assert ls_client.count_tasks(project.id) == 2000


@pytest.mark.parametrize(
    ("broken", "reason"),
    [
        (lambda text: text + "\x00", "a NUL byte"),
        (lambda text: f'"{text}', "unexpected end of data"),
    ],
)
def test_a_malformed_pool_imports_nothing_and_the_fixed_file_imports_the_batch(
    ls_client: LabelStudioClient,
    ls_settings: Settings,
    tmp_path: Path,
    broken: Any,
    reason: str,
) -> None:
    project = new_project(ls_client, "malformed pool")
    rows = [[t] for t in TEXTS[:300]]
    pool = _csv(tmp_path / "pool.csv", ["text"], rows)
    good = pool.read_text(encoding="utf-8")
    lines = good.splitlines(keepends=True)
    lines[-1] = broken(lines[-1].rstrip("\r\n")) + "\n"  # the last row: every chunk before it reads fine
    pool.write_text("".join(lines), encoding="utf-8")
    command = [
        sys.executable, "-m", "ls_companion", "select", str(pool), "--project", str(project.id),
        "--strategy", "random", "--batch", "120", "--chunk-size", "40", "--scorer", "none", "--json",
    ]  # fmt: skip
    env = _env(ls_settings, tmp_path / "data")

    failed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert failed.returncode == 2, failed.stderr
    assert failed.stderr.startswith(f"error: {pool}:{len(lines)}: {reason}")
    assert len(failed.stderr.strip().splitlines()) == 1 and "Traceback" not in failed.stderr
    assert ls_client.count_tasks(project.id) == 0  # nothing half imported

    pool.write_text(good, encoding="utf-8")
    fixed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert fixed.returncode == 0, fixed.stderr
    assert json.loads(fixed.stdout)["imported"] == 120 == ls_client.count_tasks(project.id)
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and json.loads(again.stdout)["imported"] == 0
    assert ls_client.count_tasks(project.id) == 120
