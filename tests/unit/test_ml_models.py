"""The backend's pure core: config parsing, models, uncertainty aggregation, result items, consensus."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from label_studio_sdk.label_interface.interface import LabelInterface

from ls_companion.records import Annotation, Task
from ls_companion.textclassifier import TextClassifier, text_candidates
from ml_backend.dataset import examples, majority_consensus, task_target
from ml_backend.errors import InvalidLabelConfig
from ml_backend.labelconfig import ControlSpec, parse_label_config
from ml_backend.models.span_tagger import (
    SpanTagger,
    TaggedText,
    _WordCounts,
    sentence_features,
    spans_to_tags,
    tags_to_spans,
)
from ml_backend.models.tokens import tokenize
from ml_backend.results import class_output, span_results
from ml_backend.scoring import class_uncertainties, multi_label_uncertainties, span_uncertainties

CONFIGS = Path(__file__).resolve().parents[2] / "label_configs"
SINGLE = ControlSpec("label", "Choices", "single", "text", "text", ("ham", "spam"))
MULTI = ControlSpec("tags", "Choices", "multi", "text", "text", ("a", "b", "c"))
SPANS = ControlSpec("labels", "Labels", "spans", "text", "text", ("Person", "Location"))


def test_repository_configs_are_classified() -> None:
    served = {p.stem: parse_label_config(p.read_text()) for p in CONFIGS.glob("*.xml")}
    assert [(c.kind, c.classes[:2]) for c in served["sentiment"].controls] == [
        ("single", ("Positive", "Negative"))
    ]
    assert served["multilabel_classification"].controls[0].kind == "multi"
    assert served["ner"].controls[0].kind == "spans" and served["ner"].controls[0].value_key == "text"
    [image] = served["image_classification"].controls
    assert (image.plugin, image.object_tag, image.kind) == ("image-classifier", "Image", "single")
    [ocr] = served["ocr"].controls
    assert (ocr.plugin, ocr.option("textarea"), ocr.option("label")) == ("ocr", "transcription", "Text")
    assert served["ocr"].unsupported == ()  # the per-region TextArea is filled in by the OCR plugin
    for name in ("object_detection", "segmentation", "audio_transcription"):
        assert served[name].controls == () and served[name].unsupported
    reasons = [u.reason for u in served["object_detection"].unsupported]
    assert reasons == ["boxes on image without a per-region TextArea need a detector plugin"]


def test_unsupported_controls_say_why_and_bad_configs_fail_with_the_field() -> None:
    config = """<View><Text name="t" value="$t"/><Audio name="i" value="$audio"/>
      <Choices name="c" toName="i"><Choice value="x"/><Choice value="y"/></Choices>
      <Choices name="ok" toName="t"><Choice value="x"/><Choice value="y"/></Choices>
      <TextArea name="ta" toName="t"/></View>"""
    parsed = parse_label_config(config)
    assert [c.name for c in parsed.controls] == ["ok"]
    reasons = {u.name: u.reason for u in parsed.unsupported}
    assert reasons["c"].startswith("Choices on Audio is not served (served: Choices on Text, Labels on Text")
    assert "TextArea on Text is not served" in reasons["ta"]
    assert parse_label_config(config) is parsed  # cached by hash
    with pytest.raises(InvalidLabelConfig) as raised:
        parse_label_config("<View")
    assert raised.value.field == "label_config" and raised.value.status == 422


def test_single_choice_classifier_follows_sklearn_conventions() -> None:
    texts = ["win cash now", "free prize call", "lunch tomorrow?", "see you at home"] * 3
    labels = ["spam", "spam", "ham", "ham"] * 3
    model = TextClassifier("single")
    with pytest.raises(ValueError, match="not trained"):
        model.predict_proba(["x"])
    assert model.fit(texts, labels) is model
    assert model.classes_ == ("ham", "spam")
    proba = model.predict_proba(["free cash prize", "see you at lunch"])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert proba[0, 1] > 0.5 > proba[1, 1]
    with pytest.raises(ValueError, match="two classes"):
        TextClassifier("single").fit(["a", "b"], ["x", "x"])


def test_three_classes_and_multi_label_with_a_constant_label() -> None:
    model = TextClassifier("single").fit(["good", "bad", "meh"] * 4, ["pos", "neg", "neu"] * 4)
    assert model.predict_proba(["good"]).shape == (1, 3)
    texts = ["red apple", "green apple", "red car", "blue car"] * 3
    tags = [["red", "fruit"], ["fruit"], ["red"], []] * 3
    multi = TextClassifier("multi").fit(texts, tags)
    assert multi.classes_ == ("fruit", "red")
    proba = multi.predict_proba(["red apple"])
    assert proba.shape == (1, 2) and (proba > 0.5).all()
    always = TextClassifier("multi").fit(["x", "y"], [["k"], ["k"]])
    assert always.predict_proba(["z"])[0, 0] > 0.99


def test_a_fit_does_not_depend_on_numpys_global_random_state() -> None:
    # liblinear (binary and multi-label fits) shuffles rows; unseeded it drew from np.random, so two
    # fits on the same labels differed by ~1e-5 and the simulation's curves were not repeatable.
    texts = [f"offer {i} win cash now" if i % 3 else f"see you at {i} tonight" for i in range(60)]
    labels = ["spam" if i % 3 else "ham" for i in range(60)]
    weights = []
    for seed in (0, 1):
        np.random.seed(seed)
        weights.append(TextClassifier("single").fit(texts, labels).coef_)
    np.testing.assert_array_equal(weights[0], weights[1])


def test_tokens_keep_offsets_and_split_clitics() -> None:
    text = "Obama's U.S. trip don't #NewYork @bob http://x.co/a"
    tokens = tokenize(text)
    assert [t.text for t in tokens] == [
        "Obama",
        "'s",
        "U.S.",
        "trip",
        "do",
        "n't",
        "#NewYork",
        "@bob",
        "http://x.co/a",
    ]
    assert all(text[t.start : t.end] == t.text for t in tokens)


def test_bio_round_trip() -> None:
    text = "Ada Lovelace lived in London ."
    tokens = tokenize(text)
    spans = [(0, 12, "Person"), (22, 28, "Location")]
    tags = spans_to_tags(tokens, spans)
    assert tags == ["B-Person", "I-Person", "O", "O", "B-Location", "O"]
    assert [(s, e, label) for s, e, label, _ in tags_to_spans(tokens, tags)] == spans


def test_span_tagger_learns_and_predicts_valid_regions() -> None:
    names = ["Alice", "Bob", "Carol", "Dave"]
    cities = ["Paris", "Rome", "Oslo", "Lima"]
    texts, spans = [], []
    for name in names:
        for city in cities:
            text = f"{name} flew to {city} today"
            texts.append(text)
            spans.append(
                [(0, len(name), "Person"), (text.index(city), text.index(city) + len(city), "Location")]
            )
    model = SpanTagger(max_iterations=50)
    assert model.fit(texts, spans) is model and model.classes_ == ("Location", "Person")
    [tagged] = model.predict(["Carol flew to Oslo today"])
    assert [(s.start, s.end, s.label) for s in tagged.spans] == [(0, 5, "Person"), (14, 18, "Location")]
    assert tagged.marginals.shape == (5, len(model.tags_))
    np.testing.assert_allclose(tagged.marginals.sum(axis=1), 1.0, atol=1e-6)
    items = span_results(SPANS, (tagged,), ["Carol flew to Oslo today"])
    config = '<View><Labels name="labels" toName="text"><Label value="Person"/><Label value="Location"/></Labels><Text name="text" value="$text"/></View>'
    assert LabelInterface(config).validate_prediction({"result": items[0], "score": 0.5})  # type: ignore[no-untyped-call]
    assert [r["value"]["text"] for r in items[0]] == ["Carol", "Oslo"] and all(
        0 < r["score"] <= 1 for r in items[0]
    )


def test_span_features_carry_training_word_statistics() -> None:
    tokens = tokenize("@ada met Bob in Rome")
    plain = sentence_features(tokens)
    assert plain[0]["mention"] is True and plain[0]["core"] == "ada" and plain[2]["case"] == "title"
    assert "hashtag" not in plain[0] and "freq" not in plain[2]  # False flags are left out
    assert plain[2]["-1|0"] == "met|bob" and plain[2]["case|+1case"] == "title|lower"
    lexicon = {"bob": (4, 1, 3, ("Person",)), "in": (20, 20, 0, ())}
    [_, _, bob, within, rome] = sentence_features(tokens, lexicon)
    assert (bob["freq"], bob["lowr"], bob["entr"], bob["gaz:Person"]) == ("4-9", "1", "3", True)
    assert bob["case|lowr"] == "title|1" and within["case|freq"] == "lower|10+"
    assert rome["freq"] == "0" and "lowr" not in rome


def test_span_tagger_word_statistics_hold_out_each_fold() -> None:
    texts = [f"{name} is here" for name in ("Ann", "Ann", "Ben", "Cy", "Dee", "Eve")]
    spans = [[(0, len(t.split()[0]), "Person")] for t in texts]
    model = SpanTagger(max_iterations=20).fit(texts, spans)
    assert model.lexicon_ is not None
    assert model.lexicon_["ann"] == (2, 0, 2, ("Person",)) and model.lexicon_["is"] == (6, 6, 0, ())
    # training features of fold 0 (sentences 0 and 5) come from the other folds only
    sentences = [
        (tokens, spans_to_tags(tokens, s)) for tokens, s in zip(map(tokenize, texts), spans, strict=True)
    ]
    held_out = _WordCounts.of(sentences).minus(_WordCounts.of(sentences[0::5])).lexicon()
    assert held_out["ann"] == (1, 0, 1, ("Person",)) and "eve" not in held_out and held_out["is"][0] == 4


def test_posterior_decoding_gives_each_entity_one_label() -> None:
    model = SpanTagger(outside_threshold=0.9)
    model.tags_ = ("O", "B-Person", "I-Person", "B-Location", "I-Location")
    marginals = np.array(
        [
            [0.95, 0.02, 0.01, 0.01, 0.01],  # outside
            [0.20, 0.50, 0.00, 0.30, 0.00],  # entity, B-Person best
            [0.20, 0.00, 0.35, 0.00, 0.45],  # continues (best is an I-): one entity, Person overall
            [0.50, 0.00, 0.00, 0.45, 0.05],  # B- starts a new entity
            [0.99, 0.00, 0.00, 0.00, 0.01],
        ]
    )
    assert model._posterior_tags(marginals) == ["O", "B-Person", "I-Person", "B-Location", "O"]


def test_uncertainty_known_answers() -> None:
    single = class_uncertainties(np.array([[0.5, 0.5], [1.0, 0.0], [0.7, 0.3]]))
    np.testing.assert_allclose(single.least_confidence, [0.5, 0.0, 0.3])
    np.testing.assert_allclose(single.margin, [1.0, 0.0, 0.6])
    np.testing.assert_allclose(single.entropy[:2], [1.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(single.score, [0.5, 1.0, 0.7])
    multi = multi_label_uncertainties(np.array([[0.5, 1.0], [0.9, 0.1]]))
    np.testing.assert_allclose(multi.least_confidence, [0.25, 0.1])  # mean over classes of min(p, 1 - p)
    np.testing.assert_allclose(multi.margin, [0.5, 0.2])
    sure, doubtful = np.array([[1.0, 0.0], [1.0, 0.0]]), np.array([[1.0, 0.0], [0.6, 0.4]])
    spans = span_uncertainties(
        [TaggedText((), sure), TaggedText((), np.zeros((0, 2))), TaggedText((), doubtful)]
    )
    np.testing.assert_allclose(spans.least_confidence, [0.0, 0.0, 0.4])  # the most uncertain token decides
    np.testing.assert_allclose(spans.score, [1.0, 1.0, 0.6])


def test_choice_results_name_only_configured_classes() -> None:
    rows = class_output(MULTI, ("a", "b", "c"), np.array([[0.9, 0.6, 0.1], [0.2, 0.3, 0.4]])).regions
    assert rows[0][0]["value"] == {"choices": ["a", "b"]} and rows[0][0]["score"] == 0.6
    assert rows[1] == []  # nothing reaches 0.5: a prediction without classes
    [[item]] = class_output(SINGLE, ("ham", "spam"), np.array([[0.2, 0.8]])).regions
    assert item == {
        "from_name": "label",
        "to_name": "text",
        "type": "choices",
        "value": {"choices": ["spam"]},
        "score": 0.8,
    }


def annotation(
    aid: int,
    user: int | None,
    result: list[dict[str, object]],
    *,
    was_cancelled: bool = False,
    ground_truth: bool = False,
) -> Annotation:
    return Annotation(
        id=aid,
        task_id=1,
        completed_by=user,
        result=result,
        was_cancelled=was_cancelled,
        ground_truth=ground_truth,
        created_at=f"2026-01-0{aid}",
    )


def pick(value: str) -> list[dict[str, object]]:
    return [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [value]}}]


def test_consensus_rules() -> None:
    def target(*annotations: Annotation) -> object:
        return task_target(Task(1, {"text": "t"}, annotations=annotations), SINGLE)

    assert (
        target(annotation(1, 1, pick("ham")), annotation(2, 2, pick("spam")), annotation(3, 3, pick("spam")))
        == "spam"
    )
    assert (
        target(annotation(1, 1, pick("ham")), annotation(2, 2, pick("spam"))) is None
    )  # a tie drops the task
    assert target(annotation(1, 1, pick("ham")), annotation(2, 2, pick("spam"), was_cancelled=True)) == "ham"
    gold = annotation(3, 3, pick("ham"), ground_truth=True)
    assert target(annotation(1, 1, pick("spam")), annotation(2, 2, pick("spam")), gold) == "ham"
    assert (
        target(annotation(1, 1, pick("ham")), annotation(2, 1, pick("spam"))) == "spam"
    )  # latest per annotator
    assert target(annotation(1, 1, pick("unknown-class"))) is None
    assert majority_consensus(MULTI, [("a", "b"), ("a",), ()]) == ("a",)
    assert majority_consensus(SPANS, [((0, 3, "Person"),), ((0, 3, "Person"),), ()]) == ((0, 3, "Person"),)


def test_examples_keep_empty_span_sets_and_skip_missing_text() -> None:
    tasks = [
        Task(1, {"text": "nothing here"}, annotations=(annotation(1, 1, []),)),
        Task(2, {}, annotations=(annotation(2, 1, []),)),
        Task(3, {"text": "no annotation"}),
    ]
    assert [(e.task_id, e.target) for e in examples(tasks, SPANS)] == [(1, ())]


def test_fast_features_equal_the_fitted_vectorizer() -> None:
    texts = [
        "Win CASH now!!",
        "see you at 5",
        "u r 2 good",
        "",
        "###",
        "win win win cash",
        "zzz unseen words",
        "win\x00cash now\tu r\n2 good",  # the break joining a batch's texts is in a text
        "Straße ÜBER Café 5€",
    ]
    others = (TextClassifier(ngram_range=(1, 3)), TextClassifier(features="union", ngram_range=(2, 3)))
    for make in [c.make for c in text_candidates()] + [lambda m=m: m for m in others]:
        model = make().fit(
            texts[:3] * 2 + ["win cash", "straße über café"], ["s", "h", "h", "s", "h", "h", "s", "h"]
        )
        assert isinstance(model, TextClassifier)
        for _ in range(2):  # the second pass reads the character n-grams of each word from the cache
            for fast, vectorizer in zip(model._fast_features(texts), model.vectorizers_, strict=True):
                np.testing.assert_allclose(fast.toarray(), vectorizer.transform(texts).toarray(), atol=1e-12)
                assert (fast[3].toarray() == 0).all()
        for fast in model._fast_features(["", " "]):  # a batch without a single term
            assert fast.shape[0] == 2 and fast.nnz == 0


def test_fit_control_selects_once_and_measures_the_out_of_fold_predictions() -> None:
    from ml_backend.dataset import Example
    from ml_backend.errors import TrainingError
    from ml_backend.training import fit_control

    items = [
        Example(k, f"cheap prize {k}" if k % 2 else f"lunch plan {k}", "spam" if k % 2 else "ham")
        for k in range(40)
    ]
    fitted = fit_control(SINGLE, items)
    assert fitted.report["training_size"] == 40
    # measured on the selection's out-of-fold probabilities of all 40, not on a second fit's holdout
    assert fitted.report["holdout"] == {"size": 40, "method": "out-of-fold", "accuracy": 1.0, "macro_f1": 1.0}
    model = fitted.report["model"]  # the version's metadata names the chosen candidate and its CV scores
    names = [c.name for c in text_candidates()]
    assert model["chosen"] in names and model["folds"] == 5
    assert [c["name"] for c in model["candidates"]] == names[: len(model["candidates"])]
    chosen = next(c for c in model["candidates"] if c["name"] == model["chosen"])
    assert chosen["macro_f1"] == 1.0 and chosen["log_loss"] < 0.7
    assert model["calibration"]["method"] in {"none", "temperature", "platt", "isotonic"}
    oof = fitted.oof  # the selection's out-of-fold probabilities, per training task, for the quality engine
    assert oof is not None and oof["task_ids"] == list(range(40)) and oof["classes"] == ["ham", "spam"]
    proba = np.array(oof["proba"])
    assert proba.shape == (40, 2) and np.allclose(proba.sum(axis=1), 1.0, atol=1e-3)
    assert (proba.argmax(axis=1) == [k % 2 for k in range(40)]).all()
    wrong = [Example(e.task_id, e.text, "ham") if e.task_id in (1, 3) else e for e in items[:20]]
    noisy = fit_control(SINGLE, wrong)  # two labels no fold model can reproduce: the figure is held out
    assert noisy.report["holdout"] == {
        "size": 20,
        "method": "out-of-fold",
        "accuracy": 0.9,
        "macro_f1": pytest.approx(0.8989, abs=1e-4),
    }
    small = fit_control(SINGLE, items[:6])
    assert small.report["holdout"] is None  # too few to cross-validate or hold out: all train the model
    assert small.report["model"]["chosen"] == names[0] and small.report["model"]["candidates"] == []
    assert small.oof is None  # too few labels to cross-validate
    with pytest.raises(TrainingError, match="4 needed"):
        fit_control(SINGLE, items[:3])
    with pytest.raises(TrainingError, match="two classes"):
        fit_control(SINGLE, [e for e in items if e.target == "ham"])


def test_multi_label_predictions_are_valid_for_the_config() -> None:
    from ml_backend.dataset import Example
    from ml_backend.models.bundle import ModelBundle
    from ml_backend.predictor import predict_tasks, serving_controls
    from ml_backend.store import LoadedModel
    from ml_backend.training import fit_control

    config_xml = (CONFIGS / "multilabel_classification.xml").read_text()
    spec = parse_label_config(config_xml).controls[0]
    words = {"Toxic": "awful", "Insult": "idiot", "Threat": "hurt"}
    items = [
        Example(k, " ".join(words[c] for c in combo) + f" text {k}", combo)
        for k, combo in enumerate([("Toxic",), ("Insult",), ("Toxic", "Insult"), (), ("Threat",)] * 5)
    ]
    fitted = fit_control(spec, items)
    assert set(fitted.report["holdout"]) == {"size", "method", "subset_accuracy", "micro_f1", "macro_f1"}
    assert fitted.report["holdout"]["size"] == 5 and fitted.report["holdout"]["method"] == "holdout"
    loaded = LoadedModel(1, "20260101T000000.000000Z", ModelBundle({spec.name: fitted.trained}), {})
    tasks = [{"data": {"text": "awful idiot"}}, {"data": {"text": "nice day"}}]
    controls = serving_controls(loaded, parse_label_config(config_xml))
    first, second = predict_tasks(controls, loaded.version, tasks)
    [prediction] = first
    assert prediction["result"][0]["value"]["choices"] == ["Insult", "Toxic"]
    assert LabelInterface(config_xml).validate_prediction(prediction)  # type: ignore[no-untyped-call]
    assert second[0]["result"] == [] and 0 < second[0]["score"] <= 1


def test_predictions_below_the_minimum_score_are_withheld() -> None:
    from ls_companion.records import MLBackend
    from ml_backend.dataset import Example
    from ml_backend.models.bundle import ModelBundle
    from ml_backend.predictor import Scorer, minimum_score, predict_tasks, serving_controls
    from ml_backend.store import LoadedModel
    from ml_backend.training import fit_control, project_min_score

    items = [
        Example(k, ("cheap prize" if k % 2 else "lunch plan") + f" {k}", ("spam", "ham")[k % 2 == 0])
        for k in range(30)
    ]
    bundle = ModelBundle({"label": fit_control(SINGLE, items).trained})
    config = parse_label_config(
        '<View><Text name="text" value="$text"/><Choices name="label" toName="text">'
        '<Choice value="ham"/><Choice value="spam"/></Choices></View>'
    )
    tasks = [{"data": {"text": "cheap prize now"}}, {"data": {"text": "prize lunch"}}]
    version = "20260101T000000.000000Z"

    def predict(loaded: LoadedModel, default: float = 0.0) -> list[list[dict[str, Any]]]:
        minimum = minimum_score(loaded, default)
        return predict_tasks(serving_controls(loaded, config), version, tasks, min_score=minimum)

    everything = predict(LoadedModel(1, version, bundle, {}))
    sure, unsure = (p[0]["score"] for p in everything)
    assert sure > unsure
    cut = (sure + unsure) / 2
    strict = LoadedModel(1, version, bundle, {"min_score": cut})
    kept, withheld = predict(strict)
    assert kept == everything[0] and withheld == []
    # The backend's default applies only when the project sets no minimum of its own.
    assert predict(LoadedModel(1, version, bundle, {"min_score": None}), cut)[1] == []
    assert predict(LoadedModel(1, version, bundle, {"min_score": 0.0}), cut)[1]
    # /score still scores the withheld task.
    scored = Scorer(strict).score_texts([t["data"]["text"] for t in tasks])
    assert scored.score[1] == pytest.approx(unsure, abs=1e-6)
    backend = MLBackend(1, 1, "http://b", extra_params={"min_score": 0.8})
    assert project_min_score([MLBackend(2, 1, "http://a"), backend]) == 0.8
    assert project_min_score([MLBackend(2, 1, "http://a", extra_params={"min_score": "high"})]) is None
