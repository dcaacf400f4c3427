"""Similarity per control kind: hand-computed known answers."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from ls_companion.quality import gold
from ls_companion.quality.records import (
    CHOICES,
    LABELS,
    NUMBER,
    POLYGONS,
    RATING,
    RECTANGLES,
    TAXONOMY,
    TEXTAREA,
    Box,
    Polygon,
    ScoredControl,
    Span,
)
from ls_companion.quality.similarity import (
    batch_box_similarity,
    box_iou_matrix,
    cer,
    choices_similarity,
    convex_iou,
    is_convex,
    match,
    polygon_iou,
    raster_iou,
    region_prf,
    region_similarity,
    similarities,
    similarity,
    span_f1,
    span_overlap,
    text_similarity,
    wer,
)

SQUARE = np.array([[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0]])
L_SHAPE = np.array([[0.0, 0.0], [2.0, 0.0], [2.0, 1.0], [1.0, 1.0], [1.0, 2.0], [0.0, 2.0]])


def test_choices_exact_and_jaccard() -> None:
    assert choices_similarity("spam", "spam") == 1.0
    assert choices_similarity("spam", "ham") == 0.0
    assert choices_similarity(("Insult", "Toxic"), ("Toxic",)) == 0.5
    assert choices_similarity(("A", "B", "C"), ("B", "C", "D")) == 0.5
    assert choices_similarity((), ()) == 1.0  # both say "clean"


def test_span_overlap_reproduces_label_studio_example() -> None:
    excellent_tool = Span(0, 14, "positive", "Excellent tool")
    tool = Span(10, 14, "positive", "tool")
    assert span_overlap(excellent_tool, tool) == 0.5
    assert span_overlap(tool, Span(10, 14, "negative", "tool")) == 0.0
    # LS's task: three annotations, pairs 0.5 / 0 / 0 average to 1/6.
    spec = ScoredControl("labels", LABELS)
    values = [(excellent_tool,), (tool,), (Span(10, 14, "negative", "tool"),)]
    pairwise = [similarity(spec, values[i], values[j]) for i, j in ((0, 1), (0, 2), (1, 2))]
    assert pairwise == [0.5, 0.0, 0.0]


def test_span_overlap_counts_words_cut_inside_and_falls_back_to_characters() -> None:
    # "Excellen" cut inside the word still shares that word with "Excellent tool": 1 of 2 words.
    assert span_overlap(Span(0, 8, "p", "Excellen"), Span(0, 14, "p", "Excellent tool")) == 0.5
    # Without text: character IoU, 4 of 14 characters.
    assert span_overlap(Span(0, 14, "p"), Span(10, 14, "p")) == pytest.approx(4 / 14)
    assert span_overlap(Span(0, 5, "p", "hello"), Span(5, 9, "p", "you!")) == 0.0


def test_span_f1_is_strict() -> None:
    reference = [Span(0, 5, "Person"), Span(10, 15, "Location"), Span(20, 25, "Product")]
    hypothesis = [Span(0, 5, "Person"), Span(10, 15, "Person"), Span(30, 35, "Group"), Span(40, 45, "Group")]
    prf = span_f1(reference, hypothesis)
    assert (prf.true_positives, prf.precision, prf.recall) == (1, 0.25, 1 / 3)
    assert prf.f1 == pytest.approx(2 / 7)


def test_box_iou_known_values_and_rotation() -> None:
    a, b = Box(10, 10, 20, 20, 0, "car"), Box(20, 20, 20, 20, 0, "car")
    assert box_iou_matrix([a], [b])[0, 0] == pytest.approx(100 / 700)
    # Rotated 90° clockwise about its top-left corner, the box covers x in [-10, 10], y in [10, 30].
    rotated = Box(10, 10, 20, 20, 90, "car")
    assert box_iou_matrix([rotated], [Box(-10, 10, 20, 20, 0, "car")])[0, 0] == pytest.approx(1.0)
    # On a 2:1 image, a 10 × 20 (percent) box is square in pixels: rotating it by 90° keeps its area.
    wide = Box(40, 40, 10, 20, 90, "car", aspect=2.0)
    assert box_iou_matrix([wide], [Box(30, 40, 10, 20, 0, "car", aspect=2.0)])[0, 0] == pytest.approx(1.0)


def test_convex_iou_is_exact_and_raster_is_close() -> None:
    assert convex_iou(SQUARE, SQUARE + 1.0) == pytest.approx(1 / 7)
    assert raster_iou(SQUARE, SQUARE + 1.0) == pytest.approx(1 / 7, abs=0.01)
    assert convex_iou(SQUARE, SQUARE + 5.0) == 0.0
    assert is_convex(SQUARE) and not is_convex(L_SHAPE)
    # The L covers 3 of the square's 4 unit cells.
    assert polygon_iou(L_SHAPE, SQUARE) == pytest.approx(0.75, abs=0.01)
    assert polygon_iou(SQUARE[::-1], SQUARE) == pytest.approx(1.0)  # orientation does not matter


def test_optimal_matching_beats_greedy() -> None:
    # Greedy takes 0.6 and is left with 0; the optimal one-to-one matching takes 0.5 + 0.5.
    assert match(np.array([[0.6, 0.5], [0.5, 0.0]])).sum() == pytest.approx(1.0)


def test_region_similarity_and_prf() -> None:
    a = (Box(0, 0, 10, 10, 0, "car"), Box(50, 50, 10, 10, 0, "person"))
    b = (Box(0, 0, 10, 10, 0, "car"), Box(50, 50, 10, 10, 0, "car"), Box(80, 80, 5, 5, 0, "car"))
    # The car matches (IoU 1); the person box has no same-label partner; 3 regions in the larger answer.
    assert region_similarity(RECTANGLES, a, b) == pytest.approx(1 / 3)
    prf = region_prf(RECTANGLES, a, b, threshold=0.5)
    assert (prf.true_positives, prf.recall) == (1, 0.5)
    assert prf.precision == pytest.approx(1 / 3)
    assert region_similarity(RECTANGLES, (), ()) == 1.0
    assert region_similarity(RECTANGLES, a, ()) == 0.0
    square = Polygon(tuple(map(tuple, SQUARE)), "road")
    shifted = Polygon(tuple(map(tuple, SQUARE + 1.0)), "road")
    assert region_similarity(POLYGONS, (square,), (shifted,)) == pytest.approx(1 / 7)


def test_batch_box_similarity_equals_pairwise() -> None:
    rng = np.random.default_rng(0)

    def box() -> Box:
        x, y, w, h = (float(v) for v in (*rng.uniform(0, 30, 2), *rng.uniform(5, 30, 2)))
        return Box(x, y, w, h, 0.0, str(rng.integers(0, 2)))

    def answer(n: int) -> tuple[Box, ...]:
        return tuple(box() for _ in range(n))

    left = [answer(int(rng.integers(0, 5))) for _ in range(300)]
    right = [answer(int(rng.integers(0, 5))) for _ in range(300)]
    left[0] = left[0] + left[0]  # duplicate boxes: a pair that needs the assignment
    expected = [region_similarity(RECTANGLES, a, b) for a, b in zip(left, right, strict=True)]
    assert np.allclose(batch_box_similarity(left, right), expected)


def test_text_numbers_taxonomy() -> None:
    assert text_similarity("kitten", "sitting") == pytest.approx(1 - 3 / 7)
    assert wer("the cat sat", "the cat sit") == pytest.approx(1 / 3)
    assert cer("abcd", "abxd") == pytest.approx(0.25)
    assert wer("", "") == 0.0
    assert similarity(ScoredControl("r", RATING, scale=(1.0, 5.0)), 2.0, 5.0) == pytest.approx(0.25)
    assert similarity(ScoredControl("n", NUMBER), 3.0, 3.0) == 1.0  # no scale: exact
    assert similarity(ScoredControl("n", NUMBER), 3.0, 4.0) == 0.0
    paths = (("Animal", "Cat"), ("Animal", "Dog"))
    assert similarity(ScoredControl("t", TAXONOMY), paths, (("Animal", "Cat"),)) == 0.5
    assert similarity(ScoredControl("t", TEXTAREA), "abc", "abc") == 1.0


def test_vectorized_similarities_match_scalar_ones() -> None:
    single = ScoredControl("label", CHOICES)
    assert list(similarities(single, ["a", "b", "c"], ["a", "c", "c"])) == [1.0, 0.0, 1.0]
    multiple = ScoredControl("label", CHOICES, multiple=True)
    assert list(similarities(multiple, [("a", "b"), ()], [("a",), ()])) == [0.5, 1.0]
    rating = ScoredControl("r", RATING, scale=(1.0, 5.0))
    assert list(similarities(rating, [1.0, 3.0], [5.0, 3.0])) == [0.0, 1.0]


#: Two aligned answer lists per kind, from agreeing to disjoint (single choice: one answer holds two).
EVERY_KIND: dict[ScoredControl, tuple[list[Any], list[Any]]] = {
    ScoredControl("single", CHOICES): (["a", ("a", "b"), "b", ("a", "b")], ["a", "a", "a", ("a", "b")]),
    ScoredControl("multi", CHOICES, multiple=True): ([("a", "b"), (), ("c",)], [("a",), (), ("d",)]),
    ScoredControl("spans", LABELS): (
        [(Span(0, 4, "X", "abcd"),), (), (Span(0, 4, "X", "abcd"),)],
        [(Span(2, 4, "X", "cd"),), (), ()],
    ),
    ScoredControl("boxes", RECTANGLES): (
        [(Box(0, 0, 10, 10, 0.0, "car"),), (Box(0, 0, 10, 10, 0.0, "car"),), ()],
        [(Box(5, 0, 10, 10, 0.0, "car"),), (Box(0, 0, 10, 10, 0.0, "bus"),), ()],
    ),
    ScoredControl("rotated", RECTANGLES): (
        [(Box(0, 0, 10, 10, 30.0, "car"),)],
        [(Box(0, 0, 10, 10, 0.0, "car"),)],
    ),
    ScoredControl("polygons", POLYGONS): (
        [(Polygon(tuple(map(tuple, SQUARE)), "x"),)],
        [(Polygon(tuple(map(tuple, L_SHAPE)), "x"),)],
    ),
    ScoredControl("text", TEXTAREA): (["kitten", "abc"], ["sitting", "abc"]),
    ScoredControl("rating", RATING, scale=(1.0, 5.0)): ([1.0, 4.0], [5.0, 3.0]),
    ScoredControl("number", NUMBER): ([3.0, 3.0], [3.0, 4.0]),
    ScoredControl("taxonomy", TAXONOMY): ([(("A", "B"), ("A", "C"))], [(("A", "B"),)]),
}


@pytest.mark.parametrize("spec", list(EVERY_KIND), ids=lambda spec: spec.name)
def test_gold_scoring_and_the_engine_use_the_same_similarity(spec: ScoredControl) -> None:
    answers, expected = EVERY_KIND[spec]
    scalar = [similarity(spec, a, b) for a, b in zip(answers, expected, strict=True)]
    assert list(similarities(spec, answers, expected)) == pytest.approx(scalar)
    rows = pd.DataFrame(
        {"task_id": range(len(answers)), "annotator": "ann", "value": pd.Series(answers, dtype=object)}
    )
    gold_answers = pd.Series(expected, index=range(len(expected)), dtype=object)
    assert list(gold.score_answers(rows, gold_answers, spec)["similarity"]) == pytest.approx(scalar)


def test_a_single_choice_answer_with_two_choices_scores_half_against_one() -> None:
    single = ScoredControl("label", CHOICES)
    assert similarity(single, ("a", "b"), "a") == 0.5
    assert list(similarities(single, [("a", "b"), ("a", "b")], ["a", "c"])) == [0.5, 0.0]
    rows = pd.DataFrame(
        {"task_id": [1], "annotator": ["ann"], "value": pd.Series([("a", "b")], dtype=object)}
    )
    scored = gold.score_answers(rows, pd.Series(["a"], index=[1], dtype=object), single)
    assert scored["similarity"].tolist() == [0.5] and scored["correct"].tolist() == [False]
