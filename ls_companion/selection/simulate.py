"""Offline learning curves: the dataset's labels play the annotators, a fixed test split the judge.

For each strategy and seed: label ``initial`` random pool items, then repeatedly train, evaluate on
the test split, and let the strategy (through the same ``plan_batch`` as ``select``) choose the next
``batch``. TF-IDF is fitted once on the pool and LSA features computed once, so each round costs one
logistic-regression fit and one scoring pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from joblib import Parallel, delayed  # type: ignore[import-untyped]
from numpy.typing import NDArray
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split

from ls_companion.errors import InputError
from ls_companion.selection.features import DEFAULT_DIMS, dense_features
from ls_companion.selection.plan import choose_strategy, plan_batch
from ls_companion.selection.pool import FloatArray, ScoredPool
from ls_companion.selection.scoring import SklearnScorer
from ls_companion.selection.strategies import STRATEGY_NAMES, check_names, make_strategy
from ls_companion.sources import read_rows

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
    C: float = 10.0
    dims: int = DEFAULT_DIMS
    jobs: int = 1

    def validate(self) -> None:
        check_names(self.strategies, self.cold_start)
        if min(self.initial, self.batch, self.seeds, self.jobs) < 1 or self.rounds < 0:
            raise InputError("--initial, --batch, --seeds and --jobs must be at least 1, --rounds at least 0")
        if not 0.0 < self.test_size < 1.0 or not 0.0 <= self.random_fraction <= 1.0:
            raise InputError("--test-size must be between 0 and 1, --random-fraction between 0 and 1")


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

    pool: Any  # sparse TF-IDF rows of the pool
    pool_labels: NDArray[np.str_]
    test: Any
    test_labels: NDArray[np.str_]
    features: FloatArray  # dense LSA rows of the pool, for the clustering strategies
    vectorizer: TfidfVectorizer
    full_accuracy: float


def prepare(dataset: Dataset, config: SimulationConfig) -> Prepared:
    texts_pool, texts_test, y_pool, y_test = train_test_split(
        dataset.texts,
        dataset.labels,
        test_size=config.test_size,
        stratify=dataset.labels,
        random_state=config.split_seed,
    )
    vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2)).fit(texts_pool)
    x_pool, x_test = vectorizer.transform(texts_pool), vectorizer.transform(texts_test)
    y_pool_arr, y_test_arr = np.asarray(y_pool, dtype=np.str_), np.asarray(y_test, dtype=np.str_)
    full = SklearnScorer(C=config.C, vectorizer=vectorizer).fit_features(x_pool, y_pool_arr.tolist())
    return Prepared(
        pool=x_pool,
        pool_labels=y_pool_arr,
        test=x_test,
        test_labels=y_test_arr,
        features=dense_features(x_pool, dims=config.dims, seed=config.split_seed),
        vectorizer=vectorizer,
        full_accuracy=_evaluate(full, x_test, y_test_arr)[0],
    )


def _evaluate(model: SklearnScorer, x: Any, y: NDArray[np.str_], only: str = "") -> tuple[float, float]:
    """Accuracy and macro F1; a model not trained (one class so far) answers that one class."""
    fitted = getattr(model, "model_", None)
    predicted = np.full(len(y), only) if fitted is None else fitted.predict(x)
    return float(accuracy_score(y, predicted)), float(
        f1_score(y, predicted, average="macro", zero_division=0)
    )


@dataclass(frozen=True)
class CurvePoint:
    labels: int
    accuracy: float
    macro_f1: float


def learning_curve(
    prepared: Prepared, strategy_name: str, seed: int, config: SimulationConfig
) -> list[CurvePoint]:
    """One strategy, one seed: the test accuracy after each round of labeling."""
    n_pool = prepared.pool.shape[0]
    ids = np.asarray([str(i) for i in range(n_pool)], dtype=np.str_)
    labeled = np.zeros(n_pool, dtype=bool)
    labeled[
        np.random.default_rng([seed, 1]).choice(n_pool, size=min(config.initial, n_pool), replace=False)
    ] = True
    rng = np.random.default_rng([seed, 2])
    strategy = make_strategy(strategy_name)
    curve = []
    for round_no in range(config.rounds + 1):
        known = np.flatnonzero(labeled)
        model = SklearnScorer(C=config.C, vectorizer=prepared.vectorizer)
        model.fit_features(prepared.pool[known], prepared.pool_labels[known].tolist())
        only = str(prepared.pool_labels[known[0]]) if len(known) else ""
        accuracy, macro_f1 = _evaluate(model, prepared.test, prepared.test_labels, only)
        curve.append(CurvePoint(len(known), accuracy, macro_f1))
        unlabeled = np.flatnonzero(~labeled)
        if round_no == config.rounds or len(unlabeled) == 0:
            break
        scores = model.score_features(prepared.pool[unlabeled])
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
        return {
            "labels_to_99pct": {"median": _median(self.per_seed), "per_seed": self.per_seed},
            "final_accuracy": curve[-1]["accuracy"] if curve else None,
            "seconds": round(self.seconds, 2),
            "curve": curve,
        }


def _timed_curve(
    prepared: Prepared, name: str, seed: int, config: SimulationConfig
) -> tuple[str, list[CurvePoint], float]:
    started = time.perf_counter()
    curve = learning_curve(prepared, name, seed, config)
    return name, curve, time.perf_counter() - started


def simulate(
    dataset: Dataset, config: SimulationConfig, *, on_run: Callable[[str, int], None] | None = None
) -> dict[str, Any]:
    """Learning curves of every strategy over ``config.seeds`` seeds, as the JSON ``simulate`` prints."""
    config.validate()
    prepared = prepare(dataset, config)
    target = TARGET_SHARE * prepared.full_accuracy
    runs = [(name, seed) for name in config.strategies for seed in range(config.seeds)]
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
            on_run(name, len(result.curves))
    return {
        "full_data_accuracy": round(prepared.full_accuracy, 5),
        "target_accuracy": round(target, 5),
        "pool_size": int(prepared.pool.shape[0]),
        "test_size": int(prepared.test.shape[0]),
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
