"""Offline learning curves: the dataset's labels play the annotators, a fixed test split the judge.

For each strategy and seed: label ``initial`` random pool items, then repeatedly train, evaluate on
the test split, and let the strategy (through the same ``plan_batch`` as ``select``) choose the next
``batch``. The model is the ML backend's: the text candidate chosen by cross-validation, calibrated
(``Learner``); the LSA features of the clustering strategies are computed once.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Self

import numpy as np
from joblib import Parallel, delayed  # type: ignore[import-untyped]
from numpy.typing import NDArray
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from ls_companion.errors import InputError
from ls_companion.modelselect import SELECTION_BUDGET_SECONDS, Candidate, Selection, select_model
from ls_companion.selection.features import DEFAULT_DIMS, text_features
from ls_companion.selection.plan import choose_strategy, plan_batch
from ls_companion.selection.pool import FloatArray, ScoredPool
from ls_companion.selection.scoring import ScoreBatch
from ls_companion.selection.strategies import STRATEGY_NAMES, check_names, make_strategy
from ls_companion.sources import read_rows
from ls_companion.wordvectors import candidates_with

TARGET_SHARE = 0.99


@dataclass(frozen=True)
class SimulationConfig:
    strategies: tuple[str, ...] = STRATEGY_NAMES
    initial: int = 50
    batch: int = 50
    rounds: int = 20
    seeds: int = 5
    test_size: float = 0.2
    split_seed: int = 0
    random_fraction: float = 0.0
    cold_start: str = "diversity"
    dims: int = DEFAULT_DIMS
    jobs: int = 1
    #: select the model again when the labels have grown by this factor (``Learner``)
    reselect_factor: float = 2.0
    budget_seconds: float = SELECTION_BUDGET_SECONDS
    #: end a curve at the first round that reaches the target (enough for ``labels_to_99pct``)
    stop_at_target: bool = False
    #: a WORD_VECTORS file: its pooled-vector candidates join the selection, as in the backend
    word_vectors: Path | None = None

    def validate(self) -> None:
        check_names(self.strategies, self.cold_start)
        if min(self.initial, self.batch, self.seeds, self.jobs) < 1 or self.rounds < 0:
            raise InputError("--initial, --batch, --seeds and --jobs must be at least 1, --rounds at least 0")
        if not 0.0 < self.test_size < 1.0 or not 0.0 <= self.random_fraction <= 1.0:
            raise InputError("--test-size must be between 0 and 1, --random-fraction between 0 and 1")
        if self.reselect_factor <= 1.0 or self.budget_seconds < 0.0:
            raise InputError("the reselection factor must be above 1 and the selection budget at least 0")


@dataclass(frozen=True)
class Dataset:
    texts: list[str]
    labels: list[str]


def load_dataset(path: Path, *, text_column: str = "text", label_column: str = "label") -> Dataset:
    """Texts and labels from a CSV / JSONL / Parquet file (rows with an empty label are skipped)."""
    texts, labels = [], []
    for row in read_rows(path):
        if text_column not in row or label_column not in row:
            raise InputError(f"{path}: needs the columns {text_column!r} and {label_column!r}")
        if row[label_column] in (None, ""):
            continue
        texts.append("" if row[text_column] is None else str(row[text_column]))
        labels.append(str(row[label_column]))
    if len(set(labels)) < 2:
        raise InputError(f"{path}: a simulation needs at least two classes")
    return Dataset(texts, labels)


@dataclass(frozen=True)
class Prepared:
    """The split and everything computed once per dataset."""

    pool_texts: list[str]
    pool_labels: NDArray[np.str_]
    test_texts: list[str]
    test_labels: NDArray[np.str_]
    features: FloatArray  # dense LSA rows of the pool, for the clustering strategies
    full_accuracy: float
    full_model: str


def candidates(word_vectors: Path | None) -> tuple[Candidate, ...]:
    """What the backend selects from, with ``word_vectors`` loaded once per process."""
    try:
        return candidates_with(word_vectors)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def prepare(dataset: Dataset, config: SimulationConfig) -> Prepared:
    texts_pool, texts_test, y_pool, y_test = train_test_split(
        dataset.texts,
        dataset.labels,
        test_size=config.test_size,
        stratify=dataset.labels,
        random_state=config.split_seed,
    )
    y_pool_arr, y_test_arr = np.asarray(y_pool, dtype=np.str_), np.asarray(y_test, dtype=np.str_)
    # The yardstick is the best the backend can do with every label: every candidate is scored (a time
    # budget would stop after the first few on a loaded machine and lower the target); a zero budget
    # means the first candidate alone, there too.
    budget = math.inf if config.budget_seconds > 0 else 0.0
    with threadpool_limits(limits=1):
        full = select_model(candidates(config.word_vectors), texts_pool, y_pool, budget_seconds=budget)
    return Prepared(
        pool_texts=list(texts_pool),
        pool_labels=y_pool_arr,
        test_texts=list(texts_test),
        test_labels=y_test_arr,
        features=text_features(texts_pool, dims=config.dims, seed=config.split_seed),
        full_accuracy=_evaluate(full, texts_test, y_test_arr)[0],
        full_model=full.name,
    )


def _evaluate(
    model: Selection | None, texts: list[str], y: NDArray[np.str_], only: str = ""
) -> tuple[float, float]:
    """Accuracy and macro F1; no model (one class so far) answers that one class."""
    if model is None:
        predicted = np.full(len(y), only)
    else:
        predicted = np.asarray(model.classes, dtype=np.str_)[model.predict_proba(texts).argmax(axis=1)]
    return float(accuracy_score(y, predicted)), float(
        f1_score(y, predicted, average="macro", zero_division=0)
    )


class Learner:
    """The ML backend's text model over a growing label set: ``select_model`` over ``candidates``
    (``single_choice_candidates``, the code path of the backend's training), calibrated.

    Selecting cross-validates every candidate, so it runs again only when the labels have grown by
    ``factor`` since the last selection, or the classes changed; in between, the chosen candidate is
    refitted on all labels and keeps the last selection's calibration."""

    selected_at_: int

    def __init__(self, candidates: Sequence[Candidate], *, factor: float, budget_seconds: float) -> None:
        self.candidates = tuple(candidates)
        self.factor = factor
        self.budget_seconds = budget_seconds

    def fit(self, texts: list[str], labels: list[str]) -> Self:
        last: Selection | None = getattr(self, "selection_", None)
        classes = tuple(sorted(set(labels)))
        self.selection_: Selection | None = None
        if len(classes) < 2:
            return self
        if last is None or last.classes != classes or len(labels) >= self.factor * self.selected_at_:
            self.selection_ = select_model(self.candidates, texts, labels, budget_seconds=self.budget_seconds)
            self.selected_at_ = len(labels)
        else:
            candidate = next(c for c in self.candidates if c.name == last.name)
            self.selection_ = replace(last, model=candidate.make().fit(texts, labels))
        return self


@dataclass(frozen=True)
class CurvePoint:
    labels: int
    accuracy: float
    macro_f1: float
    model: str = ""


def learning_curve(
    prepared: Prepared, strategy_name: str, seed: int, config: SimulationConfig
) -> list[CurvePoint]:
    """One strategy, one seed: the test accuracy after each round of labeling."""
    n_pool = len(prepared.pool_texts)
    ids = np.asarray([str(i) for i in range(n_pool)], dtype=np.str_)
    labeled = np.zeros(n_pool, dtype=bool)
    labeled[
        np.random.default_rng([seed, 1]).choice(n_pool, size=min(config.initial, n_pool), replace=False)
    ] = True
    rng = np.random.default_rng([seed, 2])
    strategy = make_strategy(strategy_name)
    learner = Learner(
        candidates(config.word_vectors), factor=config.reselect_factor, budget_seconds=config.budget_seconds
    )
    target = TARGET_SHARE * prepared.full_accuracy
    curve = []
    for round_no in range(config.rounds + 1):
        known = np.flatnonzero(labeled)
        with threadpool_limits(limits=1):  # many small fits: threads would only contend for the cores
            model = learner.fit(_texts(prepared, known), prepared.pool_labels[known].tolist()).selection_
        only = str(prepared.pool_labels[known[0]]) if len(known) else ""
        accuracy, macro_f1 = _evaluate(model, prepared.test_texts, prepared.test_labels, only)
        curve.append(CurvePoint(len(known), accuracy, macro_f1, model.name if model else ""))
        unlabeled = np.flatnonzero(~labeled)
        reached = config.stop_at_target and accuracy >= target
        if round_no == config.rounds or len(unlabeled) == 0 or reached:
            break
        scores = None
        if model is not None and strategy.needs_model:
            proba = model.predict_proba(_texts(prepared, unlabeled))
            scores = ScoreBatch.from_proba(proba, model.classes, model.name)
        pool = ScoredPool(
            ids=ids[unlabeled],
            measures=scores.measures if scores is not None else {},
            proba=scores.proba if scores is not None else None,
            classes=scores.classes if scores is not None else (),
            features=prepared.features[unlabeled],
        )
        chosen = choose_strategy(strategy, pool, config.cold_start)
        plan = plan_batch(pool, chosen, config.batch, rng, random_fraction=config.random_fraction)
        labeled[[int(p.source_id) for p in plan]] = True
    return curve


def _texts(prepared: Prepared, rows: NDArray[np.intp]) -> list[str]:
    return [prepared.pool_texts[i] for i in rows]


def labels_to_target(curve: Sequence[CurvePoint], target: float) -> int | None:
    """Labels at which accuracy first reaches ``target`` (None if it never does)."""
    return next((p.labels for p in curve if p.accuracy >= target), None)


def _median(values: Sequence[int | None]) -> float | None:
    as_float = [float("inf") if v is None else float(v) for v in values]
    middle = float(np.median(as_float))
    return None if not np.isfinite(middle) else middle


@dataclass
class StrategyResult:
    per_seed: list[int | None] = field(default_factory=list)
    curves: list[list[CurvePoint]] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        steps = min(len(c) for c in self.curves)
        acc = np.array([[p.accuracy for p in c[:steps]] for c in self.curves])
        f1 = np.array([[p.macro_f1 for p in c[:steps]] for c in self.curves])
        curve = [
            {
                "labels": self.curves[0][i].labels,
                "accuracy": round(float(acc[:, i].mean()), 5),
                "accuracy_std": round(float(acc[:, i].std()), 5),
                "macro_f1": round(float(f1[:, i].mean()), 5),
            }
            for i in range(steps)
        ]
        models = Counter(p.model for c in self.curves for p in c if p.model)
        return {
            "labels_to_99pct": {"median": _median(self.per_seed), "per_seed": self.per_seed},
            "final_accuracy": curve[-1]["accuracy"] if curve else None,
            "seconds": round(self.seconds, 2),
            "models": dict(models.most_common()),
            "curve": curve,
        }


def _timed_curve(
    prepared: Prepared, name: str, seed: int, config: SimulationConfig
) -> tuple[str, list[CurvePoint], float]:
    started = time.perf_counter()
    curve = learning_curve(prepared, name, seed, config)
    return name, curve, time.perf_counter() - started


def simulate(
    dataset: Dataset,
    config: SimulationConfig,
    *,
    on_run: Callable[[str, list[int | None]], None] | None = None,
) -> dict[str, Any]:
    """Learning curves of every strategy over ``config.seeds`` seeds, as the JSON ``simulate`` prints;
    ``on_run(strategy, labels to the target of its seeds so far)`` after each curve, seed by seed."""
    config.validate()
    prepared = prepare(dataset, config)
    target = TARGET_SHARE * prepared.full_accuracy
    runs = [(name, seed) for seed in range(config.seeds) for name in config.strategies]
    results = {name: StrategyResult() for name in config.strategies}
    jobs = Parallel(n_jobs=config.jobs, return_as="generator")(
        delayed(_timed_curve)(prepared, name, seed, config) for name, seed in runs
    )
    for name, curve, seconds in jobs:
        result = results[name]
        result.curves.append(curve)
        result.per_seed.append(labels_to_target(curve, target))
        result.seconds += seconds
        if on_run is not None:
            on_run(name, result.per_seed)
    return {
        "full_data_accuracy": round(prepared.full_accuracy, 5),
        "target_accuracy": round(target, 5),
        "full_data_model": prepared.full_model,
        "pool_size": len(prepared.pool_texts),
        "test_size": len(prepared.test_texts),
        "config": asdict(config),
        "strategies": {name: r.to_json() for name, r in results.items()},
    }


def plot_curves(result: dict[str, Any], path: Path) -> None:
    """Mean accuracy against labels for every strategy, with the 99 % target line, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for name, data in result["strategies"].items():
        curve = data["curve"]
        ax.plot([p["labels"] for p in curve], [p["accuracy"] for p in curve], label=name)
    ax.axhline(result["target_accuracy"], color="grey", linestyle="--", label="99 % of full-data accuracy")
    ax.set_xlabel("labels")
    ax.set_ylabel("test accuracy (mean over seeds)")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
