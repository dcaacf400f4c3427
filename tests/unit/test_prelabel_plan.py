"""The pure planner of ``prelabel``: which tasks need a prediction, chunk sizes, the crash state."""

from __future__ import annotations

from ls_companion.prelabel.plan import ChunkSizer, PrelabelState, prediction_rows, sort_tasks
from ls_companion.records import Prediction, Task


def _task(task_id: int, *versions: str) -> Task:
    predictions = tuple(
        Prediction(id=task_id * 10 + i, task_id=task_id, result=[], model_version=v)
        for i, v in enumerate(versions)
    )
    return Task(id=task_id, predictions=predictions)


def test_sort_tasks_finds_missing_tasks_and_keeps_the_oldest_of_several_predictions() -> None:
    verdicts = sort_tasks(
        [_task(1), _task(2, "old"), _task(3, "v2"), _task(4, "v2", "old", "v2", "v2")], "v2"
    )
    assert [t.id for t in verdicts.missing] == [1, 2]
    assert verdicts.done == 2
    assert verdicts.extra_predictions == [42, 43]


def test_chunk_sizer_aims_at_the_target_time_grows_at_most_twofold_and_stays_in_bounds() -> None:
    sizer = ChunkSizer(first=100, smallest=10, largest=2000, target=15.0)
    assert sizer.next(100, 30.0) == 50  # took twice the target: halve
    assert sizer.next(100, 5.0) == 200  # three times too fast: only doubled
    assert sizer.next(100, 14.0) == 107
    assert sizer.next(100, 1000.0) == 10
    assert sizer.next(1500, 1.0) == 2000
    assert sizer.next(100, 0.0) == 200


def test_state_waits_only_for_a_recent_request_of_the_same_version() -> None:
    state = PrelabelState.from_json({"model_version": "v2", "inflight": [5, 6], "started": 1000.0})
    assert state.to_json() == {"model_version": "v2", "inflight": [5, 6], "started": 1000.0}
    assert state.must_wait("v2", now=1050.0, grace=130.0)
    assert not state.must_wait("v2", now=1131.0, grace=130.0)
    assert not state.must_wait("v3", now=1050.0, grace=130.0)
    assert not PrelabelState.from_json(None).must_wait("v2", now=0.0)


def test_the_scheduler_runs_prelabel_on_the_select_queue_only_when_asked() -> None:
    import redis

    from ls_companion.sync.jobs import ScheduleEntry, build_scheduler
    from ls_companion.sync.options import SyncOptions

    entries = [
        ScheduleEntry(7, SyncOptions(prelabel=True, interval=60), "a.yaml"),
        ScheduleEntry(8, SyncOptions(), "b.yaml"),
    ]
    scheduler = build_scheduler(redis.Redis(port=1), entries)  # registering connects to nothing
    jobs = {(j.func.__name__, j.queue_name, j.interval, j.kwargs["project_id"]) for j in scheduler.get_jobs()}
    assert jobs == {
        ("kick_sync", "sync", 60, 7),
        ("prelabel_project", "select", 60, 7),
        ("kick_sync", "sync", 300, 8),
    }


def test_prediction_rows_take_both_answer_shapes_and_skip_empty_predictions() -> None:
    hit = {"result": [{"value": {"choices": ["spam"]}}], "score": 0.9, "model_version": "v3"}
    answers = [[hit], hit, [], {"result": []}, [{"result": hit["result"]}]]
    rows = prediction_rows([1, 2, 3, 4, 5], answers, "v2")
    assert [(r["task"], r["score"], r["model_version"]) for r in rows] == [
        (1, 0.9, "v3"),
        (2, 0.9, "v3"),
        (5, None, "v2"),
    ]
