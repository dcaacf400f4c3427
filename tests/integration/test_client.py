"""The SDK wrapper against the real Label Studio."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from ls_companion.client import LabelStudioClient
from ls_companion.errors import LabelStudioAuthError, LabelStudioUnavailable, NotFound
from ls_companion.localserver import LabelStudioProcess, free_port
from ls_companion.sync.writeback import MetaUpdate, send_updates
from tests.integration.helpers import choice, new_project

pytestmark = pytest.mark.integration


def test_meta_update_keeps_keys_another_tool_wrote(ls_client: LabelStudioClient) -> None:
    project = new_project(ls_client, "meta merge")
    [task_id] = ls_client.import_tasks(project.id, [{"data": {"text": "hello"}}])
    # Another tool writes its keys first, ours included, with a PATCH that replaces meta.
    ls_client.sdk.tasks.update(str(task_id), meta={"reviewer": "ann", "ls_companion": {"old": 1}})

    assert ls_client.update_task_meta(task_id, {"agreement": 0.5}) is True

    meta = ls_client.get_task(task_id).meta
    assert meta == {"reviewer": "ann", "ls_companion": {"old": 1, "agreement": 0.5}}
    # Same values again: no PATCH at all.
    assert ls_client.update_task_meta(task_id, {"agreement": 0.5}) is False
    assert ls_client.update_task_meta(task_id, {"agreement": 0.5}, current=meta) is False


def test_bulk_meta_update_patches_only_changed_tasks(ls_client: LabelStudioClient) -> None:
    project = new_project(ls_client, "bulk meta")
    ls_client.import_tasks(project.id, [{"data": {"text": f"t{i}"}, "meta": {"src": i}} for i in range(6)])
    tasks = list(ls_client.list_tasks(project.id, annotations=False))
    assert send_updates(ls_client, [MetaUpdate(t, {"q": 1}, {}) for t in tasks], workers=4) == 6
    tasks = list(ls_client.list_tasks(project.id, annotations=False))
    values = [MetaUpdate(t, {"q": 1 if t.meta["src"] < 4 else 2}, {}) for t in tasks]
    assert send_updates(ls_client, values, workers=4) == 2
    metas = {t.meta["src"]: t.meta["ls_companion"]["quality"]["q"] for t in ls_client.list_tasks(project.id)}
    assert metas == {0: 1, 1: 1, 2: 1, 3: 1, 4: 2, 5: 2}


def test_list_tasks_returns_annotations_and_filters_by_update_time(ls_client: LabelStudioClient) -> None:
    project = new_project(ls_client, "listing")
    ids = ls_client.import_tasks(project.id, [{"data": {"text": f"t{i}"}} for i in range(25)], chunk_size=10)
    assert len(ids) == 25
    listed = list(ls_client.list_tasks(project.id, page_size=10))
    assert [t.id for t in listed] == sorted(ids)
    assert listed[3].data == {"text": "t3"}
    watermark = max(t.updated_at or "" for t in listed)

    time.sleep(0.05)
    ls_client.create_annotation(ids[7], choice("spam"), lead_time=4.0)
    changed = list(ls_client.list_tasks(project.id, updated_since=watermark))
    assert [t.id for t in changed] == [ids[7]]
    [annotation] = changed[0].annotations
    assert annotation.result == choice("spam")
    assert annotation.lead_time == 4.0
    assert annotation.was_cancelled is False
    assert ls_client.count_tasks(project.id) == 25
    assert [t.id for t in ls_client.list_tasks(project.id, task_ids=[ids[1], ids[2]])] == ids[1:3]


def test_list_tasks_keeps_the_annotated_or_the_unlabeled_ones(ls_client: LabelStudioClient) -> None:
    """``annotated`` filters on LS's ``total_annotations``, which counts no cancelled annotation, as the
    backend's ``is_labeled`` does: a task whose only annotation was cancelled is still unlabeled."""
    project = new_project(ls_client, "annotated")
    ids = ls_client.import_tasks(
        project.id,
        [
            {"data": {"text": "imported with one"}, "annotations": [{"result": choice("ham")}]},
            {"data": {"text": "none"}},
            {"data": {"text": "cancelled"}, "annotations": [{"result": [], "was_cancelled": True}]},
            {"data": {"text": "annotated later"}},
        ],
    )
    ls_client.create_annotation(ids[3], choice("spam"))
    annotated = list(ls_client.list_tasks(project.id, annotated=True, page_size=1))
    assert [(t.id, len(t.annotations)) for t in annotated] == [(ids[0], 1), (ids[3], 1)]
    unlabeled = ls_client.list_tasks(
        project.id, annotated=False, updated_since=datetime(2000, 1, 1, tzinfo=UTC)
    )
    assert [t.id for t in unlabeled] == [ids[1], ids[2]]


def test_predictions_import_in_bulk(ls_client: LabelStudioClient) -> None:
    project = new_project(ls_client, "predictions")
    ids = ls_client.import_tasks(project.id, [{"data": {"text": f"t{i}"}} for i in range(5)])
    preds = [
        {"task": i, "result": choice("ham"), "score": 0.25 * n, "model_version": "v1"}
        for n, i in enumerate(ids)
    ]
    assert ls_client.import_predictions(project.id, preds, chunk_size=2) == 5
    listed = list(ls_client.list_tasks(project.id, predictions=True))
    assert [(t.predictions[0].score, t.predictions[0].model_version) for t in listed] == [
        (0.0, "v1"),
        (0.25, "v1"),
        (0.5, "v1"),
        (0.75, "v1"),
        (1.0, "v1"),
    ]


def test_wrong_token_fails_fast_with_auth_error(label_studio: LabelStudioProcess) -> None:
    client = LabelStudioClient(label_studio.url, "not-a-token")
    started = time.monotonic()
    with pytest.raises(LabelStudioAuthError, match="rejected the API key"):
        client.check_connection()
    assert time.monotonic() - started < 5


def test_unreachable_server_fails_within_ten_seconds() -> None:
    client = LabelStudioClient(f"http://127.0.0.1:{free_port()}", "token")
    started = time.monotonic()
    with pytest.raises(LabelStudioUnavailable, match="cannot reach Label Studio"):
        client.check_connection()
    assert time.monotonic() - started < 10


def test_missing_project_is_not_found(ls_client: LabelStudioClient) -> None:
    with pytest.raises(NotFound):
        ls_client.get_project(987654)
