"""The quality engine against the real Label Studio: three annotators, gold, export, CLI, escalation.

To act as another user (``/api/projects/{id}/next`` answers for the caller), a test needs that user's
token. Users created through ``POST /api/users/`` get no usable password in LS 1.23 (the serializer
ignores it), so they cannot log in; users who sign up with the organization's invite token
(``GET /api/invite``) can, and their session then reads their token from ``/api/current-user/token``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest
from statsmodels.stats.inter_rater import fleiss_kappa

from ls_companion.cli import main
from ls_companion.client import LabelStudioClient
from ls_companion.localserver import LabelStudioProcess
from ls_companion.projectdata import gold_store_path
from ls_companion.quality import adapter, escalation
from ls_companion.quality.engine import compute_project_quality
from ls_companion.settings import Settings
from tests.conftest import SHARED_DATASETS
from tests.integration.helpers import CHOICES_CONFIG, choice

pytestmark = pytest.mark.integration

PASSWORD = "quality-Passw0rd!"
#: What each annotator answers on tasks 0..5 (agreement 1, 1/3, 1, 1/3, 1, 1/3).
PLAN = {
    "a1": ["spam", "spam", "ham", "ham", "spam", "ham"],
    "a2": ["spam", "spam", "ham", "spam", "spam", "ham"],
    "a3": ["spam", "ham", "ham", "ham", "spam", "spam"],
}
LEAD_TIMES = {"a1": 10.0, "a2": 20.0, "a3": 30.0}
GOLD = {1: "spam", 2: "ham", 3: "ham"}  # in the local gold store; task 0's gold is a ground truth in LS
_emails = itertools.count(1)


def signup(label_studio: LabelStudioProcess, invite: str, name: str) -> LabelStudioClient:
    """A new user who signs up with the invite token, and a client acting as them."""
    email = f"{name}-{next(_emails)}-{id(invite) % 997}@quality.test"
    with httpx.Client(base_url=label_studio.url, follow_redirects=False, timeout=30) as session:
        session.get("/user/signup/")
        form = {
            "email": email,
            "password": PASSWORD,
            "csrfmiddlewaretoken": session.cookies.get("csrftoken", ""),
        }
        response = session.post(
            f"/user/signup/?token={invite}",
            data=form,
            headers={"Referer": f"{label_studio.url}/user/signup/"},
        )
        assert response.status_code == 302, response.text[:300]
        token = session.get("/api/current-user/token").json()["token"]
    return LabelStudioClient(label_studio.url, token)


@dataclass
class Annotated:
    project_id: int
    tasks: list[int]
    users: dict[str, int]
    clients: dict[str, LabelStudioClient]


@pytest.fixture(scope="module")
def annotated(
    ls_client: LabelStudioClient, label_studio: LabelStudioProcess, ls_settings: Settings
) -> Iterator[Annotated]:
    project = ls_client.create_project(
        title="quality three annotators", label_config=CHOICES_CONFIG, maximum_annotations=3
    )
    tasks = ls_client.import_tasks(
        project.id,
        [{"data": {"text": f"t{i}"}, "meta": {"ls_companion": {"source_id": f"s{i}"}}} for i in range(6)],
    )
    invite = httpx.get(
        f"{label_studio.url}/api/invite", headers={"Authorization": f"Token {label_studio.token}"}
    ).json()["token"]
    clients = {"a1": signup(label_studio, invite, "a1"), "fourth": signup(label_studio, invite, "fourth")}
    users = {name: client.whoami().id for name, client in clients.items()}
    for name in ("a2", "a3", "skipper"):  # plain API users: annotations recorded for them by the admin
        users[name] = ls_client.create_user(f"{name}-{project.id}@quality.test", password=PASSWORD).id
    for name, answers in PLAN.items():
        for task_id, label in zip(tasks, answers, strict=True):
            ls_client.create_annotation(
                task_id, choice(label), completed_by=users[name], lead_time=LEAD_TIMES[name]
            )
    ls_client.create_annotation(tasks[4], [], completed_by=users["skipper"], was_cancelled=True)
    ls_client.create_annotation(tasks[0], choice("spam"), ground_truth=True)  # by the admin
    store = gold_store_path(ls_settings.data_dir, project.id)
    store.parent.mkdir(parents=True, exist_ok=True)
    store.write_text(
        "".join(
            json.dumps({"task_id": tasks[i], "source_id": f"s{i}", "control": "label", "answer": label})
            + "\n"
            for i, label in GOLD.items()
        )
    )
    try:
        yield Annotated(project.id, tasks, users, clients)
    finally:
        for client in clients.values():
            client.close()


def test_table_and_metrics_match_what_the_annotators_did(
    ls_client: LabelStudioClient, annotated: Annotated, ls_settings: Settings
) -> None:
    data = adapter.fetch_project(ls_client, annotated.project_id)
    table = data.table
    users = {str(uid): name for name, uid in annotated.users.items()}
    crowd_rows = table[~table["was_cancelled"] & ~table["ground_truth"]]
    seen = {
        (users[a], annotated.tasks.index(t), v)
        for t, a, v in crowd_rows[["task_id", "annotator", "value"]].values
    }
    assert seen == {(name, i, label) for name, answers in PLAN.items() for i, label in enumerate(answers)}
    cancelled = table[table["was_cancelled"]]
    assert [(users[a], t) for a, t in cancelled[["annotator", "task_id"]].values] == [
        ("skipper", annotated.tasks[4])
    ]
    assert table[table["ground_truth"]][["task_id", "value"]].values.tolist() == [
        [annotated.tasks[0], "spam"]
    ]
    assert data.source_ids == {f"s{i}": t for i, t in enumerate(annotated.tasks)}
    assert set(data.overlaps.values()) == {3}

    gold = adapter.load_gold(data, data_dir=ls_settings.data_dir)
    report = compute_project_quality(table, data.controls, gold, data.predictions)
    tasks = report.tasks.set_index("task_id")
    assert [round(tasks.loc[t, "agreement"], 4) for t in annotated.tasks] == [
        1.0,
        0.3333,
        1.0,
        0.3333,
        1.0,
        0.3333,
    ]
    assert list(tasks.loc[annotated.tasks, "n_submitted"]) == [
        4,
        3,
        3,
        3,
        3,
        3,
    ]  # the admin's ground truth counts
    summary = report.to_dict()["agreement"]
    counts = [[row.count("spam"), row.count("ham")] for row in zip(*PLAN.values(), strict=True)]
    assert summary["percent_agreement"] == pytest.approx(2 / 3, abs=1e-4)
    assert summary["fleiss_kappa"] == pytest.approx(fleiss_kappa(counts), abs=1e-4)
    assert summary["fleiss_kappa"] == pytest.approx(0.325, abs=0.001)

    annotators = report.annotators.set_index("annotator")
    by_name = {users.get(a, a): row for a, row in annotators.iterrows()}  # the admin wrote the ground truth
    # Gold: the ground truth on task 0 plus the store's tasks 1-3. a1 4/4, a2 misses task 3, a3 misses task 1.
    assert {n: (by_name[n]["gold_n_gold"], by_name[n]["gold_correct"]) for n in PLAN} == {
        "a1": (4, 4), "a2": (4, 3), "a3": (4, 3)
    }  # fmt: skip
    assert {n: round(by_name[n]["vs_others"], 4) for n in PLAN} == {"a1": 0.75, "a2": 0.6667, "a3": 0.5833}
    assert {n: by_name[n]["lead_time_median"] for n in PLAN} == LEAD_TIMES
    assert by_name["skipper"]["cancel_rate"] == 1.0

    control = report.controls["label"]
    labels = control.consensus.methods["majority_vote"].labels.set_index("task_id")["consensus"]
    assert [labels[t] for t in annotated.tasks] == ["spam", "spam", "ham", "ham", "spam", "ham"]
    assert control.consensus.chosen == "dawid_skene"  # 4 gold tasks: too few to choose by
    meta = report.task_meta()[annotated.tasks[1]]
    assert (meta["agreement"], meta["n_annotators"], meta["low_agreement"], meta["consensus"]) == (
        0.333,
        3,
        True,
        "spam",
    )


def test_export_file_and_cli_give_the_same_numbers(
    ls_client: LabelStudioClient,
    annotated: Annotated,
    label_studio: LabelStudioProcess,
    ls_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    exported = httpx.get(
        f"{label_studio.url}/api/projects/{annotated.project_id}/export",
        params={"exportType": "JSON"},
        headers={"Authorization": f"Token {label_studio.token}"},
        timeout=60,
    )
    path = tmp_path / "export.json"
    path.write_bytes(exported.content)
    from_export = adapter.load_export(path)
    from_api = adapter.fetch_project(ls_client, annotated.project_id)
    columns = [
        "task_id",
        "annotation_id",
        "annotator",
        "control",
        "value",
        "lead_time",
        "was_cancelled",
        "ground_truth",
    ]
    key = ["annotation_id", "control"]
    pd.testing.assert_frame_equal(
        from_export.table[columns].sort_values(key).reset_index(drop=True),
        from_api.table[columns].sort_values(key).reset_index(drop=True),
    )

    monkeypatch.setenv("LABEL_STUDIO_URL", label_studio.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio.token)
    monkeypatch.setenv("DATA_DIR", str(ls_settings.data_dir))
    assert (
        main(["metrics", str(annotated.project_id), "--json", "--methods", "majority_vote,dawid_skene"]) == 0
    )
    payload = json.loads(capsys.readouterr().out)
    assert payload["summary"]["n_tasks"] == 6 and payload["summary"]["low_agreement_tasks"] == 3
    assert payload["consensus"]["methods"]["majority_vote"]["gold_accuracy"] == 1.0
    assert payload["consensus"]["methods"]["majority_vote"]["n_gold"] == 4
    accuracy = {row["annotator"]: row["gold_accuracy"] for row in payload["annotators"] if row["gold_n_gold"]}
    assert accuracy == {
        str(annotated.users["a1"]): 1.0,
        str(annotated.users["a2"]): 0.75,
        str(annotated.users["a3"]): 0.75,
    }


def is_labeled(label_studio: LabelStudioProcess, task_id: int) -> bool:
    """The task's ``is_labeled`` flag (not part of the client's task records)."""
    headers = {"Authorization": f"Token {label_studio.token}"}
    return bool(
        httpx.get(f"{label_studio.url}/api/tasks/{task_id}", headers=headers, timeout=30).json()["is_labeled"]
    )


def test_low_agreement_tasks_go_to_one_more_annotator(
    ls_client: LabelStudioClient, annotated: Annotated, label_studio: LabelStudioProcess
) -> None:
    fourth, a1 = annotated.clients["fourth"], annotated.clients["a1"]
    low = {annotated.tasks[i] for i in (1, 3, 5)}
    # Label Studio fact: raising overlap alone leaves is_labeled true, and the stream serves nothing.
    ls_client.update_task(annotated.tasks[5], overlap=4)
    assert is_labeled(label_studio, annotated.tasks[5]) is True
    assert fourth.next_task(annotated.project_id) is None
    ls_client.update_task(annotated.tasks[5], overlap=3)

    data = adapter.fetch_project(ls_client, annotated.project_id)
    report = compute_project_quality(data.table, data.controls)
    plan = escalation.plan_escalation(report.tasks, data.overlaps)
    assert plan == sorted((t, 4) for t in low)
    assert escalation.apply_escalation(ls_client, plan) == 3
    overlaps = {
        t.id: t.overlap for t in ls_client.list_tasks(annotated.project_id, data=False, annotations=False)
    }
    assert overlaps == {t: 4 if t in low else 3 for t in annotated.tasks}
    rerun = adapter.fetch_project(ls_client, annotated.project_id)
    assert escalation.plan_escalation(report.tasks, rerun.overlaps) == []  # waiting for the 4th

    assert a1.next_task(annotated.project_id) is None  # a1 labeled every task already
    served: list[int] = []
    while (task := fourth.next_task(annotated.project_id)) is not None:
        assert task.id in low and task.id not in served
        served.append(task.id)
        fourth.create_annotation(task.id, choice("spam"))
    assert sorted(served) == sorted(low)
    after = adapter.fetch_project(ls_client, annotated.project_id)
    counts = after.table[~after.table["was_cancelled"]].groupby("task_id")["annotator"].nunique()
    assert {t: int(counts[t]) for t in low} == dict.fromkeys(low, 4)
    assert all(is_labeled(label_studio, t) for t in low)


#: What each invited user answers on the task with text m<i>: agreement 1, 1/3, 1, 1/3, 1/3, 1/3.
STREAM_PLAN = {
    "u1": ["spam", "spam", "ham", "ham", "spam", "ham"],
    "u2": ["spam", "ham", "ham", "ham", "spam", "spam"],
    "u3": ["spam", "spam", "ham", "spam", "ham", "ham"],
}


def test_invited_users_take_every_task_once_from_the_stream_with_overlap_set_through_the_api(
    ls_client: LabelStudioClient, label_studio: LabelStudioProcess
) -> None:
    """Overlap in CE: the UI hides maximum_annotations, but the label stream honours it when set via the API."""
    project = ls_client.create_project(title="quality stream overlap", label_config=CHOICES_CONFIG)
    assert ls_client.update_project(project.id, maximum_annotations=3).maximum_annotations == 3
    tasks = ls_client.import_tasks(project.id, [{"data": {"text": f"m{i}"}} for i in range(6)])
    invite = httpx.get(
        f"{label_studio.url}/api/invite", headers={"Authorization": f"Token {label_studio.token}"}
    ).json()["token"]
    clients = {name: signup(label_studio, invite, name) for name in STREAM_PLAN}
    served: dict[str, list[int]] = {name: [] for name in STREAM_PLAN}
    try:
        for _ in tasks:  # the three work side by side, one task each in turn
            for name, client in clients.items():
                task = client.next_task(project.id)
                assert task is not None, f"{name} got no task after {served[name]}"
                served[name].append(task.id)
                client.create_annotation(task.id, choice(STREAM_PLAN[name][int(task.data["text"][1:])]))
        assert [client.next_task(project.id) for client in clients.values()] == [None, None, None]
    finally:
        for client in clients.values():
            client.close()
    assert {name: sorted(ids) for name, ids in served.items()} == {
        name: sorted(tasks) for name in STREAM_PLAN
    }

    data = adapter.fetch_project(ls_client, project.id)
    report = compute_project_quality(data.table, data.controls)
    per_task = report.tasks.set_index("task_id")
    assert [round(per_task.loc[t, "agreement"], 4) for t in tasks] == [
        1.0,
        0.3333,
        1.0,
        0.3333,
        0.3333,
        0.3333,
    ]
    assert list(per_task.loc[tasks, "n_annotators"]) == [3] * 6
    summary = report.to_dict()["agreement"]
    counts = [[row.count("spam"), row.count("ham")] for row in zip(*STREAM_PLAN.values(), strict=True)]
    assert summary["percent_agreement"] == pytest.approx(5 / 9, abs=1e-4)
    assert summary["fleiss_kappa"] == pytest.approx(fleiss_kappa(counts), abs=1e-4)
    assert report.annotators["annotator"].nunique() == 3


def test_label_issues_of_a_project_put_the_label_made_wrong_on_purpose_first(
    ls_client: LabelStudioClient,
    label_studio: LabelStudioProcess,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    frame = pd.read_csv(SHARED_DATASETS / "sms_spam" / "sms_spam.csv", keep_default_na=False)
    sample = pd.concat([frame[frame["label"] == "spam"].head(80), frame[frame["label"] == "ham"].head(160)])
    project = ls_client.create_project(title="quality label issues", label_config=CHOICES_CONFIG)
    tasks = ls_client.import_tasks(project.id, [{"data": {"text": t}} for t in sample["text"]])
    wrong = tasks[11]  # an obvious spam message ("Congrats! ... call 0906... now!"), labelled ham on purpose
    for task_id, label in zip(tasks, sample["label"], strict=True):
        ls_client.create_annotation(task_id, choice("ham" if task_id == wrong else label))
    monkeypatch.setenv("LABEL_STUDIO_URL", label_studio.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio.token)
    assert main(["label-issues", "--project", str(project.id), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["n_items"] == 240 and payload["issues"][0]["task_id"] == wrong
    assert payload["issues"][0]["suggested"] == "spam" and payload["issues"][0]["score"] > 0.5
