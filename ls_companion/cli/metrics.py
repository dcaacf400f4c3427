"""``ls-companion metrics SOURCE``: agreement, consensus, gold scores and drift of a project or a file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from ls_companion.cli.app import app, cli_context, emit, err_console
from ls_companion.errors import InputError
from ls_companion.quality import LOW_AGREEMENT
from ls_companion.quality.records import number_text

if TYPE_CHECKING:
    from ls_companion.quality.adapter import ProjectData
    from ls_companion.quality.engine import QualityReport

_SOURCE_HELP = "A project id, a Label Studio JSON export (.json) or a crowd CSV (item,worker,label)."


def _load(source: str, ctx: typer.Context) -> ProjectData:
    from ls_companion.quality import adapter  # the engine's imports are heavy: load them on use

    if source.isdigit():
        return adapter.fetch_project(cli_context(ctx).client, int(source))
    path = Path(source)
    if not path.is_file():
        raise InputError(f"{source}: neither a project id nor an existing file")
    if path.suffix.lower() == ".json":
        return adapter.load_export(path)
    if path.suffix.lower() == ".csv":
        return adapter.load_crowd(path)
    raise InputError(f"{source}: expected a project id, a .json export or a .csv of crowd labels")


def parse_methods(value: str, *, also: str = "") -> tuple[str, ...]:
    """``--methods``: ``all`` or a comma-separated list; ``also`` names the caller's other choices."""
    from ls_companion.quality.consensus import METHODS

    if value == "all":
        return METHODS
    chosen = tuple(m.strip() for m in value.split(",") if m.strip())
    unknown = [m for m in chosen if m not in METHODS]
    if unknown or not chosen:
        allowed = f"{also + ', ' if also else ''}all or {', '.join(METHODS)}"
        raise InputError(f"--methods: unknown {', '.join(unknown) or 'empty list'} (use {allowed})")
    return chosen


def _render(payload: dict[str, Any], console: Console) -> None:
    summary, agreement = payload["summary"], payload["agreement"]
    console.print(
        f"[bold]{summary['n_tasks']}[/bold] tasks, {summary['n_annotations']} annotations "
        f"({summary['n_cancelled']} cancelled), {summary['n_annotators']} annotators; "
        f"mean agreement {number_text(summary['mean_agreement'])}, "
        f"{summary['low_agreement_tasks']} tasks below {summary['low_agreement_threshold']}"
    )
    stats = Table(title="Agreement per control")
    for column in (
        "control",
        "kind",
        "tasks ≥2",
        "mean",
        "Fleiss κ",
        "Cohen κ (mean)",
        "Krippendorff α",
        "reading",
    ):
        stats.add_column(column)
    for name, row in agreement["by_control"].items():
        stats.add_row(
            name,
            row["kind"],
            str(row["n_tasks_overlapping"]),
            number_text(row["mean_agreement"]),
            number_text(row.get("fleiss_kappa")),
            number_text(row.get("cohen_kappa_mean")),
            f"{number_text(row['krippendorff_alpha'])} ({row['alpha_level']})",
            row["alpha_interpretation"] or "–",
        )
    console.print(stats)
    _render_annotators(payload["annotators"], console)
    _render_consensus(payload["consensus"], console)
    for name, block in payload["confusion"].items():
        top = ", ".join(
            f"{p['labels'][0]} vs {p['labels'][1]} ({p['count']} pairs, {p['ratio']:.2f}× chance)"
            for p in block["pairs"][:3]
        )
        console.print(f"most confused labels of {name}: {top or 'none'}", highlight=False)
    for alert in payload["drift"]["alerts"]:
        who = alert["annotator"] or "project"
        console.print(
            f"[yellow]drift[/yellow] {alert['metric']} ({who}, {alert['control']}) since {alert['since']}: "
            f"{number_text(alert['baseline'])} → {number_text(alert['current'])}, p = {alert['p_value']} ({alert['test']})"
        )


def _render_annotators(rows: list[dict[str, Any]], console: Console) -> None:
    table = Table(title="Annotators")
    columns = ("annotator", "answers", "cancel %", "lead s (med/p90)", "tasks/h", "vs others", "vs consensus")
    for column in (*columns, "gold acc [95% CI]", "qualification"):
        table.add_column(column)
    for row in rows:
        gold = (
            f"{number_text(row.get('gold_accuracy'))} [{number_text(row.get('gold_ci_low'), 2)}, {number_text(row.get('gold_ci_high'), 2)}]"
            if row.get("gold_n_gold")
            else "–"
        )
        table.add_row(
            str(row["annotator"]),
            number_text(row.get("n_annotations")),
            number_text(100 * row["cancel_rate"], 1) if row.get("cancel_rate") is not None else "–",
            f"{number_text(row.get('lead_time_median'), 1)} / {number_text(row.get('lead_time_p90'), 1)}",
            number_text(row.get("tasks_per_hour"), 1),
            number_text(row.get("vs_others")),
            number_text(row.get("vs_consensus")),
            gold,
            row.get("qualification") or "–",
        )
    console.print(table)


def _render_consensus(consensus: dict[str, Any], console: Console) -> None:
    for name, block in consensus["by_control"].items():
        table = Table(title=f"Consensus of {name} (chosen: {block['chosen']})")
        for column in ("method", "gold accuracy", "gold tasks", "seconds", "note"):
            table.add_column(column)
        for method, row in block["methods"].items():
            table.add_row(
                method,
                number_text(row["gold_accuracy"], 4),
                str(row["n_gold"]),
                number_text(row["seconds"], 2),
                row.get("skipped", ""),
            )
        console.print(table)


@app.command()
def metrics(
    ctx: typer.Context,
    source: str = typer.Argument(..., help=_SOURCE_HELP),
    gold: Path | None = typer.Option(
        None, "--gold", help="Gold answers: CSV item,label or JSONL {task_id|item, label|answer[, control]}."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the full result as JSON."),
    low_agreement: float = typer.Option(
        LOW_AGREEMENT, "--low-agreement", min=0.0, max=1.0, help="Low task agreement below this."
    ),
    methods: str = typer.Option("all", "--methods", help="Consensus methods, comma-separated, or all."),
    escalate: bool = typer.Option(
        False, "--escalate", help="Project only: raise the overlap of low-agreement tasks by one annotator."
    ),
    max_overlap: int = typer.Option(
        5, "--max-overlap", min=2, help="Never escalate a task above this overlap."
    ),
) -> None:
    """Agreement, consensus (MV, Dawid-Skene, GLAD, MACE), gold accuracy, qualification and drift."""
    from ls_companion.quality import adapter, escalation
    from ls_companion.quality.engine import QualityOptions, compute_project_quality

    options = QualityOptions(low_agreement=low_agreement, methods=parse_methods(methods))
    with err_console.status("reading annotations…"):
        data = _load(source, ctx)
    data_dir = cli_context(ctx).settings.data_dir if data.project_id is not None else None
    gold_answers = adapter.load_gold(data, gold_file=gold, data_dir=data_dir)
    with err_console.status("computing agreement and consensus…"):
        report: QualityReport = compute_project_quality(
            data.table, data.controls, gold_answers, data.predictions, options
        )
    payload = {"source": source, **report.to_dict()}
    if escalate:
        if data.project_id is None:
            raise InputError("--escalate needs a project id as SOURCE")
        plan = escalation.plan_escalation(report.tasks, data.overlaps, max_overlap=max_overlap)
        applied = escalation.apply_escalation(cli_context(ctx).client, plan)
        payload["escalation"] = {"tasks": [{"task_id": t, "overlap": o} for t, o in plan], "applied": applied}
    emit(payload, as_json, lambda console: _render(payload, console))
    if escalate and not as_json:
        err_console.print(
            f"escalated {payload['escalation']['applied']} low-agreement task(s) to one more annotator"
        )
