"""`ls-companion bootstrap` against the real Label Studio."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from ls_companion.bootstrap import bootstrap, load_spec
from ls_companion.bootstrap.apply import LABEL_ERRORS_VIEW, NO_LABEL_ERRORS_TAB, Change
from ls_companion.client import LabelStudioClient
from ls_companion.localserver import LabelStudioProcess, free_port
from ls_companion.settings import Settings
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration

CONFIGS = sorted(p.stem for p in (REPO_ROOT / "label_configs").glob("*.xml"))


def write_spec(folder: Path, spec: dict[str, object], name: str = "spec.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def samples_as_jsonl(config: str, folder: Path) -> Path:
    """The config's sample tasks as a pilot file (one JSON object of task data per line)."""
    tasks = json.loads((REPO_ROOT / "label_configs" / f"{config}.sample.json").read_text())
    path = folder / f"{config}.jsonl"
    path.write_text("".join(json.dumps(t["data"]) + "\n" for t in tasks))
    return path


def run_cli(args: list[str], settings: Settings, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {
        **os.environ,
        "LABEL_STUDIO_URL": settings.label_studio_url,
        "LABEL_STUDIO_API_KEY": settings.require_api_key(),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "ls_companion", *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
    )


@pytest.mark.parametrize("config", CONFIGS)
def test_every_label_config_bootstraps_and_a_second_run_is_a_no_op(
    config: str, ls_client: LabelStudioClient, ls_settings: Settings, tmp_path: Path
) -> None:
    pilot = samples_as_jsonl(config, tmp_path)
    spec = write_spec(
        tmp_path, {"title": f"bootstrap {config}", "label_config": config, "pilot": {"file": pilot.name}}
    )

    first = bootstrap(ls_client, load_spec(spec, ls_settings))
    assert first.created is True
    project = ls_client.get_project(first.project_id)
    assert project.label_config == (REPO_ROOT / "label_configs" / f"{config}.xml").read_text().strip()
    assert project.show_instruction is True
    assert "<h2>Rules</h2>" in project.expert_instruction  # the config's guidelines template, as HTML
    n_samples = len(json.loads((REPO_ROOT / "label_configs" / f"{config}.sample.json").read_text()))
    assert first.changes == [
        Change("pilot tasks", 0, n_samples),
        Change("Data Manager tab 'Possible label errors'", "absent", "created"),
    ]
    assert project.task_number == n_samples

    second = bootstrap(ls_client, load_spec(spec, ls_settings))
    assert (second.project_id, second.created, second.changes) == (first.project_id, False, [])
    assert ls_client.get_project(first.project_id).task_number == n_samples


def test_a_changed_spec_updates_only_what_changed(
    ls_client: LabelStudioClient, ls_settings: Settings, tmp_path: Path
) -> None:
    spec: dict[str, object] = {"title": "bootstrap overlap", "label_config": "sentiment.xml"}
    first = bootstrap(ls_client, load_spec(write_spec(tmp_path, spec), ls_settings))
    assert ls_client.get_project(first.project_id).maximum_annotations == 1

    spec["overlap"] = {"maximum_annotations": 3}
    spec["sampling"] = "uncertainty"
    result = bootstrap(ls_client, load_spec(write_spec(tmp_path, spec), ls_settings))
    assert result.project_id == first.project_id
    assert sorted(result.changes, key=lambda c: c.what) == [
        Change("maximum_annotations", 1, 3),
        Change("sampling", "Sequential sampling", "Uncertainty sampling"),
    ]
    project = ls_client.get_project(first.project_id)
    assert (project.maximum_annotations, project.sampling) == (3, "Uncertainty sampling")


def test_pilot_picks_a_stable_sample_and_a_bigger_pilot_adds_only_new_items(
    ls_client: LabelStudioClient, ls_settings: Settings, tmp_path: Path
) -> None:
    rows = "id,text\n" + "".join(f"i{i},text number {i}\n" for i in range(300))
    (tmp_path / "pool.csv").write_text(rows)
    spec: dict[str, object] = {
        "title": "bootstrap pilot",
        "label_config": "text_classification",
        "pilot": {"file": "pool.csv", "size": 100, "id_column": "id"},
    }
    first = bootstrap(ls_client, load_spec(write_spec(tmp_path, spec), ls_settings))
    tasks = list(ls_client.list_tasks(first.project_id))
    first_ids = {t.meta["ls_companion"]["source_id"] for t in tasks}
    assert len(first_ids) == 100
    assert all(t.data == {"text": f"text number {t.meta['ls_companion']['source_id'][1:]}"} for t in tasks)

    spec["pilot"] = {"file": "pool.csv", "size": 150, "id_column": "id"}
    result = bootstrap(ls_client, load_spec(write_spec(tmp_path, spec), ls_settings))
    assert result.changes == [Change("pilot tasks", 100, 150)]
    after = {t.meta["ls_companion"]["source_id"] for t in ls_client.list_tasks(first.project_id)}
    assert len(after) == 150 and first_ids < after


def test_cli_reports_no_changes_on_the_second_run(ls_settings: Settings, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, {"title": "bootstrap cli", "label_config": "ner"})
    created = run_cli(["bootstrap", str(spec), "--json"], ls_settings)
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["created"] is True

    again = run_cli(["bootstrap", str(spec)], ls_settings)
    assert again.returncode == 0, again.stderr
    assert "unchanged" in again.stdout and "no changes" in again.stdout


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"title": "bad overlap", "label_config": "ner", "overlap": {"maximum_annotations": 0}},
            "overlap.maximum_annotations: Input should be greater than or equal to 1",
        ),
        (
            {"title": "bad config", "label_config": "no_such_config"},
            "label_config: no file 'no_such_config'",
        ),
        ({"label_config": "ner"}, "title: Field required"),
        (
            {"title": "typo", "label_config": "ner", "overlapp": 3},
            "overlapp: Extra inputs are not permitted",
        ),
        (
            {
                "title": "bad xml",
                "label_config": "<View><Text name='t' value='$text'/><Choices name='c' toName='x'/></View>",
            },
            "label_config: not a valid labeling config",
        ),
        (
            {"title": "bad pilot", "label_config": "ner", "pilot": {"file": "missing.csv"}},
            "pilot.file: no file",
        ),
    ],
)
def test_bad_specs_fail_with_the_file_the_field_path_and_exit_code_2(
    spec: dict[str, object], message: str, ls_settings: Settings, tmp_path: Path
) -> None:
    path = write_spec(tmp_path, spec)
    result = run_cli(["bootstrap", str(path)], ls_settings)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {path}: {message}")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_wrong_token_and_unreachable_server_fail_fast_with_one_line(
    label_studio: LabelStudioProcess, ls_settings: Settings, tmp_path: Path
) -> None:
    spec = str(write_spec(tmp_path, {"title": "never created", "label_config": "ner"}))
    started = time.monotonic()
    wrong = run_cli(["bootstrap", spec], ls_settings, LABEL_STUDIO_API_KEY="wrong-token")
    assert wrong.returncode == 3
    assert "rejected the API key" in wrong.stderr and "Traceback" not in wrong.stderr

    down = run_cli(["bootstrap", spec], ls_settings, LABEL_STUDIO_URL=f"http://127.0.0.1:{free_port()}")
    assert down.returncode == 3
    assert "cannot reach Label Studio" in down.stderr.splitlines()[-1]
    assert time.monotonic() - started < 20  # both runs, each well under 10 s


def test_the_label_errors_tab_lists_likely_errors_most_likely_first(
    ls_client: LabelStudioClient, ls_settings: Settings, tmp_path: Path
) -> None:
    spec = write_spec(tmp_path, {"title": "bootstrap label errors tab", "label_config": "sentiment.xml"})
    project_id = bootstrap(ls_client, load_spec(spec, ls_settings)).project_id
    (view,) = [v for v in ls_client.list_views(project_id) if v["data"]["title"] == "Possible label errors"]
    assert view["data"]["filters"] == LABEL_ERRORS_VIEW["filters"]
    # the sync mirrors each task's label-issue score into data.lsc_label_issue
    scores = [0.2, 0.93, None, 0.71, 0.5, 0.99]
    tasks = ls_client.import_tasks(
        project_id,
        [
            {"data": {"text": f"r{i}", **({"lsc_label_issue": s} if s is not None else {})}}
            for i, s in enumerate(scores)
        ],
    )
    listed = ls_client._raw(
        "GET", "api/tasks/", params={"project": project_id, "view": view["id"], "fields": "all"}
    )
    assert [t["id"] for t in listed["tasks"]] == [tasks[5], tasks[1], tasks[3]]
    assert bootstrap(ls_client, load_spec(spec, ls_settings)).changes == []  # the tab is made once


def test_a_mirror_without_label_issue_warns_in_one_line_and_makes_no_empty_tab(
    ls_client: LabelStudioClient, ls_settings: Settings, tmp_path: Path
) -> None:
    spec: dict[str, object] = {
        "title": "bootstrap own mirror",
        "label_config": "sentiment.xml",
        "sync": {"mirror": ["agreement"]},
    }
    result = run_cli(["bootstrap", str(write_spec(tmp_path, spec)), "--json"], ls_settings)
    assert result.returncode == 0, result.stderr
    assert result.stderr == f"warning: {NO_LABEL_ERRORS_TAB}\n"
    project_id = json.loads(result.stdout)["project_id"]
    assert json.loads(result.stdout)["warnings"] == [NO_LABEL_ERRORS_TAB]
    assert LABEL_ERRORS_VIEW["title"] not in [v["data"]["title"] for v in ls_client.list_views(project_id)]
    # listing it (as the default mirror does) makes the tab on the next run, and the warning goes
    spec["sync"] = {"mirror": ["agreement", "label_issue"]}
    again = bootstrap(ls_client, load_spec(write_spec(tmp_path, spec), ls_settings))
    assert again.warnings == [] and [c.what for c in again.changes] == [
        f"Data Manager tab {LABEL_ERRORS_VIEW['title']!r}"
    ]
