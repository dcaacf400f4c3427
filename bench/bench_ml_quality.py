"""Model quality of the ML backend's models on the shared datasets (printed figures, not a test).

- Learning curves of single-choice text classification (accuracy, macro-F1, ECE at 50, 100, 300 and
  1,000 labels, mean of 5 seeds) on sms_spam, snow2008_rte (text + hypothesis), WNUT-17 "has an
  entity", a balanced sentiment set from the demo corpus generator and the harder synthetic one of
  ``bench.sentiment_set`` (``sentiment``): the backend's selected, calibrated model against, in the
  same run, the reference backend's model (TF-IDF 1-3-grams + LogisticRegression C=10) and every
  candidate fixed in advance. With ``data/word-vectors.npz`` (``make word-clusters``) the candidates
  include the pooled GloVe ones, as in a backend with WORD_VECTORS, and each point also prints the
  best of them against the best TF-IDF-only candidate and ours against the selection without them, and ``vector_speed`` their prediction time
  against the TF-IDF union's in the same process. Each seed draws a stratified training sample from
  the pool; the test set (30 %, at most 2,000) is fixed per dataset.

- sms_spam: stratified 5-fold CV (shuffled, seed 0) of the backend's single-choice classifier, against
  a plain TF-IDF + LinearSVC measured in the same run (the datasets README's reference setup).
- WNUT-17: the backend's span tagger trained on train, entity-level exact-match F1 on test (and dev),
  against the same CRF with Viterbi decoding and a lexicon baseline (entity strings seen in training,
  matched exactly; WNUT-17's test entities share no surface form with train, so it scores 0 there);
  once without and, when ``data/word-clusters.npz`` exists (``make word-clusters``), once with the
  clusters of GloVe 6B 100-d vectors as features.
  Texts are the CoNLL tokens joined by spaces and entities are character spans, as Label Studio has them.

- Training time of a single-choice control (``fit_control``: one model selection whose out-of-fold
  probabilities give the metrics) against the two selections it replaced, on 300 and 1,000 sms_spam labels.

Run: ``.venv/bin/python -m bench.bench_ml_quality [--with-dev] [--curves-only] [--seeds 5]
[--sizes 50,100,300,1000] [--datasets sms,rte,wnut_entity,reviews,sentiment]``, or ``--training-only
[--sizes 300,1000]`` (``--with-dev`` also trains the
tagger on train+dev, which the shared-task systems were allowed to do).
"""

from __future__ import annotations

import csv
import re
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC

from bench import SHARED_DATASETS as DATASETS
from bench import WORD_CLUSTERS, WORD_VECTORS, sentiment_set
from bench.bench_al_efficiency import balanced_reviews, wnut_entity_dataset
from ls_companion.modelselect import SelectedModel, expected_calibration_error
from ls_companion.textclassifier import TextClassifier
from ls_companion.wordvectors import WordVectors, single_choice_candidates
from ml_backend.dataset import Example
from ml_backend.evaluation import span_metrics
from ml_backend.labelconfig import ControlSpec
from ml_backend.models.span_tagger import SpanTagger
from ml_backend.models.word_clusters import WordClusters
from ml_backend.training import fit_control

Doc = tuple[str, list[tuple[int, int, str]]]


def load_sms() -> tuple[list[str], NDArray[np.object_]]:
    with (DATASETS / "sms_spam" / "sms_spam.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [r["text"] for r in rows], np.array([r["label"] for r in rows], dtype=object)


def sms_cv() -> None:
    texts, labels = load_sms()
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    ours: list[tuple[float, float, float]] = []
    base: list[tuple[float, float, float]] = []
    fit_seconds = 0.0
    for train, test in folds.split(texts, labels):
        x_train, x_test = [texts[i] for i in train], [texts[i] for i in test]
        started = time.perf_counter()
        model = TextClassifier("single").fit(x_train, list(labels[train]))
        fit_seconds += time.perf_counter() - started
        predicted = np.array(model.classes_, dtype=object)[model.predict_proba(x_test).argmax(axis=1)]
        ours.append(_scores(labels[test], predicted))
        vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
        svc = LinearSVC(random_state=0).fit(vectorizer.fit_transform(x_train), labels[train])
        base.append(_scores(labels[test], svc.predict(vectorizer.transform(x_test))))
    mine, ref = np.mean(ours, axis=0), np.mean(base, axis=0)
    print("sms_spam, 5-fold CV (5,574 texts)")
    print(f"  {'model':44s} {'accuracy':>9s} {'spam F1':>8s} {'macro F1':>9s}")
    print(
        f"  {'backend: TF-IDF 1-2g + logistic regression':44s} {mine[0]:9.4f} {mine[1]:8.4f} {mine[2]:9.4f}"
    )
    print(f"  {'baseline: TF-IDF 1-2g + LinearSVC':44s} {ref[0]:9.4f} {ref[1]:8.4f} {ref[2]:9.4f}")
    print(f"  ratio backend/baseline: accuracy {mine[0] / ref[0]:.4f}, spam F1 {mine[1] / ref[1]:.4f}")
    print(f"  backend fit time per fold: {fit_seconds / 5:.2f} s")


def _scores(truth: NDArray[np.object_], predicted: NDArray[np.object_]) -> tuple[float, float, float]:
    return (
        float(accuracy_score(truth, predicted)),
        float(f1_score(truth, predicted, pos_label="spam", average="binary")),
        float(f1_score(truth, predicted, average="macro")),
    )


def load_conll(name: str) -> list[Doc]:
    docs: list[Doc] = []
    tokens: list[tuple[str, str]] = []
    lines = (DATASETS / "wnut17" / f"{name}.conll").read_text(encoding="utf-8").splitlines()
    for line in [*lines, ""]:
        if line:
            token, tag = line.split(" ")
            tokens.append((token, tag))
            continue
        if tokens:
            docs.append(_to_doc(tokens))
            tokens = []
    return docs


def _to_doc(tokens: list[tuple[str, str]]) -> Doc:
    text = ""
    spans: list[list[object]] = []
    for token, tag in tokens:
        start = len(text) + (1 if text else 0)
        text = f"{text} {token}" if text else token
        if tag.startswith("B-"):
            spans.append([start, len(text), tag[2:]])
        elif tag.startswith("I-") and spans:
            spans[-1][1] = len(text)
    return text, [(int(str(s)), int(str(e)), str(label)) for s, e, label in spans]


def lexicon_baseline(train: list[Doc], test: list[Doc]) -> dict[str, float]:
    """Tag every exact occurrence of an entity string seen in training with its most frequent type."""
    counts: dict[str, dict[str, int]] = {}
    for text, spans in train:
        for s, e, label in spans:
            counts.setdefault(text[s:e], {}).setdefault(label, 0)
            counts[text[s:e]][label] += 1
    lexicon = {surface: max(types, key=types.__getitem__) for surface, types in counts.items()}
    if not lexicon:
        return span_metrics([spans for _, spans in test], [[] for _ in test])
    pattern = re.compile(
        r"(?<!\S)(" + "|".join(map(re.escape, sorted(lexicon, key=len, reverse=True))) + r")(?!\S)"
    )
    found = [[(m.start(), m.end(), lexicon[m.group()]) for m in pattern.finditer(text)] for text, _ in test]
    return span_metrics([spans for _, spans in test], found)


def _spans(model: SpanTagger, split: list[Doc]) -> list[list[tuple[int, int, str]]]:
    return [[(s.start, s.end, s.label) for s in t.spans] for t in model.predict([t for t, _ in split])]


def _evaluate_tagger(model: SpanTagger, split_name: str, split: list[Doc]) -> None:
    gold = [s for _, s in split]
    started = time.perf_counter()
    ours = span_metrics(gold, _spans(model, split))
    seconds = time.perf_counter() - started
    threshold, model.outside_threshold = model.outside_threshold, None
    plain = span_metrics(gold, _spans(model, split))
    model.outside_threshold = threshold
    print(
        f"    {split_name:4s} posterior decoding: F1 {100 * ours['f1']:5.2f}  "
        f"P {100 * ours['precision']:5.2f}  R {100 * ours['recall']:5.2f}  "
        f"({len(split) / seconds:,.0f} sentences/s)"
    )
    print(
        f"    {split_name:4s} Viterbi decoding:   F1 {100 * plain['f1']:5.2f}  "
        f"(posterior/Viterbi {ours['f1'] / max(plain['f1'], 1e-9):.2f}x)"
    )


def wnut(with_dev: bool) -> None:
    train, dev, test = load_conll("train"), load_conll("dev"), load_conll("test")
    print(
        f"\nWNUT-17 (train {len(train)}, dev {len(dev)}, test {len(test)} sentences), entity-level exact match"
    )
    variants: list[tuple[str, WordClusters | None]] = [("backend CRF", None)]
    if WORD_CLUSTERS.is_file():
        clusters = WordClusters.load(WORD_CLUSTERS)
        variants.append((f"backend CRF + GloVe clusters ({len(clusters):,} words)", clusters))
    else:
        print(f"  no {WORD_CLUSTERS}: `make word-clusters` adds the run with GloVe clusters")
    runs = [("train", train)] + ([("train+dev", train + dev)] if with_dev else [])
    for name, data in runs:
        for variant, word_clusters in variants:
            started = time.perf_counter()
            model = SpanTagger(word_clusters=word_clusters).fit([t for t, _ in data], [s for _, s in data])
            print(f"  {variant}, trained on {name} in {time.perf_counter() - started:.0f} s")
            for split_name, split in ([("dev", dev)] if name == "train" else []) + [("test", test)]:
                _evaluate_tagger(model, split_name, split)
        for split_name, split in ([("dev", dev)] if name == "train" else []) + [("test", test)]:
            lexicon = lexicon_baseline(data, split)
            print(f"  {split_name:4s} baseline lexicon of {name} entities: F1 {100 * lexicon['f1']:5.2f}")
    print("  reference (shared task 2017, test F1): UH-RiTUAL 41.86 ... Drexel-CCI 26.30; target >= 30")


def load_rte() -> tuple[list[str], list[str]]:
    folder = DATASETS / "snow2008_rte"
    with (folder / "gold.csv").open(newline="", encoding="utf-8") as handle:
        gold = {r["item"]: r["label"] for r in csv.DictReader(handle)}
    with (folder / "items.csv").open(newline="", encoding="utf-8") as handle:
        items = list(csv.DictReader(handle))
    return [f"{r['text']} || {r['hypothesis']}" for r in items], [gold[r["item"]] for r in items]


def load_reviews() -> tuple[list[str], list[str]]:
    data = balanced_reviews()
    return list(data.texts), list(data.labels)


def load_sentiment() -> tuple[list[str], list[str]]:
    data = sentiment_set.generate()
    return list(data.texts), list(data.labels)


def load_wnut_entity() -> tuple[list[str], list[str]]:
    data = wnut_entity_dataset()
    return list(data.texts), list(data.labels)


CURVE_DATASETS: dict[str, Callable[[], tuple[list[str], list[str]]]] = {
    "sms": lambda: (load_sms()[0], [str(v) for v in load_sms()[1]]),
    "rte": load_rte,
    "wnut_entity": load_wnut_entity,
    "reviews": load_reviews,
    "sentiment": load_sentiment,
}


def reference_model() -> Pipeline:
    """The reference backend's model (its sklearn example): TF-IDF 1-3-grams + LogisticRegression C=10."""
    return Pipeline(
        [("tfidf", TfidfVectorizer(ngram_range=(1, 3))), ("lr", LogisticRegression(C=10, max_iter=1000))]
    )


def _metrics(model: Any, texts: list[str], truth: NDArray[np.object_]) -> tuple[float, float, float]:
    proba = np.asarray(model.predict_proba(texts), dtype=np.float64)
    classes = np.array([str(c) for c in model.classes_], dtype=object)
    index = np.array([list(classes).index(t) for t in truth])
    predicted = classes[proba.argmax(axis=1)]
    return (
        float(accuracy_score(truth, predicted)),
        float(f1_score(truth, predicted, average="macro")),
        expected_calibration_error(proba, index),
    )


def curves(names: list[str], sizes: list[int], seeds: int) -> None:
    vectors = WordVectors.load(WORD_VECTORS) if WORD_VECTORS.is_file() else None
    candidates = single_choice_candidates(vectors)
    print(f"\nLearning curves: accuracy / macro-F1 / ECE (10 bins), mean of {seeds} seeds")
    if vectors is None:
        print(f"  no {WORD_VECTORS}: `make word-clusters` adds the pooled GloVe candidates")
    for name in names:
        texts, labels = CURVE_DATASETS[name]()
        y = np.array(labels, dtype=object)
        pool, test = train_test_split(
            np.arange(len(y)), test_size=min(0.3, 2000 / len(y)), random_state=0, stratify=y
        )
        test_texts = [texts[i] for i in test]
        counts = {c: int((y == c).sum()) for c in sorted(set(labels))}
        print(f"\n## {name}: {len(y)} texts {counts}, pool {len(pool)}, test {len(test)}")
        fixed = [(c.name, c.make) for c in candidates]
        models: list[tuple[str, Callable[[], Any]]] = [("reference 1-3g C=10", reference_model), *fixed]
        if vectors is not None:  # what a backend without WORD_VECTORS selects, for the difference
            models.append(("selected without vectors", lambda: SelectedModel(single_choice_candidates(None))))
        models.append(("ours: selected + calibrated", lambda: SelectedModel(candidates)))
        table: dict[str, dict[int, tuple[float, float, float]]] = {m: {} for m, _ in models}
        compared = [m for m, _ in models if m.startswith(("ours", "selected"))]
        paired: dict[str, dict[int, tuple[float, float]]] = {m: {} for m in compared}
        seconds: dict[int, float] = {}
        for n in [n for n in sizes if n < len(pool)]:
            scores: dict[str, list[tuple[float, float, float]]] = {m: [] for m, _ in models}
            for seed in range(seeds):
                train, _ = train_test_split(pool, train_size=n, random_state=seed, stratify=y[pool])
                x, t = [texts[i] for i in train], list(y[train])
                for model_name, make in models:
                    started = time.perf_counter()
                    model = make().fit(x, t)
                    if model_name.startswith("ours"):
                        seconds[n] = seconds.get(n, 0.0) + (time.perf_counter() - started) / seeds
                    scores[model_name].append(_metrics(model, test_texts, y[test]))
            for model_name in scores:
                mean = np.mean(scores[model_name], axis=0)
                table[model_name][n] = (float(mean[0]), float(mean[1]), float(mean[2]))
            for model_name in compared:
                paired[model_name][n] = _paired(scores[model_name], scores[models[0][0]])
        done = sorted(seconds)
        print(f"  {'model':30s} " + " ".join(f"{f'n={n}':>20s}" for n in done))
        for model_name, row in table.items():
            print(f"  {model_name:30s} " + " ".join(f"{_triple(row[n]):>20s}" for n in done))
        ours, reference = table[models[-1][0]], table[models[0][0]]
        for n in done:
            best_name = max((m for m, _ in fixed), key=lambda m: table[m][n][0])
            best = table[best_name][n]
            print(
                f"  n={n}: ours - reference accuracy {ours[n][0] - reference[n][0]:+.3f}, macro-F1 "
                f"{ours[n][1] - reference[n][1]:+.3f}; ours - best fixed in hindsight ({best_name}) "
                f"accuracy {ours[n][0] - best[0]:+.3f}, macro-F1 {ours[n][1] - best[1]:+.3f}; "
                f"selection {seconds[n]:.1f} s"
            )
            print(
                f"  n={n}: paired over the seeds, accuracy - reference (mean ± standard error): "
                + "; ".join(f"{m} {paired[m][n][0]:+.3f} ± {paired[m][n][1]:.3f}" for m in compared)
            )
            if vectors is not None:
                tfidf = max((m for m, _ in fixed if "vectors" not in m), key=lambda m: table[m][n][0])
                pooled = max((m for m, _ in fixed if "vectors" in m), key=lambda m: table[m][n][0])
                print(
                    f"  n={n}: best vector candidate ({pooled}) - best TF-IDF-only ({tfidf}) accuracy "
                    f"{table[pooled][n][0] - table[tfidf][n][0]:+.3f}; ours - best TF-IDF-only "
                    f"{ours[n][0] - table[tfidf][n][0]:+.3f}; ours - selected without vectors "
                    f"{ours[n][0] - table['selected without vectors'][n][0]:+.3f}"
                )


def training_time(sizes: list[int], repeats: int = 3) -> None:
    """Seconds of one control's training (``fit_control``) against the two selections it used to run (on
    an 80 % split, measuring the other 20 %, then on all), alternated on the same sms_spam sample."""
    texts, labels = load_sms()
    spec = ControlSpec("label", "Choices", "single", "text", "text", ("ham", "spam"))
    print(f"\nTraining time of a single-choice control on sms_spam (median of {repeats}, alternated)")
    for n in sizes:
        rows, _ = train_test_split(np.arange(len(labels)), train_size=n, random_state=0, stratify=labels)
        x, t = [texts[i] for i in rows], [str(labels[i]) for i in rows]

        def twice(x: list[str] = x, t: list[str] = t) -> None:
            part, held = train_test_split(np.arange(len(t)), test_size=0.2, random_state=0, stratify=t)
            probe = SelectedModel(single_choice_candidates(None)).fit(
                [x[i] for i in part], [t[i] for i in part]
            )
            probe.predict_proba([x[i] for i in held])
            SelectedModel(single_choice_candidates(None)).fit(x, t)

        def once(x: list[str] = x, t: list[str] = t) -> None:
            fit_control(
                spec, [Example(k, text, label) for k, (text, label) in enumerate(zip(x, t, strict=True))]
            )

        seconds: dict[str, list[float]] = {"twice": [], "once": []}
        for _ in range(repeats):
            for name, run in (("twice", twice), ("once", once)):
                started = time.perf_counter()
                run()
                seconds[name].append(time.perf_counter() - started)
        before, after = (float(np.median(seconds[k])) for k in ("twice", "once"))
        print(
            f"  n={n}: two selections (holdout, then all) {before:.1f} s, one selection (out-of-fold "
            f"metrics) {after:.1f} s: {after / before:.2f}x"
        )


def _paired(
    ours: list[tuple[float, float, float]], reference: list[tuple[float, float, float]]
) -> tuple[float, float]:
    """Mean and standard error of the per-seed accuracy difference: the seeds share samples and test set,
    so this is what tells a real difference from the luck of 5 samples."""
    difference = np.array([a[0] - b[0] for a, b in zip(ours, reference, strict=True)])
    spread = float(difference.std(ddof=1) / np.sqrt(len(difference))) if len(difference) > 1 else float("nan")
    return float(difference.mean()), spread


def _triple(values: tuple[float, float, float]) -> str:
    return "/".join(f"{v:.3f}" for v in values)


def _option(argv: list[str], name: str, default: str) -> str:
    return argv[argv.index(name) + 1] if name in argv else default


def vector_speed(repeats: int = 7) -> None:
    """Prediction time of the vector candidates against the TF-IDF union they extend, same process:
    each trained on 1,000 sentiment reviews, predicting 1,000 others, passes alternated, best kept."""
    if not WORD_VECTORS.is_file():
        return
    texts, labels = load_sentiment()
    candidates = {c.name: c for c in single_choice_candidates(WordVectors.load(WORD_VECTORS))}
    names = ("union-balanced-C10", "union+vectors-balanced-C10", "vectors-balanced-C1")
    models = {name: candidates[name].make().fit(texts[:1000], labels[:1000]) for name in names}
    batch = texts[1000:2000]
    best = {name: float("inf") for name in names}
    for _ in range(repeats):
        for name, model in models.items():
            started = time.perf_counter()
            model.predict_proba(batch)
            best[name] = min(best[name], time.perf_counter() - started)
    print(f"\nPrediction of 1,000 sentiment reviews, best of {repeats} alternated passes (one process)")
    for name in names:
        ratio = best[name] / best[names[0]]
        print(f"  {name:28s} {1000 * best[name]:7.1f} ms  ({ratio:.2f}x {names[0]})")


def main(argv: list[str]) -> int:
    names = _option(argv, "--datasets", ",".join(CURVE_DATASETS)).split(",")
    sizes = [int(n) for n in _option(argv, "--sizes", "50,100,300,1000").split(",")]
    if "--training-only" in argv:
        training_time([int(n) for n in _option(argv, "--sizes", "300,1000").split(",")])
        return 0
    curves(names, sizes, int(_option(argv, "--seeds", "5")))
    vector_speed()
    if "--curves-only" not in argv:
        training_time([300, 1000])
        sms_cv()
        wnut("--with-dev" in argv)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
