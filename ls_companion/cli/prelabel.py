"""``ls-companion prelabel --project ID``: pre-label every task that lacks the current model's prediction."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import typer
from rich.console import Console

from ls_companion.cli.app import app, cli_context, emit, progress_bar
from ls_companion.errors import InputError
from ls_companion.prelabel import VIAS, ChunkSizer, PrelabelResult, Via, run_prelabel


def _human(result: PrelabelResult) -> Callable[[Console], None]:
    def human(out: Console) -> None:
        out.print(
            f"Project {result.project_id}, model version {result.model_version!r}: "
            f"{result.requested} of {result.tasks} tasks sent for prediction in {result.requests} requests "
            f"({result.already} already had one) in {result.seconds:.1f} s",
            highlight=False,
            soft_wrap=True,
        )
        if result.duplicates_removed:
            out.print(f"  removed {result.duplicates_removed} second predictions of the same version")

    return human


@app.command("prelabel")
def prelabel_command(
    ctx: typer.Context,
    project: int = typer.Option(..., "--project", help="The Label Studio project id."),
    chunk: int = typer.Option(
        ChunkSizer.first, "--chunk", min=1, help="Tasks in the first request; later ones are sized by time."
    ),
    via: str = typer.Option(
        "import",
        "--via",
        help="import: the backend's /predict, then a bulk import of its answers; "
        "action: Label Studio's retrieve_tasks_predictions (slower).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Pre-label the project's tasks through its ML backend, in chunks; rerun after a crash to finish."""
    if via not in VIAS:
        raise InputError(f"--via: {via!r} is not one of {', '.join(VIAS)}")
    cli = cli_context(ctx)
    sizer = ChunkSizer(first=chunk, smallest=min(chunk, ChunkSizer.smallest))
    total = cli.client.count_tasks(project)
    with progress_bar("pre-labelling", total, enabled=not as_json) as advance:
        result = run_prelabel(
            cli.settings,
            cli.client,
            project,
            via=cast(Via, via),
            sizer=sizer,
            on_progress=advance,
        )
    emit(result.to_json(), as_json, _human(result))
