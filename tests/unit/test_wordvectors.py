"""Pretrained word vectors as text-classification features: pooling, the file, the candidates, the backend."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from ls_companion.modelselect import SelectedModel
from ls_companion.textclassifier import TextClassifier, text_candidates
from ls_companion.wordvectors import WEIGHT_RANK, VectorTextClassifier, WordVectors, vector_candidates
from ml_backend.cli import main as ml_backend_main
from ml_backend.errors import ConfigurationError
from ml_backend.settings import load_backend_settings

# Sentiment words sit near one of two axes; neutral words near a third.
GOOD = ["good", "great", "superb", "lovely", "splendid", "fine", "brilliant", "excellent"]
BAD = ["bad", "awful", "dreadful", "poor", "abysmal", "horrid", "terrible", "lousy"]
NEUTRAL = ["the", "kettle", "is", "was", "lamp", "it", "box"]


def _vectors() -> WordVectors:
    rng = np.random.default_rng(0)
    words = GOOD + BAD + NEUTRAL
    matrix = rng.normal(0.0, 0.1, (len(words), 6))
    for k, word in enumerate(words):
        matrix[k, 0 if word in GOOD else 1 if word in BAD else 2] += 1.0
    return WordVectors(words, matrix)


def _reviews(words: list[str], label: str) -> tuple[list[str], list[str]]:
    texts = [
        f"the {item} {verb} {word}" for word in words for item in ("kettle", "lamp") for verb in ("is", "was")
    ]
    return texts, [label] * len(texts)


def test_pool_weights_unit_vectors_by_rank_and_gives_an_unknown_word_its_stems_vector() -> None:
    vectors = _vectors()
    raw = vectors.vectors.astype(np.float64)
    unit = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    kettle = len(GOOD) + len(BAD) + 1  # row 17: rank 18
    good_weight, kettle_weight = 1 / (1 + WEIGHT_RANK), 18 / (18 + WEIGHT_RANK)
    pooled = vectors.pool(["GOOD kettle", "zzz qqq", "", "good, good! unknown", "greatness AWFULLY", "x"])
    expected = (good_weight * unit[0] + kettle_weight * unit[kettle]) / (good_weight + kettle_weight)
    assert np.allclose(pooled[0], expected)
    assert np.array_equal(pooled[1], np.zeros(6)) and np.array_equal(pooled[2], np.zeros(6))
    assert np.allclose(pooled[3], unit[0])
    assert np.allclose(pooled[4], vectors.pool(["great awful"])[0])  # "-ness", "-ly" taken off
    assert pooled.shape == (6, 6) and vectors.pool([]).shape == (0, 6)
    plain = vectors.pool(["GOOD kettle", "greatness", "good, good! unknown"], weighted=False)
    assert np.allclose(plain, [(raw[0] + raw[kettle]) / 2, np.zeros(6), raw[0]])  # as before the weights


def test_vectors_survive_save_load_and_pickle_as_one_shared_instance(tmp_path: Path) -> None:
    path = tmp_path / "vectors.npz"
    _vectors().save(path)
    loaded = WordVectors.load(path)
    assert loaded is WordVectors.load(path) and loaded is pickle.loads(pickle.dumps(loaded))
    assert len(loaded) == 23 and loaded.dimensions == 6 and loaded.vectors.dtype == np.float16
    assert np.array_equal(loaded.pool(["awful lamp"]), _vectors().pool(["awful lamp"]))
    path.write_bytes(b"not vectors")
    with pytest.raises(ValueError, match="not a word-vectors file"):
        WordVectors.load(path)


def test_the_vectors_classify_sentiment_words_never_seen_in_training() -> None:
    good, good_labels = _reviews(GOOD[:3], "Positive")
    bad, bad_labels = _reviews(BAD[:3], "Negative")
    texts, labels = good + bad, good_labels + bad_labels
    unseen = [
        "the kettle is splendid",
        "the lamp was brilliant",
        "the kettle is abysmal",
        "the lamp was horrid",
    ]
    tfidf = TextClassifier(features="union").fit(texts, labels)
    assert np.allclose(tfidf.predict_proba(unseen), 0.5, atol=0.15)  # no word it knows decides
    vectors = _vectors()
    for features in ("none", "union"):
        model = VectorTextClassifier(vectors=vectors, features=features).fit(texts, labels)
        assert model.classes_ == ("Negative", "Positive")
        proba = model.predict_proba(unseen)
        assert list(proba.argmax(axis=1)) == [1, 1, 0, 0] and np.allclose(proba.sum(axis=1), 1.0)
        again = pickle.loads(pickle.dumps(model))
        assert np.array_equal(again.predict_proba(unseen), proba) and again.vectors is vectors


def test_the_fast_path_equals_a_logistic_regression_over_the_explicit_features() -> None:
    good, _ = _reviews(GOOD, "Positive")
    bad, _ = _reviews(BAD, "Negative")
    texts = good + bad
    model = VectorTextClassifier(vectors=_vectors(), features="union").fit(
        texts, ["P"] * len(good) + ["N"] * len(bad)
    )
    parts = [v.transform(texts).toarray() for v in model.vectorizers_]
    dense = (model.vectors.pool(texts) - model.center_) / model.scale_
    logits = np.hstack([*parts, dense]) @ model.coef_[0] + model.intercept_[0]
    assert np.allclose(model.predict_proba(texts)[:, 1], 1.0 / (1.0 + np.exp(-logits)))


def test_a_model_pickled_before_the_weighting_pools_as_it_was_trained() -> None:
    good, good_labels = _reviews(GOOD, "Positive")
    bad, bad_labels = _reviews(BAD, "Negative")
    model = VectorTextClassifier(vectors=_vectors()).fit(good + bad, good_labels + bad_labels)
    assert model.weighted_ is True
    del model.weighted_  # as unpickled from a version trained before it
    texts = ["the kettle is greatness", "the lamp was awful"]
    plain = (model.vectors.pool(texts, weighted=False) - model.center_) / model.scale_
    assert np.allclose(model._extra_features(texts)[0].toarray(), plain)


def test_selection_scores_the_vector_candidates_and_a_version_keeps_only_a_winners_vectors() -> None:
    vectors = _vectors()
    candidates = (text_candidates()[0], *vector_candidates(vectors))
    good, good_labels = _reviews(GOOD, "Positive")
    bad, bad_labels = _reviews(BAD, "Negative")
    texts, labels = good + bad, good_labels + bad_labels
    model = SelectedModel(candidates).fit(texts, labels)
    names = [s["name"] for s in model.selection_.metadata()["candidates"]]
    assert names == ["word-C10", "vectors-balanced-C1", "union+vectors-balanced-C10"]
    again = pickle.loads(pickle.dumps(model))
    assert np.array_equal(
        again.predict_proba(["the box is lovely"]), model.predict_proba(["the box is lovely"])
    )
    raw = vectors.vectors.tobytes()
    assert (raw in pickle.dumps(model)) == ("vectors" in model.selection_.name)
    few = SelectedModel(candidates).fit(texts[:4] + texts[-4:], labels[:4] + labels[-4:])
    assert few.selection_.name == "word-C10"  # too few labels to cross-validate: the default
    assert raw not in pickle.dumps(few)  # the candidates pickle by the vectors' digest
    assert pickle.loads(pickle.dumps(few)).candidates[1].make().vectors is vectors  # loaded here


def test_word_vectors_command_setting_and_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ml_backend.dataset import Example
    from ml_backend.labelconfig import ControlSpec
    from ml_backend.training import fit_control

    text, out = tmp_path / "glove.txt", tmp_path / "out" / "vectors.npz"
    source = _vectors()
    words = GOOD + BAD + NEUTRAL
    text.write_text(
        "".join(
            f"{w} " + " ".join(f"{x:.4f}" for x in v) + "\n"
            for w, v in zip(words, source.vectors, strict=True)
        ),
        encoding="utf-8",
    )
    assert ml_backend_main(["word-vectors", str(text), str(out), "--limit", "20"]) == 0
    assert "20 words x 6 dimensions" in capsys.readouterr().out
    assert len(WordVectors.load(out)) == 20
    settings = load_backend_settings(
        word_vectors=str(out), model_dir=str(tmp_path / "models"), selection_budget_seconds=600
    )
    assert settings.word_vectors == out
    with pytest.raises(ConfigurationError, match=r"WORD_VECTORS: .*no such file"):
        load_backend_settings(word_vectors=str(tmp_path / "missing.npz"))
    choices = ControlSpec("sentiment", "Choices", "single", "text", "text", ("Negative", "Positive"))
    good, good_labels = _reviews(GOOD, "Positive")
    bad, bad_labels = _reviews(BAD, "Negative")
    items = [
        Example(k, t, label)
        for k, (t, label) in enumerate(zip(good + bad, good_labels + bad_labels, strict=True))
    ]
    scored = [c["name"] for c in fit_control(choices, items, settings=settings).report["model"]["candidates"]]
    assert scored == [c.name for c in text_candidates()] + [
        "vectors-balanced-C1",
        "union+vectors-balanced-C10",
    ]
    plain = fit_control(choices, items, settings=load_backend_settings(model_dir=str(tmp_path)))
    assert not any("vectors" in c["name"] for c in plain.report["model"]["candidates"])
