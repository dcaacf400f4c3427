"""The labeling cycle against a real Label Studio: the gate, the guidelines digest, guideline versions.

Annotators are API users; the admin records their answers (Label Studio Community has no per-user
tokens for scripts).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ls_companion.bootstrap import bootstrap, load_spec
from ls_companion.cli import main
from ls_companion.client import LabelStudioClient
from ls_companion.localserver import LabelStudioProcess
from ls_companion.projectdata import gold_store_path
from ls_companion.settings import Settings
from tests.integration.helpers import choice, new_project
from tests.integration.sync_helpers import make_users

pytestmark = pytest.mark.integration

SENTIMENT = """<View>
  <Text name="text" value="$text"/>
  <Choices name="sentiment" toName="text" choice="single">
    <Choice value="positive"/><Choice value="negative"/><Choice value="neutral"/>
  </Choices>
</View>"""
LABELS = ("positive", "negative", "neutral")
WORDS = ("a great and lovely thing", "an awful and broken thing", "a thing in a box")  # one per label


@pytest.fixture
def cli_env(
    label_studio: LabelStudioProcess, ls_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    monkeypatch.setenv("LABEL_STUDIO_URL", label_studio.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio.token)
    monkeypatch.setenv("DATA_DIR", str(ls_settings.data_dir))
    monkeypatch.delenv("ML_BACKEND_URL", raising=False)
    yield


def run_json(args: list[str], capsys: pytest.CaptureFixture[str], code: int = 0) -> dict[str, Any]:
    assert main([*args, "--json"]) == code
    payload: dict[str, Any] = json.loads(capsys.readouterr().out)
    return payload


def test_gate_fails_on_an_unqualified_annotator_and_passes_once_replaced(
    ls_client: LabelStudioClient,
    ls_settings: Settings,
    cli_env: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    project = new_project(ls_client, "gate")
    ls_client.update_project(project.id, maximum_annotations=2)
    tasks = ls_client.import_tasks(project.id, [{"data": {"text": f"message {i}"}} for i in range(20)])
    truth = {task: "spam" if i % 2 else "ham" for i, task in enumerate(tasks)}
    gold = [tasks[0], tasks[19]]  # 10 %: one in each half
    store = gold_store_path(ls_settings.data_dir, project.id)
    store.parent.mkdir(parents=True, exist_ok=True)
    store.write_text(
        "".join(
            json.dumps({"task_id": t, "source_id": f"g{t}", "control": "label", "answer": truth[t]}) + "\n"
            for t in gold
        )
    )
    ann, bob, dev, eve = make_users(ls_client, 4)
    wrong = {"ham": "spam", "spam": "ham"}
    for i, task in enumerate(tasks):
        ls_client.create_annotation(task, choice(truth[task]), completed_by=ann.id)
        if i < 10:
            ls_client.create_annotation(task, choice(truth[task]), completed_by=bob.id)
    # Dev answers the second half, right except on the gold task.
    devs = [
        ls_client.create_annotation(
            task, choice(wrong[truth[task]] if task in gold else truth[task]), completed_by=dev.id
        )
        for task in tasks[10:]
    ]
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "title: gate spec\nlabel_config: x\ngate:\n  pilot_min_tasks: 20\n  pilot_max_tasks: 40\n"
    )
    args = ["gate", "--project", str(project.id), "--spec", str(spec)]
    failed = run_json(args, capsys, code=6)
    verdict = {c["name"]: c for c in failed["criteria"]}
    assert failed["passed"] is False and failed["stage"] == "pilot"
    assert not verdict["qualification"]["passed"]
    assert verdict["qualification"]["detail"] == f"below the bar: {dev.email} (0.0 % on 1 gold)"
    assert [n for n, c in verdict.items() if not c["passed"]] == ["qualification"]
    assert verdict["gold_share"]["value"] == 0.1 and verdict["pilot_size"]["value"] == 20
    assert failed["next"] == [verdict["qualification"]["next_step"]]

    for annotation in devs:  # replace Dev by Eve, who answers the same tasks right
        ls_client.delete_annotation(annotation.id)
    for task in tasks[10:]:
        ls_client.create_annotation(task, choice(truth[task]), completed_by=eve.id)
    passed = run_json(args, capsys)
    assert passed["passed"] is True and passed["next"] == []
    assert main(args) == 0
    assert "pilot gate: PASS" in capsys.readouterr().out


def _annotate(
    client: LabelStudioClient, tasks: list[int], users: tuple[int, int], confused: set[int]
) -> None:
    """Both annotators give the true label (cycling through LABELS), except that on ``confused``
    tasks (truth: neutral) the second says negative."""
    for i, task in enumerate(tasks):
        label = LABELS[i % 3]
        client.create_annotation(task, choice(label, "sentiment"), completed_by=users[0])
        second = "negative" if task in confused else label
        client.create_annotation(task, choice(second, "sentiment"), completed_by=users[1])


def test_digest_names_the_planted_confusion_and_the_guideline_change_helps(
    ls_client: LabelStudioClient,
    ls_settings: Settings,
    cli_env: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = tmp_path / "cycle.yaml"
    guidelines = tmp_path / "guidelines.md"
    spec.write_text(
        "title: cycle sentiment\nguidelines: guidelines.md\noverlap:\n  maximum_annotations: 2\n"
        "label_config: |\n" + "".join(f"  {line}\n" for line in SENTIMENT.splitlines())
    )
    guidelines.write_text("# Sentiment v1\n\nLabel the tone of the text.\n")
    first = bootstrap(ls_client, load_spec(spec, ls_settings), data_dir=ls_settings.data_dir)
    assert first.guidelines_version == "v1"
    project = first.project_id
    x, y = make_users(ls_client, 2)
    before = ls_client.import_tasks(project, [{"data": {"text": f"{WORDS[i % 3]} {i}"}} for i in range(30)])
    planted = {task for i, task in enumerate(before) if i % 3 == 2}  # the 10 neutral tasks
    _annotate(ls_client, before, (x.id, y.id), planted)

    digest = run_json(["guidelines-review", "--project", str(project)], capsys)
    top = digest["confusion"]["sentiment"]["pairs"][0]
    assert sorted(top["labels"]) == ["negative", "neutral"] and top["count"] == 10
    assert {e["task_id"] for e in top["examples"]} <= planted and len(top["examples"]) == 5
    markdown = str(digest["markdown"])
    assert "(guidelines v1)" in markdown.splitlines()[0]
    assert markdown.index("#### sentiment: negative vs neutral") < markdown.index("[task ")

    guidelines.write_text(
        "# Sentiment v2\n\nLabel the tone.\n\n## Edge cases\n\nNo opinion at all: neutral.\n"
    )
    second = bootstrap(ls_client, load_spec(spec, ls_settings), data_dir=ls_settings.data_dir)
    assert second.guidelines_version == "v2" and [c.what for c in second.changes] == ["expert_instruction"]
    assert not bootstrap(ls_client, load_spec(spec, ls_settings), data_dir=ls_settings.data_dir).changed
    after = ls_client.import_tasks(project, [{"data": {"text": f"{WORDS[i % 3]} {i}"}} for i in range(30)])
    _annotate(ls_client, after, (x.id, y.id), set())

    out = tmp_path / "report"
    report = run_json(
        ["report", "--project", str(project), "--out", str(out), "--methods", "majority_vote"], capsys
    )
    section = report["guidelines"]
    assert [h["version"] for h in section["history"]] == ["v1", "v2"]
    by_version = section["controls"]["sentiment"]
    assert [(v["version"], v["n_pairs"], v["agreement"]) for v in by_version["versions"]] == [
        ("v1", 30, pytest.approx(20 / 30)),
        ("v2", 30, 1.0),
    ]
    (change,) = by_version["changes"]
    assert change["from"] == "v1" and change["to"] == "v2" and change["improved"] == ["agreement"]
    html = (out / "index.html").read_text()
    assert "Guideline versions" in html and "negative vs neutral" in html
