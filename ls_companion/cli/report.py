"""``ls-companion report --project ID --out DIR``: the project's HTML report, report.json and PNG plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from ls_companion.cli.app import app, cli_context, emit, err_console
from ls_companion.cli.metrics import parse_methods
from ls_companion.quality import LOW_AGREEMENT
from ls_companion.quality.records import number_text


def _render(payload: dict[str, Any], html: Path, console: Console) -> None:
    summary, models = payload["summary"], payload["models"]
    console.print(f"[bold]{payload['project']['title']}[/bold] (project {payload['project']['id']})")
    console.print(
        f"{payload['project']['task_number']} tasks, {summary['n_tasks']} with answers, "
        f"{summary['n_annotations']} annotations by {summary['n_annotators']} annotators; "
        f"mean agreement {number_text(summary['mean_agreement'])}, {len(payload['drift']['alerts'])} drift alert(s)"
    )
    versions = len(models["versions"])
    console.print(f"models: {versions} version(s)" if models["available"] else f"models: {models['reason']}")
    console.print(f"active-learning rounds: {len(payload['active_learning']['rounds'])}")
    console.print(f"report: {html}")


@app.command()
def report(
    ctx: typer.Context,
    project: int = typer.Option(..., "--project", min=1, help="Label Studio project id."),
    out: Path = typer.Option(..., "--out", help="Folder for index.html, report.json and plots/."),
    as_json: bool = typer.Option(False, "--json", help="Print report.json's content."),
    methods: str = typer.Option(
        "auto",
        "--methods",
        help="Consensus methods: auto (all four when gold can choose, else MV + DS), all, or a list.",
    ),
    gold: Path | None = typer.Option(
        None, "--gold", help="Extra gold answers: CSV item,label or JSONL {task_id|item, label|answer}."
    ),
    from_store: bool = typer.Option(
        False, "--from-store", help="Read annotations from the sync's local store instead of Label Studio."
    ),
    low_agreement: float = typer.Option(
        LOW_AGREEMENT, "--low-agreement", min=0.0, max=1.0, help="Low task agreement below this."
    ),
) -> None:
    """An HTML report (agreement, gold, qualification, drift, labels, models, rounds) with its JSON."""
    from ls_companion.report import save_report
    from ls_companion.report.gather import build_report, collect

    cli = cli_context(ctx)
    chosen = None if methods == "auto" else parse_methods(methods, also="auto")  # None: from the gold
    with err_console.status(f"reading project {project}…"):
        inputs = collect(cli.client, cli.settings, project, gold_file=gold, from_store=from_store)
    with err_console.status("computing agreement, consensus and drift…"):
        payload = build_report(inputs, methods=chosen, low_agreement=low_agreement)
    with err_console.status("drawing the plots…"):
        result = save_report(payload, out)
    emit(result.payload, as_json, lambda console: _render(result.payload, result.html, console))
