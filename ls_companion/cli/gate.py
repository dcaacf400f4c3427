"""``ls-companion gate --project ID [--stage pilot|scale]``: may the project move to the next stage?"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from ls_companion.cli.app import app, cli_context, emit, err_console
from ls_companion.errors import InputError

#: Exit code of a gate that did not pass (0 only on pass; 2-5 are errors, see ``ls-companion --help``).
GATE_FAILED = 6


def _render(payload: dict[str, Any], console: Console) -> None:
    verdict = "[green]PASS[/green]" if payload["passed"] else "[red]FAIL[/red]"
    table = Table(title=f"{payload['stage']} gate of project {payload['project']}")
    for column in ("", "criterion", "measured", "threshold", "next"):
        table.add_column(column)
    for c in payload["criteria"]:
        table.add_row("✓" if c["passed"] else "✗", c["name"], c["detail"], c["threshold"], c["next_step"])
    console.print(table)
    console.print(f"{payload['stage']} gate: {verdict}", highlight=False)


@app.command()
def gate(
    ctx: typer.Context,
    project: int = typer.Option(..., "--project", min=1, help="Label Studio project id."),
    stage: str = typer.Option("pilot", "--stage", help="pilot (adds size and full overlap) or scale."),
    spec: Path | None = typer.Option(
        None, "--spec", help="The project spec whose `gate` section holds the thresholds (else defaults)."
    ),
    gold: Path | None = typer.Option(None, "--gold", help="Extra gold answers (as for `metrics`)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Pass/fail of the stage's criteria with the numbers and what to do next; exit 0 only on pass."""
    from ls_companion import gate as gates
    from ls_companion.bootstrap.spec import read_spec

    if stage not in gates.STAGES:
        raise InputError(f"--stage: {stage!r} is not one of {', '.join(gates.STAGES)}")
    thresholds = read_spec(spec).gate if spec is not None else None
    cli = cli_context(ctx)
    with err_console.status(f"reading project {project}…"):
        result = gates.check_project(
            cli.client, cli.settings, project, stage=stage, spec=thresholds, gold_file=gold
        )
    payload = {"project": project, **result.to_dict()}
    emit(payload, as_json, lambda console: _render(payload, console))
    if not result.passed:
        raise typer.Exit(GATE_FAILED)
