"""Inline sync (no Redis) against the real Label Studio, PATCH requests counted by a proxy in between."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ls_companion.bootstrap.apply import LABEL_ERRORS_VIEW, sync_views
from ls_companion.client import LabelStudioClient
from ls_companion.localserver import LabelStudioProcess, free_port
from ls_companion.projectdata import project_dir
from ls_companion.quality.consensus import MAJORITY_VOTE
from ls_companion.records import User
from ls_companion.report.gather import build_report, collect
from ls_companion.settings import Settings
from ls_companion.sync.engine import sync_inline
from ls_companion.sync.options import EscalationOptions, SyncOptions
from ls_companion.sync.state import load_state
from ls_companion.sync.store import AnnotationStore
from tests.harness.fault_proxy import FaultProxy
from tests.harness.ml_backend import start_ml_backend
from tests.integration.helpers import choice, new_project
from tests.integration.sync_helpers import (
    annotated_project,
    companion_env,
    make_users,
    run_companion,
    wait_for,
)

pytestmark = pytest.mark.integration

QUIET = SyncOptions(retrain_after=0)


@pytest.fixture(scope="module")
def users(ls_client: LabelStudioClient) -> list[User]:
    return make_users(ls_client, 3)


@pytest.fixture
def proxy(label_studio: LabelStudioProcess) -> Iterator[FaultProxy]:
    with FaultProxy(label_studio.url) as counting:
        yield counting


def proxied(
    label_studio: LabelStudioProcess, proxy: FaultProxy, data_dir: Path
) -> tuple[Settings, LabelStudioClient]:
    settings = Settings(
        label_studio_url=proxy.url, label_studio_api_key=label_studio.token, data_dir=data_dir
    )
    return settings, LabelStudioClient.from_settings(settings)


def quality_of(client: LabelStudioClient, project_id: int) -> dict[int, dict[str, object] | None]:
    return {t.id: (t.meta.get("ls_companion") or {}).get("quality") for t in client.list_tasks(project_id)}


def test_sync_writes_quality_keeps_other_meta_and_then_sends_nothing(
    ls_client: LabelStudioClient,
    label_studio: LabelStudioProcess,
    proxy: FaultProxy,
    users: list[User],
    tmp_path: Path,
) -> None:
    project, ids = annotated_project(ls_client, "sync inline", users, 8, annotate=6)
    ls_client.sdk.tasks.update(str(ids[0]), meta={"reviewer": "ann"})  # another tool's key
    settings, client = proxied(label_studio, proxy, tmp_path)

    first = sync_inline(settings, client, project.id, QUIET)
    assert (first.full, first.tasks_listed, first.tasks_written, first.annotations_new) == (True, 8, 6, 18)
    assert first.patches == 6 == proxy.forwarded["PATCH"]
    metas = {t.id: t.meta for t in ls_client.list_tasks(project.id)}
    assert metas[ids[0]]["reviewer"] == "ann"
    q0 = metas[ids[0]]["ls_companion"]["quality"]
    assert (q0["agreement"], q0["n_annotators"], q0["consensus"], q0["low_agreement"]) == (
        1.0,
        3,
        "ham",
        False,
    )
    q2 = metas[ids[2]]["ls_companion"]["quality"]  # two say spam, one says ham
    assert (q2["agreement"], q2["n_annotators"], q2["low_agreement"]) == (0.333, 3, True)
    assert "ls_companion" not in metas[ids[7]]  # unlabeled: nothing written
    assert first.quality["n_annotations"] == 18 and first.quality["low_agreement_tasks"] == 2

    # Nothing changed: our own PATCHes bumped updated_at, so the tasks are listed again, and left alone.
    proxy.reset_counts()
    second = sync_inline(settings, client, project.id, QUIET)
    assert second.tasks_listed >= 6 and (second.tasks_written, second.patches) == (0, 0)
    assert proxy.forwarded["PATCH"] == 0
    state = load_state(project_dir(tmp_path, project.id), project.id)
    assert state.watermark is not None and state.watermark >= first.watermark_after  # type: ignore[operator]

    # One new annotation: one task stored, one PATCH.
    ls_client.create_annotation(ids[6], choice("spam"), completed_by=users[0].id)
    proxy.reset_counts()
    third = sync_inline(settings, client, project.id, QUIET)
    assert (third.annotations_new, third.tasks_written, third.patches) == (1, 1, 1)
    assert proxy.forwarded["PATCH"] == 1
    assert quality_of(ls_client, project.id)[ids[6]]["n_annotators"] == 1  # type: ignore[index]

    # A deleted annotation (LS's ANNOTATIONS_DELETED) is reflected in the store and in the numbers.
    dissent = next(a for a in ls_client.get_task(ids[2]).annotations if a.result == choice("ham"))
    ls_client.sdk.annotations.delete(dissent.id)
    fourth = sync_inline(settings, client, project.id, QUIET)
    assert (fourth.tasks_written, fourth.patches) == (1, 1)
    view = AnnotationStore(project_dir(tmp_path, project.id)).load()
    assert sorted(a["id"] for a in view[ids[2]].annotations) == sorted(
        a.id for a in ls_client.get_task(ids[2]).annotations
    )
    q2 = quality_of(ls_client, project.id)[ids[2]]
    assert q2 is not None and (q2["agreement"], q2["n_annotators"]) == (1.0, 2)

    # A task deleted in LS leaves the store on a full sync; unchanged numbers are not re-sent.
    ls_client.sdk.tasks.delete(str(ids[1]))
    proxy.reset_counts()
    full = sync_inline(settings, client, project.id, QUIET, full=True)
    assert (
        full.full
        and full.tasks_removed == 1
        and ids[1] not in AnnotationStore(project_dir(tmp_path, project.id)).load()
    )
    assert full.annotations_stored == 18 - 1 + 1 - 3
    assert proxy.forwarded["PATCH"] == full.patches


def test_mirrored_agreement_is_filterable_and_low_agreement_gets_another_annotator(
    ls_client: LabelStudioClient,
    label_studio: LabelStudioProcess,
    proxy: FaultProxy,
    users: list[User],
    tmp_path: Path,
) -> None:
    project, ids = annotated_project(ls_client, "sync mirror", users, 6, annotate=6)
    settings, client = proxied(label_studio, proxy, tmp_path)
    options = SyncOptions(
        retrain_after=0, mirror=("agreement", "consensus"), escalation=EscalationOptions(below=0.6)
    )

    result = sync_inline(settings, client, project.id, options)
    # Meta and data in one PATCH per task, plus one overlap PATCH per low-agreement task.
    assert (result.patches, result.escalated) == (6, 2)
    assert proxy.forwarded["PATCH"] == 8
    assert [ls_client.get_task(i).overlap for i in (ids[1], ids[2], ids[5])] == [1, 4, 4]
    task = ls_client.get_task(ids[2])
    assert task.data == {"text": "message 2", "lsc_agreement": 0.333, "lsc_consensus": "spam"}

    # LS 1.23's Data Manager filters and sorts on data.* (not on meta): what reviewers can use.
    query = {
        "filters": {
            "conjunction": "and",
            "items": [
                {
                    "filter": "filter:tasks:data.lsc_agreement",
                    "operator": "less",
                    "type": "Number",
                    "value": 0.5,
                }
            ],
        }
    }
    response = httpx.get(
        f"{label_studio.url}/api/tasks/",
        params={"project": project.id, "query": json.dumps(query), "include": "id"},
        headers={"Authorization": f"Token {label_studio.token}"},
        timeout=30,
    )
    assert sorted(t["id"] for t in response.json()["tasks"]) == [ids[2], ids[5]]

    proxy.reset_counts()
    again = sync_inline(settings, client, project.id, options)
    assert (again.patches, again.escalated, proxy.forwarded["PATCH"]) == (0, 0, 0)


def test_cli_syncs_inline_exports_and_says_when_redis_is_down(
    ls_client: LabelStudioClient, label_studio: LabelStudioProcess, users: list[User], tmp_path: Path
) -> None:
    project, ids = annotated_project(ls_client, "sync cli", users[:2], 3, annotate=2)
    env = companion_env(label_studio.url, label_studio.token, tmp_path / "data")
    export = tmp_path / "export.json"

    done = run_companion(["sync", "--project", str(project.id), "--export", str(export), "--json"], env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["mode"], result["tasks_written"], result["patches"]) == ("inline", 2, 2)
    assert result["exported"] == {"path": str(export), "tasks": 2}
    exported = json.loads(export.read_text())
    assert [t["id"] for t in exported] == ids[:2]
    assert [len(t["annotations"]) for t in exported] == [2, 2]

    status = run_companion(["status", "--json"], env)
    assert status.returncode == 0, status.stderr
    [project_status] = json.loads(status.stdout)["projects"]
    assert (project_status["project_id"], project_status["syncs"], project_status["patches_total"]) == (
        project.id,
        1,
        2,
    )

    down = {**env, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    for args in (["sync", "--project", str(project.id)], ["status"], ["worker", "--burst"]):
        failed = run_companion(args, down, timeout=60)
        assert failed.returncode == 4, (args, failed.stderr)
        assert failed.stderr.startswith("error: cannot reach Redis at redis://127.0.0.1:")
        assert len(failed.stderr.strip().splitlines()) == 1 and "Traceback" not in failed.stderr
    inline = run_companion(["sync", "--project", str(project.id), "--inline", "--json"], down)
    assert inline.returncode == 0, inline.stderr
    assert json.loads(inline.stdout)["patches"] == 0


def oof_answers(url: str) -> dict[str, int]:
    """How many ``GET /oof`` the (one-worker) backend answered, per status code, from its /metrics."""
    found = re.findall(
        r'ml_backend_requests_total\{[^}]*route="/oof",status="(\d+)"\} (\d+)',
        httpx.get(f"{url}/metrics", timeout=10).text,
    )
    return {status: int(count) for status, count in found}


def test_training_is_requested_after_enough_new_annotations_and_its_model_flags_a_wrong_label(
    ls_client: LabelStudioClient, label_studio: LabelStudioProcess, users: list[User], tmp_path: Path
) -> None:
    # The real backend, told to never train from webhooks alone: only our request can make it train.
    backend = start_ml_backend(
        tmp_path / "models",
        label_studio_url=label_studio.url,
        api_key=label_studio.token,
        env={"TRAIN_EVERY_N_ANNOTATIONS": "100000", "TRAIN_DEBOUNCE_SECONDS": "100000"},
        workers=1,
    )
    try:
        project = new_project(ls_client, "sync train")
        texts = [("win a free prize now", "spam"), ("see you at lunch today", "ham")]
        wrong = 4  # a spam message labelled ham on purpose
        ids = ls_client.import_tasks(
            project.id,
            [
                {
                    "data": {"text": f"{texts[i % 2][0]} {i}"},
                    "annotations": [
                        {
                            "result": choice("ham" if i == wrong else texts[i % 2][1]),
                            "completed_by": users[0].id,
                            "ground_truth": False,
                        }
                    ],
                }
                for i in range(12)
            ],
        )
        ml = ls_client.create_ml_backend(project.id, backend.url, title="ls-companion")
        settings = Settings(
            label_studio_url=label_studio.url, label_studio_api_key=label_studio.token, data_dir=tmp_path
        )
        client = LabelStudioClient.from_settings(settings)
        options = SyncOptions(retrain_after=10)

        first = sync_inline(settings, client, project.id, options)
        assert first.train is not None
        assert (first.train["backend_id"], first.train["requested"], first.train["annotations"]) == (
            ml.id,
            True,
            12,
        )

        def trained() -> int | None:
            response = httpx.get(f"{backend.url}/versions", params={"project": project.id}, timeout=10)
            details = response.json().get("details") or []
            return int(details[0]["training"]["annotated_tasks"]) if details else None

        assert wait_for("the backend to train", trained, 90) == 12
        state = load_state(project_dir(tmp_path, project.id), project.id)
        assert state.annotations_since_train == 0 and state.last_train is not None

        # Nothing new: no training request. The new model's out-of-fold probabilities (GET /oof) judge
        # every task's label once: the wrong one is flagged and mirrored for the "Possible label errors" tab.
        judged = sync_inline(settings, client, project.id, options)
        assert judged.train is None and (judged.tasks_listed, judged.patches) == (12, 12)
        issues: dict[int, dict[str, Any]] = {
            t: q["label_issue"]  # type: ignore[misc]
            for t, q in quality_of(ls_client, project.id).items()
            if q
        }
        assert issues[ids[wrong]]["flagged"] and issues[ids[wrong]]["suggested"] == "spam"
        assert (
            issues[ids[wrong]]["model_version"]
            == load_state(project_dir(tmp_path, project.id), project.id).oof_version
        )
        assert [t for t, issue in issues.items() if issue["flagged"]] == [ids[wrong]]
        sync_views(client, project.id)
        (view,) = [
            v for v in client.list_views(project.id) if v["data"]["title"] == LABEL_ERRORS_VIEW["title"]
        ]
        listed = client._raw("GET", "api/tasks/", params={"project": project.id, "view": view["id"]})
        assert [t["id"] for t in listed["tasks"]] == [ids[wrong]]
        # The report's "Possible label errors" section reads the same stored findings, with the text.
        inputs = collect(client, settings, project.id, with_models=False)
        section = build_report(inputs, methods=(MAJORITY_VOTE,))["label_issues"]
        assert [(e["task_id"], e["text"], e["label"], e["suggested"]) for e in section["top"]] == [
            (ids[wrong], f"win a free prize now {wrong}", "ham", "spam")
        ]
        assert {n["label"]: n["tasks"] for n in section["noise"]} == {"ham": 7, "spam": 5}
        assert any(n["noise_rate"] > 0 for n in section["noise"])
        # The same model: nothing new, and /oof costs one bodiless 304 (the sync kept the last answer).
        before = oof_answers(backend.url)
        assert sync_inline(settings, client, project.id, options).patches == 0
        assert Counter(oof_answers(backend.url)) - Counter(before) == Counter({"304": 1})
    finally:
        backend.stop()
