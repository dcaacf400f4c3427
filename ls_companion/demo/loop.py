"""The demo's loop, against any running Label Studio and ML backend (the CLI starts local ones).

Bootstrap the example project, then round after round: import a batch chosen by active learning
(cold start: diversity; then hybrid on the backend's scores, with its pre-labels), let the simulated
annotators answer through the API, and retrain. Finally sync the quality into Label Studio and write
the report. A rerun continues where the last run stopped: full rounds are kept, a cut round resumes.
"""

from __future__ import annotations

import csv
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np

from ls_companion import META_NAMESPACE
from ls_companion.bootstrap import bootstrap, load_spec
from ls_companion.bootstrap.spec import read_spec
from ls_companion.client import LabelStudioClient
from ls_companion.demo.annotators import PERSONAS, ChoiceControl, Persona, annotate, ensure_users
from ls_companion.demo.corpus import EXAMPLE_CORPUS, LABELS, Review, read_csv, write_csv
from ls_companion.errors import BackendUnavailable, InputError
from ls_companion.gate import check_project
from ls_companion.records import Task
from ls_companion.selection.importer import SelectReport, SelectRequest, run_select
from ls_companion.selection.resolve import http_scorer
from ls_companion.settings import Settings
from ls_companion.sync.engine import SyncResult, sync_inline
from ls_companion.sync.options import spec_options

DEMO_SPEC = Path(__file__).resolve().parents[2] / "examples" / "demo.yaml"
CONTROL = ChoiceControl("label", "text", LABELS)

Say = Callable[[str], None]
T = TypeVar("T")


@dataclass(frozen=True)
class Round:
    """One active-learning round: how many tasks to import, and how many of them the annotators label."""

    batch: int
    annotate: int


@dataclass(frozen=True)
class DemoPlan:
    spec: Path = DEMO_SPEC
    corpus: Path = EXAMPLE_CORPUS
    rounds: tuple[Round, ...] = (Round(60, 60), Round(60, 40), Round(40, 0))
    gold_items: int = 40  # held out of the pool; gold_rate of each batch comes from them
    gold_rate: float = 0.1
    per_task: int = 3  # simulated annotators per task (the spec's overlap)
    strategy: str = "hybrid"
    seed: int = 0
    personas: tuple[Persona, ...] = PERSONAS
    training_timeout: float = 180.0


@dataclass
class DemoResult:
    project_id: int
    project_url: str
    rounds: list[dict[str, Any]] = field(default_factory=list)
    annotations: int = 0
    model_versions: list[str] = field(default_factory=list)
    sync: dict[str, Any] = field(default_factory=dict)
    report_html: Path | None = None
    pilot_gate: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "project_id": self.project_id,
            "project_url": self.project_url,
            "rounds": self.rounds,
            "annotations_simulated": self.annotations,
            "model_versions": self.model_versions,
            "sync": self.sync,
            "pilot_gate": self.pilot_gate,
            "report": str(self.report_html) if self.report_html else None,
        }


@dataclass(frozen=True)
class DemoFiles:
    pool: Path
    gold: Path
    truth: dict[str, str]  # review text -> its true label


def prepare_files(corpus: Path, folder: Path, gold_items: int, seed: int) -> DemoFiles:
    """Split the corpus into the unlabeled pool (``id,text``) and the gold file (``text,answer``)."""
    if not corpus.is_file():
        raise InputError(f"{corpus}: no such corpus file")
    reviews = read_csv(corpus)
    order = np.random.default_rng(seed).permutation(len(reviews))
    gold = [reviews[i] for i in order[:gold_items]]
    pool = [reviews[i] for i in order[gold_items:]]
    folder.mkdir(parents=True, exist_ok=True)
    pool_path = write_csv(pool, folder / "pool.csv", with_label=False)
    gold_path = folder / "gold.csv"
    _write_gold(gold, gold_path)
    return DemoFiles(pool_path, gold_path, {r.text: r.label for r in reviews})


def _write_gold(reviews: Sequence[Review], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["text", "answer"])
        writer.writerows([r.text, r.label] for r in reviews)


class BackendWatch:
    """Reads the ML backend's published versions for one project (``GET /versions``)."""

    def __init__(self, url: str, project_id: int, auth: tuple[str, str] | None) -> None:
        self._url, self._project_id, self._auth = url.rstrip("/"), project_id, auth

    def latest(self) -> str | None:
        try:
            response = httpx.get(
                f"{self._url}/versions", params={"project": self._project_id}, auth=self._auth, timeout=10
            )
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise BackendUnavailable(f"read the ML backend's versions at {self._url}: {exc}") from None
        latest = response.json().get("latest")
        return str(latest) if latest else None


def _round_tasks(client: LabelStudioClient, project_id: int, al_round: int) -> list[Task]:
    return [
        task
        for task in client.list_tasks(project_id)
        if (task.meta.get(META_NAMESPACE) or {}).get("al_round") == al_round
    ]


def _train_and_wait(
    client: LabelStudioClient, project_id: int, watch: BackendWatch, timeout: float, say: Say
) -> str:
    """Press Label Studio's "Start training" and wait until the backend published a new version and
    pointed the project at it (it pushes the new version's pre-labels first)."""
    before = watch.latest()
    backend = client.connected_backend(project_id)
    if backend is None:
        raise InputError(f"project {project_id} has no ML backend connected")
    client.train(backend.id)
    say("training the model (Label Studio's Start training -> the backend's /webhook)")
    deadline = time.monotonic() + timeout
    latest = _wait(deadline, lambda: v if (v := watch.latest()) and v != before else None)
    if latest is None:
        raise BackendUnavailable(
            f"the ML backend published no new model within {timeout:.0f} s (see its log)"
        )
    if any(not t.annotations for t in client.list_tasks(project_id, data=False)):
        # The backend pushes the new version's pre-labels for unlabeled tasks, then points the project
        # at it (so the uncertainty stream ranks by its scores).
        moved = _wait(deadline, lambda: client.get_project(project_id).model_version == latest or None)
        if moved is None:
            raise BackendUnavailable(f"the project was not pointed at model {latest} (see the backend's log)")
    return latest


def _wait(deadline: float, probe: Callable[[], T | None]) -> T | None:
    while time.monotonic() < deadline:
        value = probe()
        if value is not None:
            return value
        time.sleep(1.0)
    return None


def _pilot_gate(
    client: LabelStudioClient, settings: Settings, project_id: int, plan: DemoPlan, say: Say
) -> dict[str, Any]:
    gate = check_project(client, settings, project_id, stage="pilot", spec=read_spec(plan.spec).gate)
    say(f"pilot gate: {'pass' if gate.passed else 'FAIL'}")
    for criterion in gate.criteria:
        say(f"  {'ok  ' if criterion.passed else 'FAIL'} {criterion.name}: {criterion.detail}")
    if not gate.passed:
        say("  a real team would act on this before scaling; the demo goes on to show the rest")
    return gate.to_dict()


def run_demo_loop(
    client: LabelStudioClient,
    settings: Settings,
    plan: DemoPlan,
    *,
    say: Say,
    write_report: Callable[[int], Path] | None = None,
) -> DemoResult:
    """Bootstrap, rounds of select -> simulated annotation -> training, then sync and report."""
    folder = settings.data_dir / "demo"
    files = prepare_files(plan.corpus, folder, plan.gold_items, plan.seed)
    boot = bootstrap(client, load_spec(plan.spec, settings), data_dir=settings.data_dir)
    project_id = boot.project_id
    say(f"project {project_id}: {'created' if boot.created else 'found'} ({len(boot.changes)} changes)")
    result = DemoResult(project_id, boot.project_url)
    users = ensure_users(client, plan.personas)
    say(f"simulated annotators: {', '.join(f'{p.name} ({p.accuracy:.0%})' for p in plan.personas)}")
    watch = BackendWatch(settings.ml_backend_url or "", project_id, settings.ml_backend_auth)
    rng = np.random.default_rng(plan.seed)
    for number, spec in enumerate(plan.rounds, start=1):
        summary, tasks = _import_round(client, settings, plan, files, project_id, number, spec)
        todo = [t for t in tasks if not t.annotations][: max(0, spec.annotate - _annotated(tasks))]
        made = annotate(
            client,
            todo,
            lambda task: files.truth[str(task.data.get("text"))],
            CONTROL,
            users,
            plan.personas,
            per_task=plan.per_task,
            rng=rng,
        )
        result.annotations += made
        say(
            f"round {number}: {summary['imported']} tasks imported ({summary['strategy']}, "
            f"{summary['gold_imported']} gold), model {summary['model_version'] or 'none yet'}; "
            f"{made} simulated annotations"
        )
        result.rounds.append({**summary, "annotations": made})
        if number == 1:  # the first round is the pilot: would a team scale up now?
            result.pilot_gate = _pilot_gate(client, settings, project_id, plan, say)
        if made:
            result.model_versions.append(
                _train_and_wait(client, project_id, watch, plan.training_timeout, say)
            )
            say(f"model {result.model_versions[-1]} published; its pre-labels are in Label Studio")
    options = spec_options(read_spec(plan.spec).sync, plan.spec.parent)
    synced: SyncResult = sync_inline(settings, client, project_id, options)
    result.sync = synced.to_json()
    say(f"sync: quality written to {result.sync.get('patches', 0)} tasks")
    if write_report is not None:
        result.report_html = write_report(project_id)
    return result


def _import_round(
    client: LabelStudioClient,
    settings: Settings,
    plan: DemoPlan,
    files: DemoFiles,
    project_id: int,
    number: int,
    spec: Round,
) -> tuple[dict[str, Any], list[Task]]:
    """Round ``number``'s tasks, imported by active learning unless an earlier run already did.

    A full round is left alone (``select`` would open a new round for the retrained model); a round
    cut short by a crash is resumed by ``select`` itself.
    """
    present = _round_tasks(client, project_id, number)
    if len(present) >= spec.batch:
        ours = [t.meta[META_NAMESPACE] for t in present]
        summary = {
            "al_round": number,
            "strategy": Counter(o.get("strategy") for o in ours).most_common(1)[0][0],
            "model_version": ours[0].get("model_version"),
            "imported": 0,
            "gold_imported": 0,
            "control_imported": 0,
        }
        return summary, present
    request = SelectRequest(
        project_id=project_id,
        pool=files.pool,
        strategy=plan.strategy,
        batch=spec.batch,
        seed=plan.seed,
        gold=files.gold,
        gold_rate=plan.gold_rate,
        with_predictions=True,
        id_column="id",
        cold_start="diversity",
    )
    scorer = http_scorer(settings, client, project_id, "auto")
    try:
        report = run_select(client, scorer, request, data_dir=settings.data_dir)
    finally:
        if scorer is not None:
            scorer.close()
    if report.al_round != number:
        raise InputError(
            f"project {project_id} holds active-learning rounds the demo did not make: "
            "run `ls-companion demo --fresh`"
        )
    return _round_summary(report), _round_tasks(client, project_id, number)


def _annotated(tasks: Sequence[Task]) -> int:
    return sum(1 for t in tasks if t.annotations)


def _round_summary(report: SelectReport) -> dict[str, Any]:
    keys = ("al_round", "strategy", "model_version", "imported", "gold_imported", "control_imported")
    payload = report.to_json()
    return {k: payload[k] for k in keys}
