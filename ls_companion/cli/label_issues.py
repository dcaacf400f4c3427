"""``ls-companion label-issues FILE``: likely label errors of a labelled CSV/JSONL or of a project.

The texts' out-of-fold probabilities come from the same model selection the ML backend trains with
(``ls_companion.modelselect`` over ``textclassifier.text_candidates``); the scoring is
``quality.label_issues``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from ls_companion.cli.app import app, cli_context, emit, err_console
from ls_companion.errors import InputError

if TYPE_CHECKING:
    from ls_companion.client import LabelStudioClient


def _file_items(path: Path, text_column: str, label_column: str) -> tuple[list[str], list[str], list[int]]:
    """Texts and labels of the rows that have both; the 0-based data row of each."""
    from ls_companion.sources import read_rows

    texts: list[str] = []
    labels: list[str] = []
    rows: list[int] = []
    for index, row in enumerate(read_rows(path)):
        if index == 0:
            missing = [c for c in (text_column, label_column) if c not in row]
            if missing:
                raise InputError(f"{path}: no column {missing[0]!r} (columns: {', '.join(map(str, row))})")
        text, label = row.get(text_column), row.get(label_column)
        if text is None or label is None or str(label) == "":
            continue
        texts.append(str(text))
        labels.append(str(label))
        rows.append(index)
    return texts, labels, rows


def project_items(
    client: LabelStudioClient, project_id: int, text_column: str
) -> tuple[list[str], list[str], list[int]]:
    """Per annotated task: its text (data key ``text_column``) and the consensus of its first choice control."""
    from ls_companion.quality import consensus
    from ls_companion.quality.records import controls_from_config, crowd, tasks_to_table

    controls = controls_from_config(client.get_project(project_id).label_config)
    categorical = [spec for spec in controls.values() if spec.categorical]
    if not categorical:
        raise InputError(f"project {project_id}: no single-choice control to find label errors in")
    tasks = {t.id: t for t in client.list_tasks(project_id, data=True, annotations=True)}
    table = crowd(tasks_to_table(tasks.values(), {categorical[0].name: categorical[0]}))
    labels = consensus.aggregate(table, consensus.DAWID_SKENE)
    texts = [tasks[int(t)].data.get(text_column) for t in labels["task_id"]]
    if any(text is None for text in texts):
        raise InputError(f"project {project_id}: tasks without data key {text_column!r} (use --text-column)")
    return [str(t) for t in texts], [str(v) for v in labels["consensus"]], [int(t) for t in labels["task_id"]]


def _render(payload: dict[str, Any], key: str, console: Console) -> None:
    console.print(
        f"{len(payload['issues'])} likely label errors in {payload['n_items']} items "
        f"(model {payload['model']}; estimated noise rate per class: "
        + ", ".join(f"{c} {r:.1%}" for c, r in payload["noise_rate"].items())
        + ")"
    )
    table = Table()
    for column in (key, "score", "suggested"):
        table.add_column(column)
    for issue in payload["issues"]:
        table.add_row(str(issue[key]), f"{issue['score']:.3f}", str(issue["suggested"]))
    console.print(table)


def find_issues(
    texts: list[str], labels: list[str], keys: list[int], key: str, source: str | int
) -> dict[str, Any]:
    """The label-issues payload of labelled texts (``keys[i]`` names item i under ``key``)."""
    import numpy as np

    from ls_companion.modelselect import select_model
    from ls_companion.quality.label_issues import find_label_issues, issues_payload
    from ls_companion.textclassifier import text_candidates

    where = source if isinstance(source, str) else f"project {source}"
    with err_console.status(f"cross-validating text models on {len(texts)} labelled items…"):
        try:
            selection = select_model(text_candidates("single"), texts, labels)
        except ValueError as exc:
            raise InputError(f"{where}: {exc}") from None
    if selection.oof_proba is None:
        raise InputError(f"{where}: too few labels to cross-validate")
    codes = np.array([selection.classes.index(label) for label in labels], dtype=np.int64)
    found = find_label_issues(codes, selection.oof_proba)
    return {"source": source, "model": selection.name, **issues_payload(found, selection.classes, keys, key)}


@app.command("label-issues")
def label_issues(
    ctx: typer.Context,
    file: Path | None = typer.Argument(None, help="A labelled CSV or JSONL file (omit with --project)."),
    project: int | None = typer.Option(None, "--project", help="A Label Studio project id instead of FILE."),
    text_column: str = typer.Option("text", "--text-column", help="Column (or task data key) of the text."),
    label_column: str = typer.Option("label", "--label-column", help="Column of the label (files)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Likely label errors: items whose label the model's out-of-fold probabilities contradict."""
    if (file is None) == (project is None):
        raise InputError("give either FILE or --project ID")
    with err_console.status("reading labels…"):
        if file is not None:
            texts, labels, keys = _file_items(file, text_column, label_column)
        else:
            texts, labels, keys = project_items(cli_context(ctx).client, int(project or 0), text_column)
    key = "row" if file is not None else "task_id"
    payload = find_issues(texts, labels, keys, key, str(file) if file else int(project or 0))
    emit(payload, as_json, lambda console: _render(payload, key, console))
