"""The engine's one entry point, the per-task meta it produces, and the ``metrics`` command on files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ls_companion.cli import main
from ls_companion.quality.engine import QualityOptions, compute_project_quality
from ls_companion.quality.records import controls_from_config, tasks_to_table
from ls_companion.records import Task
from tests.conftest import SHARED_DATASETS

CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Choices name="label" toName="text"><Choice value="ham"/><Choice value="spam"/></Choices>
  <Labels name="ents" toName="text"><Label value="Person"/></Labels>
</View>"""
META_KEYS = {
    "v",
    "agreement",
    "n_annotators",
    "low_agreement",
    "consensus",
    "consensus_annotation",
    "consensus_confidence",
    "method",
    "gold_correct",
}


def choice(value: str) -> dict[str, Any]:
    return {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [value]}}


def person(start: int, end: int, text: str) -> dict[str, Any]:
    value = {"start": start, "end": end, "text": text, "labels": ["Person"]}
    return {"from_name": "ents", "to_name": "text", "type": "labels", "value": value}


def project_tasks(answers: dict[int, list[str]], spans: bool = False) -> list[Task]:
    tasks = []
    next_id = iter(range(1, 1000))
    for task_id, labels in answers.items():
        annotations = []
        for user, label in enumerate(labels, start=1):
            result = [choice(label)] + ([person(0, 5, "Maria")] if spans and user < 3 else [])
            aid = next(next_id)
            stamp = f"2026-11-01T10:{aid:02d}:00Z"
            annotations.append(
                {"id": aid, "completed_by": user, "result": result, "created_at": stamp, "lead_time": 5.0}
            )
        tasks.append(Task.from_api({"id": task_id, "annotations": annotations}))
    return tasks


def test_single_control_report_and_task_meta() -> None:
    controls = controls_from_config(
        CONFIG.replace('<Labels name="ents" toName="text"><Label value="Person"/></Labels>', "")
    )
    answers = {1: ["spam", "spam", "spam"], 2: ["spam", "spam", "ham"], 3: ["ham", "ham", "ham"], 4: ["ham"]}
    table = tasks_to_table(project_tasks(answers), controls)
    gold = pd.DataFrame([{"task_id": 2, "control": "label", "value": "spam"}])
    report = compute_project_quality(
        table, controls, gold, options=QualityOptions(methods=("majority_vote", "dawid_skene"))
    )
    metas = report.task_meta()
    assert set(metas) == {1, 2, 3, 4} and all(set(m) == META_KEYS for m in metas.values())
    assert (
        metas[2]["agreement"] == 0.333 and metas[2]["low_agreement"] is True and metas[2]["n_annotators"] == 3
    )
    assert metas[2]["consensus"] == "spam" and metas[2]["method"] == "dawid_skene"
    assert metas[4] == {**metas[4], "agreement": None, "low_agreement": False, "n_annotators": 1}
    assert metas[2]["gold_correct"] is None  # gold stays out of Label Studio unless asked
    assert set(report.task_meta(task_ids=[1, 3])) == {1, 3}
    exposed = compute_project_quality(
        table, controls, gold, options=QualityOptions(gold_in_meta=True, drift=False)
    )
    assert exposed.task_meta()[2]["gold_correct"] is True and exposed.task_meta()[1]["gold_correct"] is None
    payload = json.loads(json.dumps(report.to_dict()))
    assert payload["summary"]["n_tasks"] == 4 and payload["summary"]["low_agreement_tasks"] == 1
    assert payload["agreement"]["percent_agreement"] == pytest.approx(round((1 + 1 / 3 + 1) / 3, 4))
    annotators = {row["annotator"]: row for row in payload["annotators"]}
    assert annotators["3"]["gold_accuracy"] == 0.0 and annotators["1"]["gold_accuracy"] == 1.0
    assert annotators["1"]["lead_time_median"] == 5.0 and annotators["1"]["n_annotations"] == 4


def test_meta_is_stable_when_nothing_changes() -> None:
    controls = controls_from_config(CONFIG)
    answers = {t: ["spam", "ham", "spam"] for t in range(1, 6)}
    table = tasks_to_table(project_tasks(answers, spans=True), controls)
    first = compute_project_quality(table, controls).task_meta()
    second = compute_project_quality(table.sample(frac=1.0, random_state=3), controls).task_meta()
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    meta = first[1]
    # Two controls: the top level summarizes, "controls" has each one.
    assert set(meta["controls"]) == {"label", "ents"}
    assert meta["controls"]["ents"]["consensus"] is None and meta["controls"]["ents"]["method"] == "medoid"
    assert meta["controls"]["ents"]["consensus_annotation"] in {1, 2}
    # ents: annotators 1 and 2 marked Maria, 3 marked nothing: pairs 1, 0, 0.
    assert meta["controls"]["ents"]["agreement"] == 0.333 and meta["controls"]["label"]["agreement"] == 0.333
    assert meta["agreement"] == 0.333 and meta["low_agreement"] is True


def test_metrics_command_on_a_crowd_csv(capsys: pytest.CaptureFixture[str]) -> None:
    folder = SHARED_DATASETS / "snow2008_wsd"
    args = ["metrics", str(folder / "labels.csv"), "--gold", str(folder / "gold.csv"), "--json"]
    assert main([*args, "--methods", "majority_vote,dawid_skene"]) == 0
    payload = json.loads(capsys.readouterr().out)
    methods = payload["consensus"]["methods"]
    assert set(methods) == {"majority_vote", "dawid_skene"}
    assert methods["dawid_skene"]["gold_accuracy"] == pytest.approx(0.9944, abs=1e-4)
    assert payload["consensus"]["chosen"] == "dawid_skene"
    assert payload["agreement"]["krippendorff_alpha"] == pytest.approx(0.937, abs=0.001)
    assert payload["summary"]["n_annotators"] == 34 and len(payload["annotators"]) == 34


def test_metrics_command_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["metrics", str(tmp_path / "nothing.csv")]) == 2
    assert "neither a project id nor an existing file" in capsys.readouterr().err
    labels = SHARED_DATASETS / "snow2008_wsd" / "labels.csv"
    assert main(["metrics", str(labels), "--methods", "wawa"]) == 2
    assert "unknown wawa" in capsys.readouterr().err
    assert main(["metrics", str(labels), "--methods", "majority_vote", "--escalate"]) == 2
    assert "--escalate needs a project id" in capsys.readouterr().err
