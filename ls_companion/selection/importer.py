"""``select``: score a pool, choose a batch, import it into Label Studio; idempotent and resumable.

The steps: read what the project holds (``rounds``), decide the round, scan and score the pool
(``scan``), plan the batch (``plan``), import what is missing in chunks, record gold answers locally
(``gold``), and write cluster ids onto the imported predictions (LS drops them on import).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ls_companion import META_NAMESPACE
from ls_companion.client import LabelStudioClient
from ls_companion.errors import InputError
from ls_companion.projectdata import GoldRecord, GoldStore, gold_store_path
from ls_companion.selection.gold import DEFAULT_ANSWER_COLUMN, GoldItem, check_answers, read_gold
from ls_companion.selection.plan import DEFAULT_RANDOM_FRACTION, PlannedItem, choose_strategy, plan_batch
from ls_companion.selection.prelabel import ControlInfo, find_control, prediction, project_controls
from ls_companion.selection.rounds import (
    ProjectState,
    RoundDecision,
    decide_round,
    last_round,
    read_project_state,
    request_key,
)
from ls_companion.selection.scan import (
    DEFAULT_CANDIDATES,
    PoolScan,
    ScanOptions,
    check_image_references,
    fetch_rows,
    item_data,
    scan_pool,
)
from ls_companion.selection.scoring import ScoreBatch, Scorer
from ls_companion.selection.strategies import Strategy, check_names, make_strategy
from ls_companion.sources import DEFAULT_CHUNK_ROWS, read_chunks, source_id

#: progress(stage, advance, total): stages "scoring pool" (rows), "importing" (tasks), "writing clusters".
Progress = Callable[[str, int, int | None], None]


@dataclass(frozen=True)
class SelectRequest:
    project_id: int
    pool: Path
    strategy: str = "entropy"
    batch: int = 100
    seed: int = 0
    random_fraction: float = DEFAULT_RANDOM_FRACTION
    gold: Path | None = None
    gold_rate: float = 0.05
    gold_answer_column: str = DEFAULT_ANSWER_COLUMN
    control: str | None = None
    with_predictions: bool = False
    dry_run: bool = False
    id_column: str | None = None
    text_column: str | None = None
    chunk_size: int = 500
    cold_start: str = "diversity"
    candidates: int = DEFAULT_CANDIDATES
    new_round: bool = False
    read_chunk_rows: int = DEFAULT_CHUNK_ROWS
    workers: int = 1

    def validate(self) -> None:
        check_names([self.strategy], self.cold_start)
        if min(self.batch, self.chunk_size, self.candidates, self.workers) < 1:
            raise InputError("--batch, --chunk-size, --candidates and --workers must be at least 1")
        for name, value in (("--random-fraction", self.random_fraction), ("--gold-rate", self.gold_rate)):
            if not 0.0 <= value <= 1.0:
                raise InputError(f"{name} must be between 0 and 1")

    @property
    def key(self) -> str:
        return request_key(
            strategy=self.strategy,
            batch=self.batch,
            seed=self.seed,
            random_fraction=self.random_fraction,
            gold_rate=self.gold_rate if self.gold is not None else 0.0,
            cold_start=self.cold_start,
        )


@dataclass
class SelectReport:
    project_id: int
    al_round: int
    request: str
    resumed: bool
    strategy: str
    model_version: str | None
    batch: int
    in_round_before: int = 0
    imported: int = 0
    gold_imported: int = 0
    control_imported: int = 0
    clusters_written: int = 0
    gold_records_repaired: int = 0
    pool_rows: int = 0
    pool_eligible: int = 0
    #: Pool rows the backend could not score (an image it could not fetch or decode): not selectable.
    pool_unscorable: int = 0
    dry_run: bool = False
    nothing_to_do: bool = False
    items: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Context:
    request: SelectRequest
    strategy: Strategy
    control: ControlInfo | None
    text_column: str | None
    gold: list[GoldItem]
    store: GoldStore
    #: ``text_column`` holds images (Image project): no text features, so no clustering.
    images: bool = False


def run_select(
    client: LabelStudioClient,
    scorer: Scorer | None,
    request: SelectRequest,
    *,
    data_dir: Path,
    progress: Progress | None = None,
) -> SelectReport:
    """Choose the next batch from ``request.pool`` and import it (the module docstring has the steps)."""
    request.validate()
    ctx = _context(client, request, data_dir)
    state = read_project_state(client, request.project_id)
    repaired = 0 if request.dry_run else _repair_gold_store(ctx, state)
    decision, version = _decide(ctx, state, scorer)
    if decision.complete:
        report = _report(ctx, decision, None, ctx.strategy.name)
        report.nothing_to_do, report.gold_records_repaired, report.model_version = True, repaired, version
        if request.with_predictions and not request.dry_run:
            report.clusters_written = _write_clusters(client, request, decision.al_round, progress)
        return report

    exclude = state.source_ids - decision.members
    scan = scan_pool(
        request.pool,
        scorer,
        exclude=exclude,
        options=_scan_options(ctx),
        on_rows=(lambda n: progress("scoring pool", n, None)) if progress else None,
    )
    # Images have no text to cluster: their cold start is a seeded uniform pick.
    strategy = choose_strategy(ctx.strategy, scan.pool, "random" if ctx.images else request.cold_start)
    rng = np.random.default_rng([request.seed, decision.al_round])
    plan = plan_batch(
        scan.pool,
        strategy,
        request.batch,
        rng,
        candidates=scan.candidates,
        random_fraction=request.random_fraction,
        gold_ids=[g.source_id for g in ctx.gold if g.source_id not in exclude],
        gold_rate=request.gold_rate if ctx.gold else 0.0,
    )
    # Already imported members count toward the batch; the rest of the plan fills it up, in plan order.
    missing = [p for p in plan if p.source_id not in state.source_ids]
    to_import = missing[: max(0, request.batch - len(decision.members))]
    report = _report(ctx, decision, scan, strategy.name)
    report.gold_records_repaired = repaired
    tasks = _build_tasks(ctx, scan, scorer, to_import, decision.al_round)
    report.items = [_describe(p, t, request.dry_run) for p, t in zip(to_import, tasks, strict=True)]
    if request.dry_run:
        return report
    _import(client, ctx, to_import, tasks, report, progress)
    if request.with_predictions:
        report.clusters_written = _write_clusters(client, request, decision.al_round, progress)
    return report


# -- setup and decision -------------------------------------------------------------------------------


def _context(client: LabelStudioClient, request: SelectRequest, data_dir: Path) -> _Context:
    project = client.get_project(request.project_id)
    controls = project_controls(project.label_config)
    control = find_control(controls, request.control)
    text_column = request.text_column or (control.data_key if control else None)
    if text_column is None:
        text_column = next((c.data_key for c in controls if c.data_key), None)
    images = any(c.object_tag == "image" and c.data_key == text_column for c in controls)
    strategy = make_strategy(request.strategy)
    if images and strategy.needs_features:
        raise InputError(
            f"--strategy {strategy.name} clusters item texts, and column {text_column!r} holds images: "
            "use random or an uncertainty strategy (entropy, margin, least-confidence, balanced)"
        )
    gold: list[GoldItem] = []
    if request.gold is not None:
        if control is None:
            raise InputError("--gold needs a Choices or Labels control in the label config (or --control)")
        gold = read_gold(request.gold, answer_column=request.gold_answer_column, multiple=control.multiple)
        check_answers(gold, control.name, control.labels if control.tag == "choices" else ())
        if images:
            where = f"{request.gold}: column {text_column!r}"
            check_image_references(where, [g.data.get(str(text_column)) for g in gold])
    store = GoldStore(gold_store_path(data_dir, request.project_id))
    return _Context(request, strategy, control, text_column, gold, store, images)


def _decide(ctx: _Context, state: ProjectState, scorer: Scorer | None) -> tuple[RoundDecision, str | None]:
    """The round of this run, and the current model version when it had to be asked for."""
    request = ctx.request
    last = None if request.new_round else last_round(state, request.key)
    version = None
    if last is not None and len(last.members) >= request.batch:
        version = _probe_version(request, scorer)  # only a full round needs to know the model
    return decide_round(state, request.key, request.batch, version, new_round=request.new_round), version


def _probe_version(request: SelectRequest, scorer: Scorer | None) -> str | None:
    """The version of the model that would score the pool now (None: no model), from its first row."""
    if scorer is None:
        return None
    for chunk in read_chunks(request.pool, chunk_rows=1):
        row = chunk[0]
        batch = scorer.score(
            [{"id": source_id(row, request.id_column), "data": item_data(row, request.id_column)}]
        )
        return batch.model_version if batch is not None else None
    return None


def _scan_options(ctx: _Context) -> ScanOptions:
    request, strategy = ctx.request, ctx.strategy
    # Keep candidates with text for clustering: the strategy needs them, or its cold start might.
    keep = not ctx.images and (
        strategy.needs_features or (strategy.needs_model and request.cold_start == "diversity")
    )
    return ScanOptions(
        id_column=request.id_column,
        text_column=ctx.text_column,
        keep_candidates=keep,
        candidates_only_without_model=not strategy.needs_features,
        candidates=request.candidates,
        candidate_measure=getattr(strategy, "measure", None) if strategy.needs_features else None,
        seed=request.seed,
        chunk_rows=request.read_chunk_rows,
        workers=request.workers,
        images=ctx.images,
    )


def _report(ctx: _Context, decision: RoundDecision, scan: PoolScan | None, strategy: str) -> SelectReport:
    return SelectReport(
        project_id=ctx.request.project_id,
        al_round=decision.al_round,
        request=ctx.request.key,
        resumed=decision.resumed,
        strategy=strategy,
        model_version=scan.model_version if scan is not None else None,
        batch=ctx.request.batch,
        in_round_before=len(decision.members),
        pool_rows=scan.rows_read if scan is not None else 0,
        pool_eligible=len(scan.pool) if scan is not None else 0,
        pool_unscorable=scan.unscorable if scan is not None else 0,
        dry_run=ctx.request.dry_run,
    )


# -- building tasks -----------------------------------------------------------------------------------


def _build_tasks(
    ctx: _Context, scan: PoolScan, scorer: Scorer | None, items: Sequence[PlannedItem], al_round: int
) -> list[dict[str, Any]]:
    """LS import records for ``items``: data, our meta, and (``--with-predictions``) the pre-label."""
    request = ctx.request
    index = _pool_index(scan, [p.source_id for p in items if p.role != "gold"])
    rows = fetch_rows(
        request.pool,
        {int(scan.positions[i]): sid for sid, i in index.items()},
        id_column=request.id_column,
        chunk_rows=request.read_chunk_rows,
    )
    gold_by_id = {g.source_id: g for g in ctx.gold}
    gold_items = [gold_by_id[p.source_id] for p in items if p.role == "gold"]
    gold_scores = _score_gold(scorer, gold_items) if scan.pool.has_model else None
    # a gold item the backend could not score (its image) is imported without a pre-label
    scored_gold = gold_scores.scored(len(gold_items)) if gold_scores else []
    gold_row = {gold_items[k].source_id: row for row, k in enumerate(scored_gold)}
    gold_data = {g.source_id: g.data for g in gold_items}
    measure = str(getattr(ctx.strategy, "measure", "entropy"))
    tasks = []
    for item in items:
        if item.role == "gold":
            k = gold_row.get(item.source_id)
            data = dict(gold_data[item.source_id])
            scores = _scores_of(gold_scores, k) if k is not None else None
        else:
            i = index[item.source_id]
            data, scores = item_data(rows[int(scan.positions[i])], request.id_column), _pool_scores(scan, i)
        tasks.append(_task(ctx, item, data, scores, measure, al_round))
    return tasks


@dataclass(frozen=True)
class _Scores:
    measures: dict[str, float]
    confidence: float
    proba: Any
    classes: tuple[str, ...]
    kind: str
    model_version: str


def _pool_index(scan: PoolScan, ids: Sequence[str]) -> dict[str, int]:
    if not ids:
        return {}
    rows = np.flatnonzero(np.isin(scan.pool.ids, np.asarray(ids, dtype=np.str_)))
    return {str(scan.pool.ids[i]): int(i) for i in rows}


def _pool_scores(scan: PoolScan, i: int) -> _Scores | None:
    if not scan.pool.has_model or scan.confidence is None:
        return None
    return _Scores(
        measures={m: float(v[i]) for m, v in scan.pool.measures.items()},
        confidence=float(scan.confidence[i]),
        proba=scan.pool.proba[i] if scan.pool.proba is not None else None,
        classes=scan.pool.classes,
        kind=scan.pool.kind,
        model_version=scan.version_names[int(scan.versions[i])],
    )


def _score_gold(scorer: Scorer | None, items: Sequence[GoldItem]) -> ScoreBatch | None:
    if scorer is None or not items:
        return None
    return scorer.score([{"id": g.source_id, "data": g.data} for g in items])


def _scores_of(batch: ScoreBatch | None, i: int) -> _Scores | None:
    if batch is None:
        return None
    return _Scores(
        measures={m: float(v[i]) for m, v in batch.measures.items()},
        confidence=float(batch.confidence[i]),
        proba=batch.proba[i] if batch.proba is not None else None,
        classes=batch.classes,
        kind=batch.kind,
        model_version=batch.model_version,
    )


def _task(
    ctx: _Context,
    item: PlannedItem,
    data: dict[str, Any],
    scores: _Scores | None,
    measure: str,
    al_round: int,
) -> dict[str, Any]:
    ours: dict[str, Any] = {
        "source_id": item.source_id,
        "al_round": al_round,
        "al_request": ctx.request.key,
        "strategy": item.strategy,
        "uncertainty": round(scores.measures[measure], 6) if scores is not None else None,
        "model_version": scores.model_version if scores is not None else None,
    }
    if item.cluster is not None:
        ours["cluster"] = item.cluster
    task: dict[str, Any] = {"data": data, "meta": {META_NAMESPACE: ours}}
    if ctx.request.with_predictions and scores is not None and ctx.control is not None:
        pre = prediction(
            ctx.control,
            scores.classes,
            scores.proba,
            score=scores.confidence,
            model_version=scores.model_version,
            multi=scores.kind == "multi",
        )
        if pre is not None:
            task["predictions"] = [pre]
    return task


def _describe(item: PlannedItem, task: dict[str, Any], dry_run: bool) -> dict[str, Any]:
    ours = task["meta"][META_NAMESPACE]
    return {
        "source_id": item.source_id,
        "role": item.role,
        "strategy": item.strategy,
        "uncertainty": ours["uncertainty"],
        "cluster": item.cluster,
        "status": "would import" if dry_run else "imported",
    }


# -- import and repair --------------------------------------------------------------------------------


def _import(
    client: LabelStudioClient,
    ctx: _Context,
    items: Sequence[PlannedItem],
    tasks: Sequence[dict[str, Any]],
    report: SelectReport,
    progress: Progress | None,
) -> None:
    """Import chunk by chunk; after each chunk, append (and fsync) the gold answers of its gold tasks."""
    request, gold_by_id = ctx.request, {g.source_id: g for g in ctx.gold}
    if progress:
        progress("importing", 0, len(tasks))
    unmapped = False
    for start in range(0, len(tasks), request.chunk_size):
        chunk_items = items[start : start + request.chunk_size]
        chunk = tasks[start : start + request.chunk_size]
        ids = client.import_tasks(request.project_id, chunk, chunk_size=request.chunk_size)
        report.imported += len(chunk_items)
        report.control_imported += sum(1 for p in chunk_items if p.role == "control")
        report.gold_imported += sum(1 for p in chunk_items if p.role == "gold")
        if len(ids) != len(chunk_items):  # LS gave no task ids back: map gold tasks by listing below
            unmapped = True
        elif ctx.control is not None:
            control = ctx.control.name
            ctx.store.append(
                GoldRecord(task_id, p.source_id, control, gold_by_id[p.source_id].answer)
                for p, task_id in zip(chunk_items, ids, strict=True)
                if p.source_id in gold_by_id  # a pool item that repeats a gold item has a known answer too
            )
        if progress:
            progress("importing", len(chunk_items), len(tasks))
    if unmapped and report.gold_imported:
        _repair_gold_store(ctx, read_project_state(client, request.project_id))


def _repair_gold_store(ctx: _Context, state: ProjectState) -> int:
    """Append the answers of gold tasks that are in the project but not in the store (a crash in between)."""
    if not ctx.gold or ctx.control is None:
        return 0
    stored = {r.source_id for r in ctx.store.load().values()}
    by_source = state.task_ids_by_source()
    missing = [g for g in ctx.gold if g.source_id in by_source and g.source_id not in stored]
    control = ctx.control.name
    return ctx.store.append(
        GoldRecord(by_source[g.source_id], g.source_id, control, g.answer) for g in missing
    )


def _write_clusters(
    client: LabelStudioClient, request: SelectRequest, al_round: int, progress: Progress | None
) -> int:
    """Copy ``meta.cluster`` onto the round's predictions that lack it; idempotent (skips those set)."""
    todo = []
    for task in client.list_tasks(request.project_id, data=False, annotations=False, predictions=True):
        ours = task.meta.get(META_NAMESPACE) or {}
        if (
            ours.get("al_round") != al_round
            or ours.get("al_request") != request.key
            or ours.get("cluster") is None
        ):
            continue
        for pred in task.predictions:
            if (
                pred.id is not None
                and pred.cluster is None
                and pred.model_version == ours.get("model_version")
            ):
                todo.append((pred.id, int(ours["cluster"])))
    if progress and todo:
        progress("writing clusters", 0, len(todo))
    for prediction_id, cluster in todo:
        client.update_prediction(prediction_id, cluster=cluster)
        if progress:
            progress("writing clusters", 1, len(todo))
    return len(todo)
