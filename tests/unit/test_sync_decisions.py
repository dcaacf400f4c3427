"""The sync's pure decisions: which tasks get a PATCH, alerts, training and top-ups, options, reasons."""

from __future__ import annotations

from typing import Any

import pytest

from ls_companion import META_NAMESPACE
from ls_companion.errors import InputError
from ls_companion.records import Project, Task
from ls_companion.sync.alerts import alert_key, merge_alerts
from ls_companion.sync.followups import topup_due, topup_size, training_due
from ls_companion.sync.options import SyncOptions, TopupOptions, options_payload, parse_options
from ls_companion.sync.quality_step import EscalationRule, assess
from ls_companion.sync.queues import one_line_reason, redact
from ls_companion.sync.writeback import mirror_values, plan_updates

QUALITY = {"v": 1, "agreement": 0.5, "n_annotators": 2, "consensus": "spam"}


def task(task_id: int, quality: dict[str, Any] | None = None, **data: Any) -> Task:
    ours: dict[str, Any] = {"source_id": f"s{task_id}"}
    if quality is not None:
        ours["quality"] = quality
    return Task(id=task_id, data=data or {"text": "x"}, meta={"reviewer": "ann", META_NAMESPACE: ours})


def test_new_numbers_are_written_with_the_rev_of_their_annotations() -> None:
    [update] = plan_updates([task(1)], {1: "r1"}, {1: QUALITY})
    assert update.quality == {**QUALITY, "rev": "r1"} and update.data_values == {}


def test_no_patch_when_the_meta_already_describes_these_annotations() -> None:
    current = {**QUALITY, "rev": "r1"}
    # Even when project-wide context moved the numbers, the same annotations mean no PATCH.
    moved = {**QUALITY, "agreement": 0.75}
    assert plan_updates([task(1, current)], {1: "r1"}, {1: moved}) == []
    # ...unless a full sync asks for a refresh.
    [update] = plan_updates([task(1, current)], {1: "r1"}, {1: moved}, refresh=True)
    assert update.quality is not None and update.quality["agreement"] == 0.75


def test_changed_annotations_or_wiped_meta_get_a_patch() -> None:
    current = {**QUALITY, "rev": "r1"}
    [changed] = plan_updates([task(1, current)], {1: "r2"}, {1: QUALITY})
    assert changed.quality == {**QUALITY, "rev": "r2"}
    [wiped] = plan_updates([task(2)], {2: "r1"}, {2: QUALITY})
    assert wiped.quality == {**QUALITY, "rev": "r1"}


def test_a_task_that_lost_all_annotations_gets_its_numbers_cleared_once() -> None:
    [update] = plan_updates([task(1, {**QUALITY, "rev": "r1"})], {}, {})
    assert update.quality is None
    assert plan_updates([task(1, None)], {}, {}) == []  # never scored, nothing to clear


def test_mirrored_fields_go_into_data_with_the_prefix() -> None:
    [update] = plan_updates([task(1)], {1: "r1"}, {1: QUALITY}, mirror=("agreement", "consensus", "nope"))
    assert update.data_values == {"lsc_agreement": 0.5, "lsc_consensus": "spam", "lsc_nope": None}
    # Already mirrored and already scored: nothing to send.
    done = task(1, {**QUALITY, "rev": "r1"}, text="x", lsc_agreement=0.5)
    assert plan_updates([done], {1: "r1"}, {1: QUALITY}, mirror=("agreement",)) == []
    # Turning mirroring on later fills data from the numbers already in meta.
    [late] = plan_updates([task(1, {**QUALITY, "rev": "r1"})], {1: "r1"}, {1: QUALITY}, mirror=("agreement",))
    assert late.data_values == {"lsc_agreement": 0.5}
    assert mirror_values({"controls": {"a": 1}}, ["controls"]) == {"lsc_controls": None}


def test_alerts_are_new_once_and_wait_for_delivery_only_with_a_webhook() -> None:
    found = [
        {"metric": "agreement", "scope": "annotator", "annotator": "3", "control": "label", "since": "t0"}
    ]
    known, new = merge_alerts([], found, "now", deliver=True)
    assert len(new) == 1 and new[0]["delivered"] is False and new[0]["key"] == alert_key(found[0])
    again, new_again = merge_alerts(known, found, "later", deliver=True)
    assert new_again == [] and again == known
    _, quiet = merge_alerts([], found, "now", deliver=False)
    assert quiet[0]["delivered"] is None


def test_training_is_due_after_enough_new_annotations() -> None:
    assert not training_due(49, 50)
    assert training_due(50, 50)
    assert not training_due(10_000, 0)


def test_top_ups_respect_the_threshold_and_the_budget() -> None:
    options = TopupOptions(pool="pool.csv", below=20, batch=100, budget=250)
    low = Project(id=1, title="p", label_config="", task_number=200, finished_task_number=190)
    assert topup_due(low, options) and topup_size(low, options) == 50
    busy = Project(id=1, title="p", label_config="", task_number=200, finished_task_number=100)
    assert not topup_due(busy, options)
    spent = Project(id=1, title="p", label_config="", task_number=250, finished_task_number=250)
    assert not topup_due(spent, options) and topup_size(spent, options) == 0


def test_options_validate_with_field_paths_and_travel_as_short_json() -> None:
    with pytest.raises(InputError, match=r"sync\.topup\.budget"):
        parse_options({"topup": {"pool": "p.csv"}})
    with pytest.raises(InputError, match=r"sync\.interval"):
        parse_options({"interval": 0})
    options = SyncOptions(interval=60, mirror=("agreement",))
    assert options_payload(options) == {"interval": 60, "mirror": ["agreement"]}
    assert parse_options(options_payload(options)) == options


def test_failed_job_reasons_are_one_line() -> None:
    trace = "Traceback (most recent call last):\n  File x\nls_companion.errors.LabelStudioUnavailable: list tasks: HTTP 502\n"
    assert one_line_reason(trace) == "LabelStudioUnavailable: list tasks: HTTP 502"
    assert one_line_reason(None) == "unknown reason"
    assert one_line_reason(
        "rq.timeouts.JobTimeoutException: Task exceeded maximum timeout value (10 seconds)"
    ) == ("JobTimeoutException: Task exceeded maximum timeout value (10 seconds)")


def test_redis_passwords_stay_out_of_messages() -> None:
    assert redact("redis://:s3cret@redis:6379/0") == "redis://:***@redis:6379/0"
    assert redact("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


CONFIG = (
    '<View><Text name="text" value="$text"/><Choices name="label" toName="text">'
    '<Choice value="ham"/><Choice value="spam"/></Choices></View>'
)


def annotated(task_id: int, labels: list[str]) -> Task:
    results = [
        {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [x]}}
        for x in labels
    ]
    annotations = [
        {"id": task_id * 10 + i, "completed_by": i + 1, "result": [r]} for i, r in enumerate(results)
    ]
    return Task.from_api({"id": task_id, "data": {"text": "x"}, "annotations": annotations})


def test_the_sync_flags_and_escalates_low_agreement_at_its_own_threshold() -> None:
    config = CONFIG
    tasks = [annotated(1, ["ham", "ham", "spam"]), annotated(2, ["ham", "ham", "ham"])]  # agreement 1/3 and 1
    overlaps = {1: 3, 2: 3}
    strict = assess(tasks, config, [1, 2], escalation=EscalationRule(0.5, 5, overlaps))
    assert strict.per_task[1]["low_agreement"] and strict.escalations == [(1, 4)]
    lenient = assess(tasks, config, [1, 2], escalation=EscalationRule(0.3, 5, overlaps))
    # The meta says "not low" exactly when the task is not escalated: one threshold, one decision.
    assert not lenient.per_task[1]["low_agreement"] and lenient.escalations == []
    assert lenient.summary["low_agreement_threshold"] == 0.3


def test_the_backends_out_of_fold_probabilities_flag_the_wrong_label_and_feed_consensus() -> None:
    labels = ["ham", "spam"] * 6
    labels[4] = "spam"  # task 5 is ham, but labelled spam: the model (never trained on it) says ham
    tasks = [annotated(i + 1, [label]) for i, label in enumerate(labels)]
    proba = [[0.9, 0.1] if i % 2 == 0 else [0.15, 0.85] for i in range(12)]
    oof = {
        "model_version": "v7",
        "controls": {"label": {"task_ids": list(range(1, 13)), "classes": ["ham", "spam"], "proba": proba}},
    }
    outcome = assess(tasks, CONFIG, [5, 6], oof=oof)
    assert set(outcome.per_task) == {5, 6}
    issue = outcome.per_task[5]["label_issue"]
    # task 5's "spam" is the one of the 7 spam labels the model is confident is ham: noise rate 1/7
    assert issue == {
        "label": "spam",
        "noise_rate": 0.1429,
        "score": 0.9,
        "suggested": "ham",
        "flagged": True,
        "model_version": "v7",
    }
    assert outcome.per_task[6]["label_issue"]["flagged"] is False
    assert outcome.per_task[6]["label_issue"]["score"] == 0.15
    assert "label_issue" not in assess(tasks, CONFIG, [5]).per_task[5]  # no backend, no finding

    # With overlap the engine's annotator accuracies weigh each label: two annotators answer every task
    # and disagree once (task 3), so one agrees with the consensus 12 times in 12 (0.999 at most), the
    # other 11. A label both give is right at 0.999 (the cap); task 3's at .999 (1/12) / (.999 (1/12) +
    # .001 (11/12)). Task 5's "spam" is more reliable than the mean label: its odds against the model's
    # 1:9 grow by the ratio of the two reliabilities' odds.
    overlap = [annotated(i + 1, [label, label]) for i, label in enumerate(labels)]
    overlap[2] = annotated(3, ["ham", "spam"])
    weighed = assess(overlap, CONFIG, range(1, 13), oof=oof).per_task
    disputed = 0.999 / 12 / (0.999 / 12 + 0.001 * 11 / 12)
    mean = (11 * 0.999 + disputed) / 12
    odds = (1 / 9) * (0.999 / 0.001) / (mean / (1 - mean))
    assert weighed[5]["label_issue"]["flagged"]
    assert weighed[5]["label_issue"]["score"] == pytest.approx(1 / (1 + odds), abs=1e-4)
    assert weighed[3]["label_issue"]["score"] > 0.5  # the disputed label: the model's doubt weighs more


def test_a_label_issue_is_mirrored_while_flagged_and_a_new_model_version_patches_it() -> None:
    assert SyncOptions().mirror == ("label_issue",)  # bootstrap's "Possible label errors" tab filters on it
    flagged = {"score": 0.9, "suggested": "ham", "flagged": True, "model_version": "v1"}
    assert mirror_values({"label_issue": flagged}, ["label_issue"]) == {"lsc_label_issue": 0.9}
    kept = {**flagged, "flagged": False}
    assert mirror_values({"label_issue": kept}, ["label_issue"]) == {"lsc_label_issue": None}
    current = {**QUALITY, "rev": "r1", "label_issue": flagged}
    same = {**QUALITY, "agreement": 0.7, "label_issue": {**flagged, "score": 0.8}}
    assert (
        plan_updates([task(1, current, lsc_label_issue=0.9)], {1: "r1"}, {1: same}, mirror=("label_issue",))
        == []
    )
    newer = {**QUALITY, "agreement": 0.7, "label_issue": {**kept, "model_version": "v2"}}
    [update] = plan_updates(
        [task(1, current, lsc_label_issue=0.9)], {1: "r1"}, {1: newer}, mirror=("label_issue",)
    )
    # only the label issue moves (the rest still describes the same annotations), and leaves the tab
    assert update.quality == {**current, "label_issue": newer["label_issue"]}
    assert update.data_values == {"lsc_label_issue": None}
