"""The demo's corpus and simulated annotators (pure, no server)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ls_companion.demo.annotators import PERSONAS, Persona
from ls_companion.demo.corpus import EXAMPLE_CORPUS, LABELS, generate, read_csv, write_csv
from ls_companion.demo.loop import prepare_files
from ls_companion.errors import InputError
from ls_companion.sources import read_rows


def test_the_committed_corpus_is_what_the_generator_writes(tmp_path: Path) -> None:
    rebuilt = write_csv(generate(), tmp_path / "reviews.csv")
    assert rebuilt.read_bytes() == EXAMPLE_CORPUS.read_bytes()


def test_corpus_is_distinct_deterministic_and_has_every_label() -> None:
    reviews = generate(300, seed=3)
    assert reviews == generate(300, seed=3)
    assert len({r.text for r in reviews}) == 300
    assert len({r.id for r in reviews}) == 300
    counts = {label: sum(r.label == label for r in reviews) for label in LABELS}
    assert all(count > 40 for count in counts.values()), counts
    mixed = [r for r in reviews if " but " in r.text]
    assert mixed and all(r.label != "Neutral" for r in mixed)


def test_prepare_files_splits_pool_and_gold_without_leaking_answers(tmp_path: Path) -> None:
    files = prepare_files(EXAMPLE_CORPUS, tmp_path, gold_items=40, seed=0)
    pool = list(read_rows(files.pool))
    gold = list(read_rows(files.gold))
    assert set(pool[0]) == {"id", "text"}  # no label column reaches Label Studio
    assert set(gold[0]) == {"text", "answer"}
    assert len(gold) == 40 and len(pool) == len(read_csv(EXAMPLE_CORPUS)) - 40
    assert not {row["text"] for row in gold} & {row["text"] for row in pool}
    assert all(files.truth[row["text"]] == row["answer"] for row in gold)


def test_a_persona_is_right_at_its_accuracy_and_never_wrong_on_purpose() -> None:
    rng = np.random.default_rng(0)
    persona = Persona("Test", 0.8, 5.0)
    answers = [persona.answer("Positive", LABELS, rng) for _ in range(5000)]
    assert abs(sum(a == "Positive" for a in answers) / 5000 - 0.8) < 0.02
    wrong = [a for a in answers if a != "Positive"]
    assert set(wrong) == {"Negative", "Neutral"}  # wrong answers are spread over the other labels
    assert all(persona.lead_time(rng) > 0 for _ in range(100))


def test_personas_have_distinct_reliabilities_and_emails() -> None:
    assert len({p.accuracy for p in PERSONAS}) == len(PERSONAS)
    assert len({p.email for p in PERSONAS}) == len(PERSONAS)
    assert all("simulated" in p.email for p in PERSONAS)
    with pytest.raises(InputError, match="not one of"):
        PERSONAS[0].answer("Mixed", LABELS, np.random.default_rng(0))
