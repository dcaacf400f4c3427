"""``ls-companion bootstrap SPEC``: create or update a project from a YAML spec."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer
from rich.console import Console

from ls_companion.bootstrap import BootstrapResult, bootstrap, load_spec
from ls_companion.cli.app import app, cli_context, emit, err_console, progress_bar


def _render(result: BootstrapResult, title: str) -> Callable[[Console], None]:
    def human(out: Console) -> None:
        verb = "created" if result.created else "updated" if result.changes else "unchanged"
        out.print(
            f"Project {result.project_id} {title!r} {verb}: {result.project_url}",
            highlight=False,
            soft_wrap=True,
        )
        if result.guidelines_version:
            out.print(f"  guidelines {result.guidelines_version}", highlight=False)
        for change in result.changes:
            out.print(f"  {change.describe()}", highlight=False)
        if not result.changed:
            out.print("  no changes: the project already matches the spec")

    return human


@app.command("bootstrap")
def bootstrap_command(
    ctx: typer.Context,
    spec: Path = typer.Argument(..., help="The project spec (YAML); see examples/ and the README."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Create or update (by title) a labeling project from a YAML spec; a second run changes nothing."""
    cli = cli_context(ctx)
    resolved = load_spec(spec, cli.settings)
    with progress_bar("importing pilot tasks", len(resolved.pilot_tasks), enabled=not as_json) as advance:
        result = bootstrap(cli.client, resolved, on_import=advance, data_dir=cli.settings.data_dir)
    for warning in result.warnings:
        err_console.print(f"warning: {warning}", highlight=False, soft_wrap=True)
    emit(result.to_json(), as_json, _render(result, resolved.title))
