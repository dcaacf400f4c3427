"""One consensus answer per task, with a confidence.

Categorical controls (single choices, ratings) are aggregated by majority vote, Dawid-Skene, GLAD and
MACE, and, where the ML backend stored out-of-fold probabilities, model-assisted: the model as one more
annotator (see ``model_assisted_proba``); where enough gold exists, the method with the best gold accuracy is chosen, else Dawid-Skene.
MV, GLAD and MACE are crowd-kit's. Dawid-Skene is a vectorized implementation of crowd-kit's own EM
(same initialisation, steps, evidence lower bound and stopping rule; tests check that it gives
crowd-kit's posteriors): crowd-kit's pandas version needs ~0.3 s per iteration on 300,000 labels and
runs up to 100 iterations, this one ~10 ms.

Other controls (spans, boxes, polygons, texts, multiple choices, numbers, taxonomies) take the medoid:
the answer with the highest mean similarity to the task's other answers, that mean as its confidence.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import sparse

from ls_companion.errors import InputError
from ls_companion.quality.records import DECIMALS, ScoredControl, jsonable

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

MAJORITY_VOTE, DAWID_SKENE, GLAD, MACE, MEDOID = "majority_vote", "dawid_skene", "glad", "mace", "medoid"
MODEL_ASSISTED = "model_assisted"
#: Model-assisted consensus: an annotator's accuracy starts at this, as if from this many answers.
ACCURACY_PRIOR, ACCURACY_PRIOR_WEIGHT = 2 / 3, 12.0
#: The least prior probability the de-noised model gives a label (``true_label_prior``).
TRUE_PRIOR_FLOOR = 1e-3
#: Rescaling steps of that prior's class balance (on 16 of the consensus bench's crowds its mean then matches to 1e-15).
PRIOR_SHIFT_STEPS = 50
METHODS = (MAJORITY_VOTE, DAWID_SKENE, GLAD, MACE)
FAST_METHODS = (MAJORITY_VOTE, DAWID_SKENE)
#: The method used when gold cannot decide (and the preferred one on ties).
DEFAULT_METHOD = DAWID_SKENE
#: GLAD and MACE take about 60 s and 15 s on 25,000 labels (2 cores): above this many labels they are skipped.
SLOW_METHODS_MAX_LABELS = 30_000
_EPS = 1e-10  # crowd-kit's floor for probabilities
LABEL_COLUMNS = ["task_id", "consensus", "confidence"]


@dataclass(frozen=True, slots=True)
class Encoded:
    """Crowd answers as integer codes (labels coded in sorted order, as crowd-kit orders its columns)."""

    task: IntArray
    worker: IntArray
    label: IntArray
    tasks: NDArray[Any]
    labels: NDArray[Any]
    n_workers: int

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    @property
    def n_labels(self) -> int:
        return len(self.labels)


def encode(rows: pd.DataFrame) -> Encoded:
    """Codes of ``rows`` (``task_id, annotator, value``)."""
    task, tasks = pd.factorize(rows["task_id"], sort=False)
    worker, workers = pd.factorize(rows["annotator"], sort=False)
    label, labels = pd.factorize(pd.Series(rows["value"].to_numpy(object), dtype=object), sort=True)
    return Encoded(
        task.astype(np.int64),
        worker.astype(np.int64),
        label.astype(np.int64),
        np.asarray(tasks, dtype=object),
        np.asarray(labels, dtype=object),
        len(workers),
    )


def _decode(enc: Encoded, proba: FloatArray) -> pd.DataFrame:
    best = proba.argmax(axis=1)  # first maximum, i.e. the smallest label on ties (as crowd-kit)
    return pd.DataFrame(
        {"task_id": enc.tasks, "consensus": enc.labels[best], "confidence": proba[np.arange(len(best)), best]}
    )


# -- Dawid-Skene --------------------------------------------------------------------------------------------------


def _vote_shares(enc: Encoded) -> FloatArray:
    counts = np.bincount(enc.task * enc.n_labels + enc.label, minlength=enc.n_tasks * enc.n_labels)
    counts = counts.reshape(enc.n_tasks, enc.n_labels).astype(float)
    shares: FloatArray = counts / counts.sum(axis=1, keepdims=True)
    return shares


def _errors(
    enc: Encoded, by_worker_label: sparse.csr_matrix, present: NDArray[np.bool_], proba: FloatArray
) -> FloatArray:
    """M-step: each worker's confusion matrix P(answer | true label), rows of unseen answers left out."""
    shape = (enc.n_workers, enc.n_labels, enc.n_labels)
    counts = np.asarray(by_worker_label @ proba[enc.task]).reshape(shape)
    floored = np.where(present, np.maximum(counts, _EPS), 0.0)
    errors: FloatArray = floored / floored.sum(axis=1, keepdims=True)
    return errors


def _log_errors(errors: FloatArray, log: Any) -> FloatArray:
    with np.errstate(divide="ignore"):
        out: FloatArray = np.where(errors > 0, log(np.where(errors > 0, errors, 1.0)), -np.inf)
    return out


def dawid_skene_proba(enc: Encoded, n_iter: int = 100, tol: float = 1e-5) -> FloatArray:
    """Posterior label probabilities (tasks × labels) of Dawid-Skene's EM, initialised by majority vote."""
    n_rows = len(enc.task)
    rows = np.arange(n_rows)
    by_task = sparse.csr_matrix((np.ones(n_rows), (enc.task, rows)), shape=(enc.n_tasks, n_rows))
    cell = enc.worker * enc.n_labels + enc.label
    by_worker_label = sparse.csr_matrix(
        (np.ones(n_rows), (cell, rows)), shape=(enc.n_workers * enc.n_labels, n_rows)
    )
    present = (np.bincount(cell, minlength=enc.n_workers * enc.n_labels) > 0).reshape(
        enc.n_workers, enc.n_labels, 1
    )

    proba = _vote_shares(enc)
    priors = proba.mean(axis=0)
    errors = _errors(enc, by_worker_label, present, proba)
    loss = -math.inf
    for _ in range(n_iter):
        log_like = (
            np.log2(np.maximum(priors, _EPS)) + by_task @ _log_errors(errors, np.log2)[enc.worker, enc.label]
        )
        scaled = np.exp2(log_like - log_like.max(axis=1, keepdims=True))
        proba = scaled / scaled.sum(axis=1, keepdims=True)
        priors = proba.mean(axis=0)
        errors = _errors(enc, by_worker_label, present, proba)
        new_loss = _evidence_lower_bound(enc, proba, priors, errors) / n_rows
        if new_loss - loss < tol:
            break
        loss = new_loss
    return np.maximum(proba, _EPS)  # crowd-kit floors its final posteriors the same way


def _evidence_lower_bound(enc: Encoded, proba: FloatArray, priors: FloatArray, errors: FloatArray) -> float:
    per_row = _log_errors(errors, np.log)[enc.worker, enc.label] + np.log(np.maximum(priors, _EPS))
    joint = float(np.sum(proba[enc.task] * per_row))
    floored = np.maximum(proba, _EPS)
    return joint - float(np.sum(floored * np.log(floored)))


# -- model-assisted ------------------------------------------------------------------------------------------------


def align_model_proba(enc: Encoded, model_proba: pd.DataFrame) -> FloatArray:
    """The model's probabilities (rows: task ids, columns: labels) in ``enc``'s task and label order.

    A task the model did not score gets the class shares of the votes (there the consensus is
    Dawid-Skene's); a label the model does not know gets (almost) nothing.
    """
    table = model_proba.reindex(index=enc.tasks, columns=enc.labels)
    values = table.to_numpy(dtype=float, copy=True)
    unscored = np.isnan(values).all(axis=1)
    values = np.nan_to_num(values, nan=0.0)
    values[unscored] = _vote_shares(enc).mean(axis=0)
    values = np.maximum(values, _EPS)
    aligned: FloatArray = values / values.sum(axis=1, keepdims=True)
    return aligned


def _trained_on(enc: Encoded) -> FloatArray:
    """Each task's label as the backend trains on it (``ml_backend.dataset``): the majority of its
    answers, a tie split evenly (the backend drops it, a consensus method breaks it)."""
    shares = _vote_shares(enc)
    top = (shares == shares.max(axis=1, keepdims=True)).astype(float)
    out: FloatArray = top / top.sum(axis=1, keepdims=True)
    return out


def true_label_prior(model: FloatArray, trained: FloatArray, posterior: FloatArray) -> FloatArray:
    """The model's probabilities of each task's *true* label, from its probabilities of the label it was
    trained on (all tasks × labels: ``model``, ``trained`` one-hot or split, ``posterior`` of the true label).

    A model fitted to noisy labels estimates ``q = p T``, ``T[c, l]`` the chance that a task of true
    label ``c`` was trained as ``l``: too flat a prior for the true label. First ``q`` is rescaled per
    label until its mean is each label's share of the training labels (Saerens et al., 2002): a
    temperature calibration keeps the class balance that balanced class weights move. Then ``T`` is
    estimated from the posterior and inverted, ``p = q T⁻¹``, floored at ``TRUE_PRIOR_FLOOR`` and
    renormalised. Noise of half or more on a label (``T`` not diagonally dominant) is not inverted: then
    the rescaled ``q`` is returned. It assumes the noise does not depend on the text beyond the true
    label (true of the bench's simulated crowds, not of RTE's real one: docs/quality.md).
    """
    known = model.max(axis=0) > _EPS  # labels the model was not trained on keep their (almost) nothing
    scale: FloatArray = np.ones(model.shape[1])
    for _ in range(PRIOR_SHIFT_STEPS):
        shifted = model * scale
        shifted /= shifted.sum(axis=1, keepdims=True)
        scale = np.where(known, scale * trained.mean(axis=0) / np.maximum(shifted.mean(axis=0), _EPS), 1.0)
    noise = posterior.T @ trained / np.maximum(posterior.sum(axis=0), _EPS)[:, None]
    if np.any(np.diag(noise) <= 0.5):
        return shifted
    prior = np.maximum(np.linalg.solve(noise.T, shifted.T).T, TRUE_PRIOR_FLOOR)
    out: FloatArray = prior / prior.sum(axis=1, keepdims=True)
    return out


def _one_accuracy_em(enc: Encoded, log_prior: FloatArray, n_iter: int, tol: float) -> FloatArray:
    """EM over one accuracy per annotator with a fixed prior per task (``model_assisted_proba``)."""
    k = enc.n_labels
    rows = np.arange(len(enc.task))
    answered = np.bincount(enc.worker, minlength=enc.n_workers).astype(float)
    proba: FloatArray = _vote_shares(enc) * np.exp(log_prior)
    proba /= proba.sum(axis=1, keepdims=True)
    for _ in range(n_iter):
        hits = np.bincount(enc.worker, weights=proba[enc.task, enc.label], minlength=enc.n_workers)
        accuracy = (hits + ACCURACY_PRIOR * ACCURACY_PRIOR_WEIGHT) / (answered + ACCURACY_PRIOR_WEIGHT)
        per_answer = np.repeat(np.log((1.0 - accuracy[enc.worker]) / max(k - 1, 1))[:, None], k, axis=1)
        per_answer[rows, enc.label] = np.log(accuracy[enc.worker])
        log_post = log_prior.copy()
        np.add.at(log_post, enc.task, per_answer)
        scaled = np.exp(log_post - log_post.max(axis=1, keepdims=True))
        new: FloatArray = scaled / scaled.sum(axis=1, keepdims=True)
        done = float(np.abs(new - proba).max()) < tol
        proba = new
        if done:
            break
    return proba


def model_assisted_proba(
    enc: Encoded, model_proba: pd.DataFrame, n_iter: int = 50, tol: float = 1e-6
) -> FloatArray:
    """Posterior labels with the model as one more annotator whose answer is a probability per label.

    EM over one accuracy per annotator (errors spread evenly over the other labels), with a prior per
    task from the model's calibrated out-of-fold probabilities: a task's posterior is that prior times
    each of its answers' likelihood, and each annotator's accuracy is the posterior mass on their
    answers, shrunk towards ``ACCURACY_PRIOR`` by ``ACCURACY_PRIOR_WEIGHT`` pseudo-answers (most
    annotators answer few tasks). So an accurate annotator outvotes the model and an unreliable one is
    outvoted by it. It helps where overlap is thin: with one label per task Dawid-Skene can only repeat
    it. Two passes: the first takes the probabilities as the prior; they were fitted to the training
    labels, not to the truth, so the second takes them de-noised by the noise of those labels that the
    first pass's posterior implies (``true_label_prior``; iterating this instead runs away, because with
    one label per task the noise is not identifiable: WNUT-17 fell to 0.65). One accuracy, not a
    confusion matrix: with few answers per annotator a full matrix overfits; CROWDLAB's weighted
    average (Goh et al., 2022) is undefined without overlap and no better with it (both measured in
    bench/bench_consensus_model.py, docs/quality.md).
    """
    model = align_model_proba(enc, model_proba)
    first = _one_accuracy_em(enc, np.log(model), n_iter, tol)
    return _one_accuracy_em(enc, np.log(true_label_prior(model, _trained_on(enc), first)), n_iter, tol)


# -- crowd-kit methods ------------------------------------------------------------------------------------------


def _crowdkit_labels(rows: pd.DataFrame, enc: Encoded, method: str) -> pd.DataFrame:
    """crowd-kit's labels and posteriors, fitted on the raw ids and labels.

    Raw values, not codes: MACE's random start and MV's tie-breaking depend on the order crowd-kit
    finds workers and labels in, so codes would not reproduce crowd-kit's published numbers.
    """
    from crowdkit.aggregation import GLAD as CrowdGLAD  # heavy imports, only when asked for
    from crowdkit.aggregation import MACE as CrowdMACE
    from crowdkit.aggregation import MajorityVote

    data = pd.DataFrame(
        {
            "task": rows["task_id"].to_numpy(object),
            "worker": rows["annotator"].to_numpy(object),
            "label": rows["value"].to_numpy(object),
        }
    )
    factories: dict[str, Callable[[], Any]] = {
        MAJORITY_VOTE: MajorityVote,
        GLAD: CrowdGLAD,
        MACE: lambda: CrowdMACE(random_state=0),
    }
    model = factories[method]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas FutureWarnings from inside crowd-kit
        model.fit(data)
    proba = model.probas_.reindex(index=enc.tasks, columns=enc.labels, fill_value=0.0).to_numpy(dtype=float)
    chosen = model.labels_.reindex(enc.tasks).to_numpy(object)
    column = {label: i for i, label in enumerate(enc.labels)}
    index = np.array([column[label] for label in chosen], dtype=np.int64)
    return pd.DataFrame(
        {"task_id": enc.tasks, "consensus": chosen, "confidence": proba[np.arange(enc.n_tasks), index]}
    )


def aggregate(rows: pd.DataFrame, method: str, model_proba: pd.DataFrame | None = None) -> pd.DataFrame:
    """Consensus of categorical answers (``task_id, annotator, value``) by one method: task_id, consensus, confidence.

    ``model_proba`` (task ids × labels) is the model's out-of-fold probabilities, for ``model_assisted``.
    """
    if rows.empty:
        return pd.DataFrame(columns=LABEL_COLUMNS)
    enc = encode(rows)
    if method == DAWID_SKENE:
        return _decode(enc, dawid_skene_proba(enc))
    if method == MODEL_ASSISTED:
        if model_proba is None:
            raise InputError("model_assisted consensus needs the model's out-of-fold probabilities")
        return _decode(enc, model_assisted_proba(enc, model_proba))
    if method in (MAJORITY_VOTE, GLAD, MACE):
        return _crowdkit_labels(rows, enc, method)
    raise InputError(
        f"unknown consensus method {method!r} (use one of {', '.join((*METHODS, MODEL_ASSISTED))})"
    )


def medoid(rows: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """Per task, the answer most similar on average to the others (confidence: that mean; NaN alone)."""
    stacked = pd.DataFrame(
        {
            "task_id": np.concatenate([pairs["task_id"].to_numpy(), pairs["task_id"].to_numpy()]),
            "annotator": np.concatenate(
                [pairs["annotator_a"].to_numpy(object), pairs["annotator_b"].to_numpy(object)]
            ),
            "similarity": np.concatenate([pairs["similarity"].to_numpy(float)] * 2),
        }
    )
    scores = stacked.groupby(["task_id", "annotator"], sort=False)["similarity"].mean().rename("confidence")
    ranked = rows[["task_id", "annotator", "value", "annotation_id"]].join(
        scores, on=["task_id", "annotator"]
    )
    ranked = ranked.sort_values(
        ["task_id", "confidence", "annotation_id"], ascending=[True, False, True], kind="stable"
    )
    best = ranked.drop_duplicates("task_id", keep="first")
    return pd.DataFrame(
        {
            "task_id": best["task_id"].to_numpy(),
            "consensus": best["value"].to_numpy(object),
            "confidence": best["confidence"].to_numpy(float),
            "annotation_id": best["annotation_id"].to_numpy(),
        }
    )


# -- choosing a method ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MethodOutcome:
    name: str
    labels: pd.DataFrame
    seconds: float
    gold_accuracy: float | None = None
    n_gold: int = 0
    skipped: str | None = None


@dataclass(frozen=True, slots=True)
class Consensus:
    """The consensus of one control: the chosen method's labels plus how every method did."""

    control: str
    chosen: str
    labels: pd.DataFrame  # task_id, consensus, confidence (+ annotation_id for the medoid)
    methods: dict[str, MethodOutcome] = field(default_factory=dict)

    @property
    def chosen_gold_accuracy(self) -> float | None:
        outcome = self.methods.get(self.chosen)
        return outcome.gold_accuracy if outcome else None

    def summary(self) -> dict[str, Any]:
        """JSON-able: per method gold accuracy, time, skip reason; the chosen method."""
        return {
            "control": self.control,
            "methods": {
                name: {
                    "gold_accuracy": jsonable(o.gold_accuracy, DECIMALS),
                    "n_gold": o.n_gold,
                    "seconds": round(o.seconds, 3),
                    **({"skipped": o.skipped} if o.skipped else {}),
                }
                for name, o in self.methods.items()
            },
            "chosen": self.chosen,
            "chosen_gold_accuracy": jsonable(self.chosen_gold_accuracy, DECIMALS),
        }


def gold_accuracy(labels: pd.DataFrame, gold: pd.Series) -> tuple[float | None, int]:
    """Share of gold tasks whose consensus equals the gold answer (``gold`` indexed by task id)."""
    joined = labels.set_index("task_id")["consensus"].reindex(gold.index)
    known = joined.notna()
    n = int(known.sum())
    if n == 0:
        return None, 0
    same = [a == b for a, b in zip(joined[known].to_numpy(object), gold[known].to_numpy(object), strict=True)]
    return float(np.mean(same)), n


def choose(outcomes: dict[str, MethodOutcome], min_gold: int) -> str:
    """Best gold accuracy when at least ``min_gold`` gold tasks were scored; Dawid-Skene otherwise and on ties."""
    scored = {n: o for n, o in outcomes.items() if o.gold_accuracy is not None and o.n_gold >= min_gold}
    if not scored:
        return DEFAULT_METHOD if DEFAULT_METHOD in outcomes else next(iter(outcomes))
    best = max(o.gold_accuracy or 0.0 for o in scored.values())
    tied = [n for n, o in scored.items() if (o.gold_accuracy or 0.0) >= best - 1e-12]
    return DEFAULT_METHOD if DEFAULT_METHOD in tied else tied[0]


def categorical_consensus(
    spec: ScoredControl,
    rows: pd.DataFrame,
    gold: pd.Series | None = None,
    *,
    methods: Sequence[str] = METHODS,
    min_gold: int = 10,
    slow_max_labels: int = SLOW_METHODS_MAX_LABELS,
    model_proba: pd.DataFrame | None = None,
) -> Consensus:
    """Run ``methods`` on one categorical control; choose by gold accuracy (``gold``: task id → answer).

    With ``model_proba`` (the model's out-of-fold probabilities, task ids × labels) model-assisted
    consensus runs too.
    """
    outcomes: dict[str, MethodOutcome] = {}
    for method in (*methods, MODEL_ASSISTED) if model_proba is not None else methods:
        if method in (GLAD, MACE) and len(rows) > slow_max_labels:
            empty = pd.DataFrame(columns=LABEL_COLUMNS)
            outcomes[method] = MethodOutcome(
                method, empty, 0.0, skipped=f"more than {slow_max_labels} labels"
            )
            continue
        started = time.perf_counter()
        labels = aggregate(rows, method, model_proba)
        seconds = time.perf_counter() - started
        accuracy, n_gold = gold_accuracy(labels, gold) if gold is not None else (None, 0)
        outcomes[method] = MethodOutcome(method, labels, seconds, accuracy, n_gold)
    ran = {n: o for n, o in outcomes.items() if o.skipped is None}
    if not ran:
        raise InputError("no consensus method could run (list at least majority_vote or dawid_skene)")
    chosen = choose(ran, min_gold)
    return Consensus(spec.name, chosen, outcomes[chosen].labels, outcomes)


def structured_consensus(
    spec: ScoredControl, rows: pd.DataFrame, pairs: pd.DataFrame, gold: pd.Series | None
) -> Consensus:
    """The medoid consensus of a non-categorical control."""
    started = time.perf_counter()
    labels = medoid(rows, pairs)
    outcome = MethodOutcome(MEDOID, labels, time.perf_counter() - started)
    if gold is not None:
        accuracy, n_gold = gold_accuracy(labels, gold)
        outcome = MethodOutcome(MEDOID, labels, outcome.seconds, accuracy, n_gold)
    return Consensus(spec.name, MEDOID, labels, {MEDOID: outcome})
