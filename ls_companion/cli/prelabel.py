"""``ls-companion prelabel --project ID``: pre-label every task that lacks the current model's prediction."""

from __future__ import annotations

from collections.abc import Callable

import typer
from rich.console import Console

from ls_companion.cli.app import app, cli_context, emit, progress_bar
from ls_companion.prelabel import ChunkSizer, PrelabelResult, run_prelabel


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
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Pre-label the project's tasks through its ML backend, in chunks; rerun after a crash to finish."""
    cli = cli_context(ctx)
    sizer = ChunkSizer(first=chunk, smallest=min(chunk, ChunkSizer.smallest))
    total = cli.client.count_tasks(project)
    with progress_bar("pre-labelling", total, enabled=not as_json) as advance:
        result = run_prelabel(cli.client, cli.settings.data_dir, project, sizer=sizer, on_progress=advance)
    emit(result.to_json(), as_json, _human(result))
