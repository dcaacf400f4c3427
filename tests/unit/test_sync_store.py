"""The local annotation store: snapshots, changes, deletions, compaction, crash leftovers (files, no server)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ls_companion import META_NAMESPACE
from ls_companion.records import Task
from ls_companion.sync.store import (
    COMPACT_AFTER,
    AnnotationStore,
    Snapshot,
    apply,
    changed_snapshots,
    new_annotation_versions,
    vanished,
)


def annotation(
    ann_id: int, value: str = "spam", updated: str = "2026-11-28T10:00:00.000000Z"
) -> dict[str, Any]:
    return {
        "id": ann_id,
        "completed_by": 7,
        "result": [
            {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [value]}}
        ],
        "updated_at": updated,
    }


def task(task_id: int, *annotations: dict[str, Any], **data: Any) -> Task:
    return Task.from_api(
        {
            "id": task_id,
            "data": data or {"text": f"t{task_id}"},
            "meta": {META_NAMESPACE: {"source_id": f"s{task_id}"}, "other": 1},
            "updated_at": "2026-11-28T10:00:00.000000Z",
            "annotations": list(annotations),
        }
    )


def test_only_annotated_or_known_tasks_are_stored_and_unchanged_ones_are_skipped(tmp_path: Path) -> None:
    store = AnnotationStore(tmp_path)
    listed = [Snapshot.of_task(task(1, annotation(10))), Snapshot.of_task(task(2))]
    changed = changed_snapshots({}, listed)
    assert [s.task_id for s in changed] == [1]
    store.append(changed)
    view = store.load()
    assert list(view) == [1] and view[1].source_id == "s1"
    # The same listing again (the safety overlap) writes nothing.
    assert changed_snapshots(view, listed) == []
    assert store.append([]) == 0


def test_mirrored_data_keys_are_not_a_change() -> None:
    plain = Snapshot.of_task(task(1, annotation(10), text="a"))
    mirrored = Snapshot.of_task(task(1, annotation(10), text="a", lsc_agreement=0.5))
    assert plain.digest == mirrored.digest and mirrored.data == {"text": "a"}


def test_a_task_relisted_with_fewer_annotations_loses_them_and_one_with_none_leaves(tmp_path: Path) -> None:
    store = AnnotationStore(tmp_path)
    store.append(
        [Snapshot.of_task(task(1, annotation(10), annotation(11))), Snapshot.of_task(task(2, annotation(20)))]
    )
    view = store.load()
    fewer = [Snapshot.of_task(task(1, annotation(11))), Snapshot.of_task(task(2))]
    changed = changed_snapshots(view, fewer)
    assert [s.task_id for s in changed] == [1, 2]
    store.append(changed)
    view = store.load()
    assert list(view) == [1]
    assert [a["id"] for a in view[1].annotations] == [11]


def test_new_annotation_versions_count_created_and_edited_annotations() -> None:
    view = apply({}, [Snapshot.of_task(task(1, annotation(10)))])
    later = "2026-11-28T11:00:00.000000Z"
    edited = Snapshot.of_task(task(1, annotation(10, "ham", later), annotation(11)))
    fresh = Snapshot.of_task(task(2, annotation(20)))
    assert new_annotation_versions(view, [edited, fresh]) == 3


def test_a_full_listing_removes_tasks_deleted_in_label_studio(tmp_path: Path) -> None:
    view = apply({}, [Snapshot.of_task(task(1, annotation(10))), Snapshot.of_task(task(2, annotation(20)))])
    gone = vanished(view, [2, 3])
    assert [(s.task_id, s.deleted) for s in gone] == [(1, True)]
    assert list(apply(view, gone)) == [2]


def test_compaction_keeps_the_view_and_leftovers_of_a_crash_are_ignored(tmp_path: Path) -> None:
    store = AnnotationStore(tmp_path)
    for i in range(COMPACT_AFTER):
        store.append([Snapshot.of_task(task(i % 5, annotation(100 + i)))])
    before = store.load()
    assert store.segment_count() == COMPACT_AFTER
    store.compact(before)
    assert [p.name for p in sorted((tmp_path / "store").iterdir())] == [f"base-{COMPACT_AFTER:08d}.jsonl"]
    assert store.load() == before
    # A crash while writing the next segment leaves a .tmp file: it is not data.
    (tmp_path / "store" / f"seg-{COMPACT_AFTER + 1:08d}.jsonl.tmp").write_text('{"id": 99, "annot')
    assert store.load() == before
    store.append([Snapshot.of_task(task(9, annotation(999)))])
    assert sorted(store.load()) == [0, 1, 2, 3, 4, 9]


def test_replaying_a_segment_twice_changes_nothing(tmp_path: Path) -> None:
    store = AnnotationStore(tmp_path)
    snapshots = [Snapshot.of_task(task(1, annotation(10))), Snapshot.of_task(task(2, annotation(20)))]
    store.append(snapshots)
    once = store.load()
    store.append(snapshots)  # a crash after the store, before the watermark: the next run stores again
    assert store.load() == once


def test_export_is_a_label_studio_json_export_the_quality_engine_reads(tmp_path: Path) -> None:
    from ls_companion.quality.records import read_export

    view = apply({}, [Snapshot.of_task(task(2, annotation(20))), Snapshot.of_task(task(1, annotation(10)))])
    path = tmp_path / "export.json"
    assert AnnotationStore.export(view, path) == 2
    raw = json.loads(path.read_text())
    assert [t["id"] for t in raw] == [1, 2]
    assert raw[0]["annotations"][0]["result"][0]["value"] == {"choices": ["spam"]}
    tasks = read_export(path)
    assert [(t.id, t.annotations[0].id, t.annotations[0].completed_by) for t in tasks] == [
        (1, 10, 7),
        (2, 20, 7),
    ]


def test_the_annotations_rev_changes_with_the_annotations_only() -> None:
    a = Snapshot.of_task(task(1, annotation(10), text="x"))
    b = Snapshot.of_task(task(1, annotation(10), text="y"))
    c = Snapshot.of_task(task(1, annotation(10, "ham")))
    assert a.rev == b.rev != c.rev
