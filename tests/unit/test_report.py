"""The report on hand-built projects: its numbers are the engine's, every plot is a PNG, the page is whole."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import matplotlib.image
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score

from ls_companion import META_NAMESPACE
from ls_companion.cli import main
from ls_companion.client import RetryPolicy
from ls_companion.errors import InputError
from ls_companion.projectdata import project_dir
from ls_companion.quality import adapter, consensus
from ls_companion.quality.engine import QualityOptions, compute_project_quality, consensus_methods
from ls_companion.quality.label_issues import task_label_issues
from ls_companion.quality.records import Box, Span, controls_from_config
from ls_companion.records import Task
from ls_companion.report import PLOTS, save_report
from ls_companion.report.gather import (
    NO_BACKEND,
    ProjectInfo,
    ReportInputs,
    build_report,
    drift_series,
    fetch_models,
    labels_of,
    models_section,
    no_models,
    stored_tasks,
)
from ls_companion.report.plots import no_data, render_plots
from ls_companion.sync.store import AnnotationStore, Snapshot

CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Choices name="label" toName="text"><Choice value="ham"/><Choice value="spam"/></Choices>
</View>"""
CONTROLS = controls_from_config(CONFIG)
FAST = (consensus.MAJORITY_VOTE, consensus.DAWID_SKENE)
USERS = {"1": "ann@example.com", "2": "bob@example.com", "3": "cyd@example.com"}
N_TASKS = 120
SECTIONS = ("summary", "agreement", "annotators", "consensus", "qualification", "drift", "labels", "models")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def truth(t: int) -> str:
    return "spam" if t % 2 else "ham"


def flip(label: str) -> str:
    return "ham" if label == "spam" else "spam"


def answer(t: int, user: int) -> str:
    """User 1 is always right; user 2 misses every 5th task; user 3 misses every 2nd after task 60 (drift)."""
    if (user == 2 and t % 5 == 0) or (user == 3 and t > N_TASKS // 2 and t % 2 == 0):
        return flip(truth(t))
    return truth(t)


def choice(value: str) -> dict[str, Any]:
    return {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [value]}}


def round_meta(t: int) -> dict[str, Any]:
    if t <= 20:
        return {"al_round": 0, "strategy": "pilot"}
    if t <= 70:
        return {
            "al_round": 1,
            "strategy": "entropy" if t % 5 else "random",
            "uncertainty": 0.5,
            "model_version": "v1",
        }
    return {"al_round": 2, "strategy": "entropy", "uncertainty": 0.25, "model_version": "v2"}


def project_tasks() -> list[Task]:
    tasks, next_id = [], 0
    for t in range(1, N_TASKS + 1):
        annotations = []
        for user in (1, 2, 3):
            next_id += 1
            minute = next_id  # one answer a minute, in task order: time order is drift's order
            stamp = f"2026-11-01T{8 + minute // 60:02d}:{minute % 60:02d}:00Z"
            annotations.append(
                {"id": next_id, "completed_by": user, "result": [choice(answer(t, user))],
                 "created_at": stamp, "lead_time": 4.0 + user}
            )  # fmt: skip
        meta = {META_NAMESPACE: {"source_id": f"s{t}", **round_meta(t)}}
        tasks.append(Task.from_api({"id": t, "annotations": annotations, "meta": meta}))
    tasks.append(Task.from_api({"id": 999, "meta": {}}))  # imported by hand: no round, no answer
    return tasks


def gold_answers() -> pd.DataFrame:
    return pd.DataFrame([{"task_id": t, "control": "label", "value": truth(t)} for t in range(1, 31)])


VERSIONS_BODY = {
    "project": 7,
    "latest": "20261128T050000.000000Z",
    "details": [  # newest first, as GET /versions answers
        {"version": "20261128T050000.000000Z", "created_at": "2026-11-28T05:00:00+00:00",
         "controls": {"label": {"kind": "single", "training_size": 100,
                                "holdout": {"size": 20, "accuracy": 0.9, "macro_f1": 0.88},
                                "model": {"chosen": "union-balanced-C10", "calibration": {"method": "platt"},
                                          "cv_ece": 0.0128, "folds": 5,
                                          "candidates": [{"name": "word-C10", "log_loss": 0.19, "macro_f1": 0.77,
                                                          "accuracy": 0.91},
                                                         {"name": "union-balanced-C10", "log_loss": 0.13,
                                                          "macro_f1": 0.93, "accuracy": 0.97}]}}},
         "training": {"annotated_tasks": 100}},
        {"version": "20261128T040000.000000Z", "created_at": "2026-11-28T04:00:00+00:00",
         "controls": {"label": {"kind": "single", "training_size": 40,
                                "holdout": {"size": 8, "accuracy": 0.75, "macro_f1": 0.7}}},
         "training": {"annotated_tasks": 40}},
    ],
}  # fmt: skip


def inputs(tasks: list[Task] | None = None, models: dict[str, Any] | None = None) -> ReportInputs:
    tasks = project_tasks() if tasks is None else tasks
    return ReportInputs(
        project=ProjectInfo(7, "Spam <b>check</b>", "http://ls.test/projects/7/", len(tasks), N_TASKS),
        data=adapter.from_tasks(tasks, CONTROLS, 7),
        gold=gold_answers(),
        metas={t.id: t.meta.get(META_NAMESPACE, {}) for t in tasks},
        users=USERS,
        models=models if models is not None else models_section(VERSIONS_BODY, "http://ml.test"),
        # LS's counts: the latest version, a pruned one left behind, and the project's own at 0
        prediction_counts={"20261128T050000.000000Z": 30, "20261127T090000.000000Z": 1500, "": 0},
    )


@pytest.fixture(scope="module")
def payload() -> dict[str, Any]:
    return build_report(inputs(), methods=FAST)


def without_seconds(value: Any) -> Any:
    """Consensus timings differ from run to run; every other number must be the same."""
    if isinstance(value, dict):
        return {k: without_seconds(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [without_seconds(v) for v in value]
    return value


def engine_dict(data: ReportInputs) -> dict[str, Any]:
    report = compute_project_quality(
        data.data.table, CONTROLS, data.gold, data.data.predictions, QualityOptions(methods=FAST)
    )
    result: dict[str, Any] = json.loads(json.dumps(report.to_dict(), default=str))
    return result


# -- numbers ------------------------------------------------------------------------------------------------------


def test_the_report_holds_the_engine_numbers_unchanged(payload: dict[str, Any]) -> None:
    engine = engine_dict(inputs())
    assert set(engine) <= set(payload)
    for key, value in engine.items():
        assert without_seconds(payload[key]) == without_seconds(value), key
    assert payload["summary"]["n_tasks"] == N_TASKS and payload["summary"]["n_annotations"] == 3 * N_TASKS
    assert payload["agreement"]["krippendorff_alpha"] == engine["agreement"]["krippendorff_alpha"]
    accuracy = {row["annotator"]: row["gold_accuracy"] for row in payload["annotators"]}
    assert accuracy == {"1": 1.0, "2": 0.8, "3": 1.0}  # gold is tasks 1-30: user 3 drifts later
    assert payload["drift"]["alerts"], "user 3's late errors are a drift"
    assert payload["annotator_names"] == USERS
    assert payload["options"]["methods"] == list(FAST)
    assert json.loads(json.dumps(payload)) == payload  # plain JSON already


def test_pair_agreement_and_cohen_kappa_per_pair(payload: dict[str, Any]) -> None:
    pairs = {(p["annotator_a"], p["annotator_b"]): p for p in payload["pair_agreement"]["label"]}
    assert set(pairs) == {("1", "2"), ("1", "3"), ("2", "3")}
    assert all(p["n_tasks"] == N_TASKS for p in pairs.values())
    ts = range(1, N_TASKS + 1)
    same_12 = sum(answer(t, 1) == answer(t, 2) for t in ts) / N_TASKS
    assert pairs[("1", "2")]["agreement"] == pytest.approx(same_12, abs=1e-4)
    assert pairs[("1", "2")]["agreement"] == pytest.approx(0.8, abs=1e-4)
    expected = cohen_kappa_score([answer(t, 2) for t in ts], [answer(t, 3) for t in ts])
    assert pairs[("2", "3")]["cohen_kappa"] == pytest.approx(expected, abs=1e-4)


def test_label_distribution_counts_answers_and_consensus(payload: dict[str, Any]) -> None:
    rows = {r["label"]: r for r in payload["label_distribution"]["label"]["labels"]}
    assert [r["label"] for r in payload["label_distribution"]["label"]["labels"]] == [
        "ham",
        "spam",
    ]  # config order
    answers = [answer(t, u) for t in range(1, N_TASKS + 1) for u in (1, 2, 3)]
    assert rows["spam"]["answers"] == answers.count("spam") and rows["ham"]["answers"] == answers.count("ham")
    assert rows["spam"]["consensus"] + rows["ham"]["consensus"] == N_TASKS
    assert rows["spam"]["answer_share"] == pytest.approx(answers.count("spam") / len(answers), abs=1e-4)


def test_labels_of_every_kind_of_answer() -> None:
    assert labels_of("spam") == ["spam"]
    assert labels_of(("a", "b")) == ["a", "b"]  # multiple choices
    assert labels_of((("Animal", "Cat"), ("Plant",))) == ["Animal / Cat", "Plant"]  # taxonomy paths
    assert labels_of((Span(0, 5, "PER", "Maria"), Span(9, 12, "LOC"))) == ["PER", "LOC"]
    assert labels_of((Box(1, 2, 3, 4, 0, "car"),)) == ["car"]
    assert labels_of(4.0) == ["4"] and labels_of(float("nan")) == [] and labels_of(None) == []


def test_drift_series_are_the_engine_windows(payload: dict[str, Any]) -> None:
    data = inputs()
    report = compute_project_quality(
        data.data.table, CONTROLS, data.gold, data.data.predictions, QualityOptions(methods=FAST)
    )
    assert payload["drift_series"] == drift_series(report.drift_series)
    project = [s for s in payload["drift_series"] if s["metric"] == "agreement" and s["scope"] == "project"]
    assert sum(s["n"] for s in project) == 3 * N_TASKS and project[0]["start"].startswith("2026-11-01T08:01")


def test_active_learning_rounds_from_task_meta(payload: dict[str, Any]) -> None:
    rounds = payload["active_learning"]["rounds"]
    assert [(r["round"], r["tasks"], r["annotated"]) for r in rounds] == [
        (0, 20, 20),
        (1, 50, 50),
        (2, 50, 50),
    ]
    assert rounds[0]["strategies"] == {"pilot": 20} and rounds[0]["mean_uncertainty"] is None
    assert rounds[1]["strategies"] == {"entropy": 40, "random": 10} and rounds[1]["mean_uncertainty"] == 0.5
    assert rounds[1]["model_versions"] == ["v1"] and rounds[2]["model_versions"] == ["v2"]
    assert [r["gold"] for r in rounds] == [20, 10, 0]
    assert payload["active_learning"]["tasks_without_round"] == 1


def test_models_oldest_first_and_absent_or_failing_backends() -> None:
    models = models_section(VERSIONS_BODY, "http://ml.test")
    assert models["available"] and models["latest"] == "20261128T050000.000000Z"
    assert [v["controls"]["label"]["training_size"] for v in models["versions"]] == [40, 100]
    assert [v["latest"] for v in models["versions"]] == [False, True]
    assert [(v["controls"]["label"]["model"] or {}).get("chosen") for v in models["versions"]] == [
        None,
        "union-balanced-C10",
    ]
    assert fetch_models(None, 7) == {**models, "available": False, "reason": NO_BACKEND, "backend_url": None,
                                     "latest": None, "versions": []}  # fmt: skip
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    quick = RetryPolicy(attempts=2, initial_wait=0.01, max_wait=0.01)
    closed = fetch_models(
        f"http://user:secret@127.0.0.1:{port}", 7, timeout=2, connect_timeout=1, retry=quick
    )
    assert not closed["available"] and "did not answer" in closed["reason"]
    assert "secret" not in json.dumps(closed)  # credentials in a URL are never shown
    empty = models_section({"latest": None, "details": []}, "http://ml.test")
    assert empty["available"] and empty["versions"] == [] and "no trained model" in empty["reason"]


def test_models_are_asked_again_after_a_server_error() -> None:
    answers = [(503, b"{}"), (429, b"{}"), (200, json.dumps(VERSIONS_BODY).encode())]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = answers.pop(0)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        models = fetch_models(url, 7, retry=RetryPolicy(attempts=3, initial_wait=0.01, max_wait=0.01))
    finally:
        server.shutdown()
        server.server_close()
    assert models["available"] and len(models["versions"]) == 2 and answers == []


def test_consensus_methods_follow_the_amount_of_gold() -> None:
    assert consensus_methods(gold_answers(), 10) == consensus.METHODS  # 30 gold tasks can choose
    assert consensus_methods(gold_answers().head(5), 10) == FAST


def test_an_empty_project_reports_without_failing(tmp_path: Path) -> None:
    tasks = [Task.from_api({"id": 1, "meta": {}})]
    data = ReportInputs(
        project=ProjectInfo(8, "Empty", "http://ls.test/projects/8/", 1),
        data=adapter.from_tasks(tasks, CONTROLS, 8),
        gold=pd.DataFrame(columns=["task_id", "control", "value"]),
        metas={1: {}},
    )
    payload = build_report(data)
    assert payload["summary"]["n_tasks"] == 0 and payload["models"]["reason"] == NO_BACKEND
    assert payload["active_learning"] == {"rounds": [], "tasks_without_round": 1}
    result = save_report(payload, tmp_path / "out")
    assert set(result.plots) == set(PLOTS) and all(
        p.read_bytes().startswith(PNG_SIGNATURE) for p in result.plots.values()
    )
    assert NO_BACKEND in result.html.read_text()


# -- plots and page ------------------------------------------------------------------------------------------------


def image_size(png: bytes) -> tuple[int, int]:
    pixels = matplotlib.image.imread(io.BytesIO(png), format="png")
    return int(pixels.shape[1]), int(pixels.shape[0])


def test_every_plot_is_a_png_and_no_data_is_a_panel(payload: dict[str, Any]) -> None:
    plots = render_plots(payload)
    assert tuple(plots) == PLOTS
    for name, png in plots.items():
        assert png.startswith(PNG_SIGNATURE), name
        width, height = image_size(png)
        assert 400 <= width <= 800 and height > 150, name
    empty = no_data("Drift over time", "needs two windows")
    assert empty.startswith(PNG_SIGNATURE) and image_size(empty) == (800, 180)
    # The same figures from the same numbers (plots are pure functions of the dict).
    assert render_plots(payload)["agreement_heatmap"] == plots["agreement_heatmap"]


def test_saved_report_files_and_self_contained_page(payload: dict[str, Any], tmp_path: Path) -> None:
    result = save_report(payload, tmp_path / "report")
    assert (
        result.html == tmp_path / "report" / "index.html"
        and result.json == tmp_path / "report" / "report.json"
    )
    on_disk = json.loads(result.json.read_text())
    assert on_disk == result.payload == {**payload, "plots": {n: f"plots/{n}.png" for n in PLOTS}}
    html = result.html.read_text()
    for section in (*SECTIONS, "active-learning"):
        assert f'<section id="{section}">' in html, section
    images = re.findall(r'<img class="plot" alt="[^"]+" src="data:image/png;base64,([^"]+)">', html)
    assert len(images) == len(PLOTS)
    assert {base64.b64decode(i) for i in images} == {p.read_bytes() for p in result.plots.values()}
    assert not re.search(r'(src|href)="(?!data:|#|http://ls\.test/projects/7/)', html)  # nothing to fetch
    assert "Spam &lt;b&gt;check&lt;/b&gt;" in html  # autoescaped
    assert "ann@example.com" in html and f"<b>{payload['agreement']['alpha_interpretation']}</b>" in html
    assert "20261128T050000.000000Z (latest)" in html
    assert "union-balanced-C10 · calibration platt · CV ECE 0.013" in html
    assert "word-C10: macro-F1 0.770, log-loss 0.190, accuracy 0.910" in html
    assert payload["models"]["label_studio_predictions"] == [
        {"model_version": "20261127T090000.000000Z", "predictions": 1500, "kept_by_backend": False},
        {"model_version": "20261128T050000.000000Z", "predictions": 30, "kept_by_backend": True},
    ]
    assert re.search(r"<td>20261127T090000.000000Z</td><td class=\"n\">1500</td><td>no</td>", html)
    assert "not among the backend's stored versions" in html
    unread = build_report(inputs(models=no_models("not read")), methods=FAST)["models"]
    assert [p["kept_by_backend"] for p in unread["label_studio_predictions"]] == [None, None]


def test_unwritable_folder_is_an_input_error(payload: dict[str, Any], tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="cannot write the report"):
        save_report(payload, blocker / "report")


# -- the sync's store and the command ---------------------------------------------------------------------------


def test_from_the_sync_store_gives_the_same_numbers(tmp_path: Path) -> None:
    tasks = project_tasks()
    with pytest.raises(InputError, match="no local store"):
        stored_tasks(tmp_path, 7)
    AnnotationStore(project_dir(tmp_path, 7)).append([Snapshot.of_task(t) for t in tasks if t.annotations])
    stored = stored_tasks(tmp_path, 7)
    assert [t.id for t in stored] == list(range(1, N_TASKS + 1))
    from_store = dataclasses.replace(inputs(), data=adapter.from_tasks(stored, CONTROLS, 7))
    assert without_seconds(engine_dict(from_store)) == without_seconds(engine_dict(inputs()))


def test_bad_methods_are_a_one_line_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["report", "--project", "1", "--out", str(tmp_path), "--methods", "vote"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--methods: unknown vote" in err and "Traceback" not in err


def test_possible_label_errors_from_the_label_issues_the_sync_stored(tmp_path: Path) -> None:
    # What the sync stores for tasks 1-6 (truth: odd spam, even ham): task 6's "ham" looks like spam.
    oof = {
        "task_ids": [1, 2, 3, 4, 5, 6],
        "classes": ["ham", "spam"],
        "proba": [[0.1, 0.9], [0.9, 0.1], [0.2, 0.8], [0.8, 0.2], [0.6, 0.4], [0.3, 0.7]],
    }
    stored = task_label_issues(oof, {t: truth(t) for t in range(1, 7)}, "v3")
    base = inputs()
    metas = {
        t: {**m, "quality": {"label_issue": stored[t]}} if t in stored else m for t, m in base.metas.items()
    }
    data = dataclasses.replace(base, metas=metas, texts={6: "win a <prize> now"})
    section = build_report(data, methods=FAST)["label_issues"]
    # Confident joint: of the 3 ham labels one (task 6) is confidently spam, no spam label is confidently
    # ham; the data implies one wrong label, so task 5 (score 0.6, confident of neither) is not flagged.
    assert section == {
        "n_judged": 6,
        "n_flagged": 1,
        "top": [{"task_id": 6, "text": "win a <prize> now", "label": "ham", "suggested": "spam",
                 "score": 0.7, "model_version": "v3"}],
        "noise": [{"label": "ham", "tasks": 3, "noise_rate": 0.3333, "estimated_wrong": 1},
                  {"label": "spam", "tasks": 3, "noise_rate": 0.0, "estimated_wrong": 0}],
    }  # fmt: skip
    html = save_report(build_report(data, methods=FAST), tmp_path / "out").html.read_text()
    assert (
        '<a href="http://ls.test/projects/7/data?task=6">6</a></td><td>win a &lt;prize&gt; now</td>' in html
    )
    assert '<td>ham</td><td class="n">3</td><td class="n">33.3' in html
