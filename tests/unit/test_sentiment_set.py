"""The synthetic sentiment set of the benchmarks: deterministic, balanced, wide vocabulary, neutral filler."""

from __future__ import annotations

import re

import numpy as np
import pytest

from bench import sentiment_set


def test_the_same_seed_gives_the_same_reviews_balanced_and_distinct() -> None:
    first, again = sentiment_set.generate(400, seed=3), sentiment_set.generate(400, seed=3)
    assert first == again
    assert first != sentiment_set.generate(400, seed=4)
    assert first.labels.count("Positive") == first.labels.count("Negative") == 200
    assert len(set(first.texts)) == 400


def test_the_lexicon_gives_thousands_of_sentiment_words_of_each_polarity() -> None:
    words = sentiment_set.sentiment_words()
    assert len(words["Positive"]) == 2435 and len(words["Negative"]) == 3143
    assert "superb" in words["Positive"] and "dreadful" in words["Negative"]
    assert not set(words["Positive"]) & set(words["Negative"])


def test_most_sentiment_words_of_a_test_review_were_not_in_200_training_reviews() -> None:
    data = sentiment_set.generate(1200, seed=0)
    lexicon = set(sentiment_set.lexicon())

    def sentiment_tokens(texts: list[str]) -> list[str]:
        return [w for t in texts for w in re.findall(r"[a-z]+", t.lower()) if w in lexicon]

    seen = set(sentiment_tokens(data.texts[:200]))
    test = sentiment_tokens(data.texts[200:])
    assert np.mean([w not in seen for w in test]) > 0.6


def test_templates_and_filler_hold_no_lexicon_word() -> None:
    lexicon = sentiment_set.lexicon()
    fixed = [
        *sentiment_set._FILLERS, *sentiment_set._PLAIN, *sentiment_set._NEGATED, *sentiment_set.PRODUCTS,
        *sentiment_set.ASPECTS, *sentiment_set._PEOPLE, *sentiment_set._MONTHS, *sentiment_set._ROOMS,
        *sentiment_set._COLOURS, *sentiment_set._NUMBERS, "but",
    ]  # fmt: skip
    words = {w for text in fixed for w in re.findall(r"[a-z]+", re.sub(r"\{\w+\}", " ", text).lower())}
    assert len(words) > 100 and not words & set(lexicon)


def test_a_negated_clause_carries_a_word_of_the_other_polarity() -> None:
    rng = np.random.default_rng(0)
    negative = set(sentiment_set.sentiment_words()["Negative"])
    for _ in range(20):
        clause = sentiment_set._clause(rng, "Positive", negated=True)
        assert re.search(r"\b(not|never|nothing|hardly)\b", clause)
        assert set(re.findall(r"[a-z]+", clause)) & negative


def test_an_odd_size_is_refused() -> None:
    with pytest.raises(ValueError, match="even number"):
        sentiment_set.generate(5)
