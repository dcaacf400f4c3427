"""``ls-companion select POOL --project ID``: choose the next batch with active learning and import it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import Progress, TaskID
from rich.table import Table

from ls_companion.cli.app import app, cli_context, emit, err_console
from ls_companion.selection.importer import SelectReport, SelectRequest, run_select
from ls_companion.selection.resolve import http_scorer
from ls_companion.selection.scan import DEFAULT_CANDIDATES
from ls_companion.selection.strategies import STRATEGY_NAMES

_SHOWN_ITEMS = 20


class _Bars:
    """One rich progress bar per stage of ``run_select``."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.bars: dict[str, TaskID] = {}

    def __call__(self, stage: str, advance: int, total: int | None) -> None:
        if stage not in self.bars:
            self.bars[stage] = self.progress.add_task(stage, total=total)
        elif total is not None:
            self.progress.update(self.bars[stage], total=total)
        self.progress.advance(self.bars[stage], advance)


def _render(report: SelectReport) -> Callable[[Console], None]:
    def human(out: Console) -> None:
        where = f"project {report.project_id}, round {report.al_round}"
        if report.nothing_to_do:
            out.print(f"Nothing to do: {where} already holds its {report.batch} tasks for this model.")
            return
        verb = "Would import" if report.dry_run else "Imported"
        resumed = f" (resumed: {report.in_round_before} were already in)" if report.resumed else ""
        out.print(
            f"{verb} {len(report.items) if report.dry_run else report.imported} tasks into {where}{resumed}; "
            f"strategy {report.strategy}, model {report.model_version or 'none (cold start)'}; "
            f"pool: {report.pool_rows} rows, {report.pool_eligible} eligible.",
            highlight=False,
        )
        if report.pool_unscorable:
            out.print(
                f"Left out {report.pool_unscorable} pool rows whose image the ML backend could not fetch "
                "or decode (see its log).",
                highlight=False,
            )
        if report.clusters_written:
            out.print(f"Wrote the cluster id of {report.clusters_written} predictions.")
        if report.dry_run and report.items:
            table = Table("source id", "role", "strategy", "uncertainty", "cluster")
            for item in report.items[:_SHOWN_ITEMS]:
                u = item["uncertainty"]
                table.add_row(
                    item["source_id"],
                    item["role"],
                    item["strategy"],
                    "-" if u is None else f"{u:.4f}",
                    "-" if item["cluster"] is None else str(item["cluster"]),
                )
            out.print(table)
            if len(report.items) > _SHOWN_ITEMS:
                out.print(f"... and {len(report.items) - _SHOWN_ITEMS} more (--json lists them all)")

    return human


@app.command("select")
def select_command(
    ctx: typer.Context,
    pool: Path = typer.Argument(..., help="Unlabeled items: CSV, JSONL or Parquet (read in chunks)."),
    project: int = typer.Option(..., "--project", "-p", help="Label Studio project id."),
    strategy: str = typer.Option("entropy", "--strategy", "-s", help=f"One of {', '.join(STRATEGY_NAMES)}."),
    batch: int = typer.Option(100, "--batch", "-n", help="Tasks in the batch (gold and control included)."),
    gold: Path | None = typer.Option(None, "--gold", help="Gold items (CSV/JSONL) with an answer column."),
    gold_rate: float = typer.Option(0.05, "--gold-rate", help="Share of the batch taken from --gold."),
    gold_answer_column: str = typer.Option("answer", "--gold-answer-column", help="Answer column of --gold."),
    control: str | None = typer.Option(None, "--control", help="Control tag gold answers belong to."),
    with_predictions: bool = typer.Option(
        False, "--with-predictions", help="Import each task with the model's pre-label."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be imported; import nothing."),
    seed: int = typer.Option(0, "--seed", help="Seed of every random choice."),
    id_column: str | None = typer.Option(
        None, "--id-column", help="Column holding the item id (else content hash)."
    ),
    text_column: str | None = typer.Option(
        None, "--text-column", help="Column with the text (default: from the label config)."
    ),
    random_fraction: float = typer.Option(
        0.1, "--random-fraction", help="Random control slice of the batch."
    ),
    chunk_size: int = typer.Option(500, "--chunk-size", help="Tasks per import request."),
    cold_start: str = typer.Option(
        "diversity", "--cold-start", help="Strategy while no model exists: diversity or random."
    ),
    candidates: int = typer.Option(
        DEFAULT_CANDIDATES, "--candidates", help="Items kept with features for diversity / hybrid."
    ),
    scorer: str = typer.Option(
        "auto", "--scorer", help="auto (backend if any), backend, or none (cold start)."
    ),
    new_round: bool = typer.Option(
        False, "--new-round", help="Open a new round even if the last one matches."
    ),
    workers: int = typer.Option(1, "--workers", help="Concurrent /score requests while the pool is read."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Score the pool with the current model, choose a batch, and import it; rerunning is safe.

    A rerun after a crash finishes the interrupted round; rerunning a finished round with the same
    model imports nothing. See docs/active-learning.md for the round rule and the gold store.
    """
    cli = cli_context(ctx)
    request = SelectRequest(
        project_id=project,
        pool=pool,
        strategy=strategy,
        batch=batch,
        seed=seed,
        random_fraction=random_fraction,
        gold=gold,
        gold_rate=gold_rate,
        gold_answer_column=gold_answer_column,
        control=control,
        with_predictions=with_predictions,
        dry_run=dry_run,
        id_column=id_column,
        text_column=text_column,
        chunk_size=chunk_size,
        cold_start=cold_start,
        candidates=candidates,
        new_round=new_round,
        workers=workers,
    )
    request.validate()
    model = http_scorer(cli.settings, cli.client, project, scorer, control=control)
    try:
        with Progress(console=err_console, transient=True, disable=not err_console.is_terminal) as progress:
            report = run_select(
                cli.client, model, request, data_dir=cli.settings.data_dir, progress=_Bars(progress)
            )
    finally:
        if model is not None:
            model.close()
    emit(report.to_json(), as_json, _render(report))
