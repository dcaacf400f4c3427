"""``ls-companion simulate DATASET``: offline learning curves of active-learning strategies."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from ls_companion.cli.app import app, emit, err_console
from ls_companion.modelselect import SELECTION_BUDGET_SECONDS
from ls_companion.selection.simulate import SimulationConfig, load_dataset, plot_curves, simulate
from ls_companion.selection.strategies import STRATEGY_NAMES


def _render(result: dict[str, Any]) -> Callable[[Console], None]:
    def human(out: Console) -> None:
        out.print(
            f"Full-data accuracy {result['full_data_accuracy']:.4f}; target (99 %) {result['target_accuracy']:.4f}; "
            f"pool {result['pool_size']}, test {result['test_size']}",
            highlight=False,
        )
        baseline = (result["strategies"].get("random") or {}).get("labels_to_99pct", {}).get("median")
        table = Table("strategy", "labels to 99 % (median)", "vs random", "per seed", "final accuracy")
        for name, data in result["strategies"].items():
            median = data["labels_to_99pct"]["median"]
            ratio = f"{median / baseline:.2f}x" if median is not None and baseline else "-"
            seeds = ", ".join("never" if v is None else str(v) for v in data["labels_to_99pct"]["per_seed"])
            shown = "never" if median is None else f"{median:g}"
            table.add_row(name, shown, ratio, seeds, f"{data['final_accuracy']:.4f}")
        out.print(table)

    return human


@app.command("simulate")
def simulate_command(
    dataset: Path = typer.Argument(
        ..., help="Labeled CSV / JSONL / Parquet file: its labels play the annotators."
    ),
    strategy: list[str] = typer.Option(
        list(STRATEGY_NAMES),
        "--strategy",
        "-s",
        help=f"Strategy to compare (repeat): {', '.join(STRATEGY_NAMES)}.",
    ),
    initial: int = typer.Option(50, "--initial", help="Random labels before the first model."),
    batch: int = typer.Option(50, "--batch", help="Labels added per round."),
    rounds: int = typer.Option(20, "--rounds", help="Rounds after the initial set."),
    seeds: int = typer.Option(5, "--seeds", help="Repetitions with different initial sets."),
    text_column: str = typer.Option("text", "--text-column", help="Column holding the text."),
    label_column: str = typer.Option("label", "--label-column", help="Column holding the true label."),
    test_size: float = typer.Option(
        0.2, "--test-size", help="Share held out (stratified, fixed) as the test set."
    ),
    split_seed: int = typer.Option(0, "--split-seed", help="Seed of the test split."),
    random_fraction: float = typer.Option(
        0.0, "--random-fraction", help="Random control slice of each batch (select uses 0.1)."
    ),
    cold_start: str = typer.Option("diversity", "--cold-start", help="Strategy while no model exists."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Parallel processes."),
    selection_budget: float = typer.Option(
        SELECTION_BUDGET_SECONDS,
        "--selection-budget",
        help="CPU seconds each model selection may spend cross-validating candidates (0: the first only).",
    ),
    word_vectors: Path | None = typer.Option(
        None,
        "--word-vectors",
        help="Word-vectors file (`ml-backend word-vectors`): adds the pooled-vector candidates, as WORD_VECTORS does.",
    ),
    stop_at_target: bool = typer.Option(
        False, "--stop-at-target", help="End each curve once it reaches 99 % of the full-data accuracy."
    ),
    plot: Path | None = typer.Option(None, "--plot", help="Write the learning curves to this PNG."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Compare strategies offline: labels needed to reach 99 % of the full-data accuracy, learning curves."""
    config = SimulationConfig(
        strategies=tuple(dict.fromkeys(strategy)),
        initial=initial,
        batch=batch,
        rounds=rounds,
        seeds=seeds,
        test_size=test_size,
        split_seed=split_seed,
        random_fraction=random_fraction,
        cold_start=cold_start,
        jobs=jobs,
        budget_seconds=selection_budget,
        stop_at_target=stop_at_target,
        word_vectors=word_vectors,
    )
    config.validate()
    data = load_dataset(dataset, text_column=text_column, label_column=label_column)
    with Progress(console=err_console, transient=True, disable=not err_console.is_terminal) as progress:
        bar = progress.add_task("simulating", total=len(config.strategies) * seeds)
        result = simulate(data, config, on_run=lambda _name, _done: progress.advance(bar))
    if plot is not None:
        plot_curves(result, plot)
        result["plot"] = str(plot)
    emit(result, as_json, _render(result))
