"""``ls-companion guidelines-review --project ID``: the confused label pairs as a Markdown digest."""

from __future__ import annotations

from pathlib import Path

import typer

from ls_companion.cli.app import app, cli_context, emit, err_console


@app.command("guidelines-review")
def guidelines_review(
    ctx: typer.Context,
    project: int = typer.Option(..., "--project", min=1, help="Label Studio project id."),
    pairs: int = typer.Option(3, "--pairs", min=1, help="Confused label pairs per control."),
    out: Path | None = typer.Option(None, "--out", help="Also write the Markdown to this file."),
    with_issues: bool = typer.Option(
        False,
        "--label-issues",
        help="Flag the examples the model finds mislabelled (text tasks; cross-validates).",
    ),
    text_column: str = typer.Option(
        "text", "--text-column", help="Task data key of the text (--label-issues)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the confusion section as JSON instead."),
) -> None:
    """Which labels annotators of the same task confuse, with example tasks: paste under "Edge cases"."""
    from ls_companion.files import write_bytes_atomic
    from ls_companion.quality.engine import compute_project_quality, label_confusion
    from ls_companion.report.digest import guidelines_digest, snippet
    from ls_companion.report.gather import collect, stored_label_issues

    cli = cli_context(ctx)
    with err_console.status(f"reading project {project}…"):
        inputs = collect(cli.client, cli.settings, project, with_models=False)
    data = inputs.data
    issues = dict(stored_label_issues(inputs.metas))  # what the sync flagged; --label-issues recomputes
    if with_issues:
        from ls_companion.cli.label_issues import find_issues, project_items

        flagged = find_issues(*project_items(cli.client, project, text_column), "task_id", project)["issues"]
        issues.update({i["task_id"]: {"score": i["score"], "suggested": i["suggested"]} for i in flagged})
    found = label_confusion(compute_project_quality(data.table, data.controls, inputs.gold), issues)
    shown = {
        ex["task_id"] for block in found.values() for p in block["pairs"][:pairs] for ex in p["examples"]
    }
    snippets = {task_id: snippet(cli.client.get_task(task_id).data) for task_id in sorted(shown)}
    markdown = guidelines_digest(
        found,
        title=inputs.project.title,
        project_url=inputs.project.url,
        names=inputs.users,
        texts=snippets,
        version=inputs.guidelines[-1][0] if inputs.guidelines else None,
        pairs=pairs,
    )
    if out is not None:
        write_bytes_atomic(out, markdown.encode("utf-8"))
    emit(
        {"project": project, "confusion": found, "markdown": markdown},
        as_json,
        lambda c: c.out(markdown, highlight=False),
    )
