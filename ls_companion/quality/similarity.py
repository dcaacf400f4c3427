"""Similarity of two answers to one control, in [0, 1] (1 = the same answer), per control kind.

- Choices: exact match; multiple choices: Jaccard of the chosen sets.
- Labels (text spans): regions matched one-to-one (optimal assignment) by word-level overlap with the
  same label; "Excellent tool" vs "tool" scores 0.5, as in Label Studio's documentation. Strict
  span-level F1 (same start, end and label) is ``span_f1``.
- RectangleLabels / PolygonLabels: IoU, regions matched one-to-one with ``linear_sum_assignment``;
  the similarity is the summed IoU of matched same-label pairs over the larger region count;
  ``region_prf`` gives precision/recall/F1 at an IoU threshold.
- TextArea: 1 − normalized Levenshtein distance (rapidfuzz); ``wer``/``cer`` via jiwer.
- Rating / Number: 1 − |a − b| / scale width. Taxonomy: Jaccard of the chosen paths (exact paths).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any, NamedTuple

import jiwer
import numpy as np
import pandas as pd
from numpy.typing import NDArray
from rapidfuzz.distance import Levenshtein
from scipy.optimize import linear_sum_assignment

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

FloatArray = NDArray[np.float64]
Points = NDArray[np.float64]
_WORD = re.compile(r"\S+")
#: Grid side used to rasterize two non-convex polygons (IoU error about 1/RASTER).
RASTER = 128


class PRF(NamedTuple):
    precision: float
    recall: float
    f1: float
    true_positives: int


def jaccard(a: Sequence[Any], b: Sequence[Any]) -> float:
    """|a ∩ b| / |a ∪ b|; two empty sets agree fully."""
    set_a, set_b = set(a), set(b)
    union = len(set_a | set_b)
    return 1.0 if union == 0 else len(set_a & set_b) / union


def choices_similarity(a: Any, b: Any) -> float:
    if isinstance(a, tuple) or isinstance(b, tuple):
        return jaccard(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,))
    return 1.0 if a == b else 0.0


# -- spans ----------------------------------------------------------------------------------------------


def _word_ranges(span: Span) -> list[tuple[int, int]] | None:
    if not span.text or len(span.text) != span.end - span.start:
        return None  # offsets and text disagree (or no text): fall back to characters
    return [(span.start + m.start(), span.start + m.end()) for m in _WORD.finditer(span.text)]


def _overlapping(words: list[tuple[int, int]], others: list[tuple[int, int]]) -> int:
    return sum(1 for s, e in words if any(s < oe and os < e for os, oe in others))


def span_overlap(a: Span, b: Span) -> float:
    """Word-level IoU of two spans with the same label (0 for different labels or disjoint spans).

    Words are whitespace-separated tokens of each span's text; a word counts as shared when it overlaps
    a word of the other span, so a span cut inside a word still matches it. Without text: character IoU.
    """
    if a.label != b.label or a.end <= b.start or b.end <= a.start:
        return 0.0
    words_a, words_b = _word_ranges(a), _word_ranges(b)
    if not words_a or not words_b:
        inter = min(a.end, b.end) - max(a.start, b.start)
        return inter / (max(a.end, b.end) - min(a.start, b.start))
    shared = min(_overlapping(words_a, words_b), _overlapping(words_b, words_a))
    return shared / (len(words_a) + len(words_b) - shared)


def span_f1(reference: Sequence[Span], hypothesis: Sequence[Span]) -> PRF:
    """Strict span-level precision/recall/F1: a span counts when start, end and label are the same."""
    ref = {(s.start, s.end, s.label) for s in reference}
    hyp = {(s.start, s.end, s.label) for s in hypothesis}
    return _prf(len(ref & hyp), len(ref), len(hyp))


# -- boxes and polygons -----------------------------------------------------------------------------------


def _box_corners(box: Box) -> Points:
    """The four corners in aspect-corrected units (x scaled by width/height), rotation applied."""
    theta = math.radians(box.rotation)
    cos, sin = math.cos(theta), math.sin(theta)
    dx = np.array([0.0, box.width, box.width, 0.0]) * box.aspect
    dy = np.array([0.0, 0.0, box.height, box.height])
    return np.column_stack([box.x * box.aspect + dx * cos - dy * sin, box.y + dx * sin + dy * cos])


def box_iou_matrix(a: Sequence[Box], b: Sequence[Box]) -> FloatArray:
    """IoU of every box of ``a`` with every box of ``b`` (labels ignored)."""
    if not a or not b:
        return np.zeros((len(a), len(b)))
    if any(box.rotation for box in (*a, *b)):
        return np.array([[convex_iou(_box_corners(p), _box_corners(q)) for q in b] for p in a])
    pa = np.array([(p.x, p.y, p.x + p.width, p.y + p.height) for p in a])
    pb = np.array([(q.x, q.y, q.x + q.width, q.y + q.height) for q in b])
    return _aligned_iou(pa[:, None, :], pb[None, :, :])


def _aligned_iou(pa: FloatArray, pb: FloatArray) -> FloatArray:
    """IoU of axis-aligned boxes given as (..., 4) arrays of x1, y1, x2, y2 (broadcast)."""
    iw = np.clip(np.minimum(pa[..., 2], pb[..., 2]) - np.maximum(pa[..., 0], pb[..., 0]), 0.0, None)
    ih = np.clip(np.minimum(pa[..., 3], pb[..., 3]) - np.maximum(pa[..., 1], pb[..., 1]), 0.0, None)
    inter = iw * ih
    area_a = (pa[..., 2] - pa[..., 0]) * (pa[..., 3] - pa[..., 1])
    area_b = (pb[..., 2] - pb[..., 0]) * (pb[..., 3] - pb[..., 1])
    union = area_a + area_b - inter
    out: FloatArray = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return out


def polygon_area(points: Points) -> float:
    """Shoelace area (absolute)."""
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def is_convex(points: Points) -> bool:
    edges = np.roll(points, -1, axis=0) - points
    cross = edges[:, 0] * np.roll(edges[:, 1], -1) - edges[:, 1] * np.roll(edges[:, 0], -1)
    cross = cross[np.abs(cross) > 1e-12]
    return bool(cross.size == 0 or np.all(cross > 0) or np.all(cross < 0))


def _counter_clockwise(points: Points) -> Points:
    x, y = points[:, 0], points[:, 1]
    signed = float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    return points if signed >= 0 else points[::-1]


def _clip(
    subject: list[tuple[float, float]], a: tuple[float, float], b: tuple[float, float]
) -> list[tuple[float, float]]:
    """Keep the part of ``subject`` left of the directed edge a→b (one Sutherland–Hodgman pass)."""

    def side(p: tuple[float, float]) -> float:
        return (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])

    out: list[tuple[float, float]] = []
    for i, current in enumerate(subject):
        previous = subject[i - 1]
        s_cur, s_prev = side(current), side(previous)
        if s_cur >= 0:
            if s_prev < 0:
                t = s_prev / (s_prev - s_cur)
                out.append(
                    (
                        previous[0] + t * (current[0] - previous[0]),
                        previous[1] + t * (current[1] - previous[1]),
                    )
                )
            out.append(current)
        elif s_prev >= 0:
            t = s_prev / (s_prev - s_cur)
            out.append(
                (previous[0] + t * (current[0] - previous[0]), previous[1] + t * (current[1] - previous[1]))
            )
    return out


def convex_iou(a: Points, b: Points) -> float:
    """Exact IoU of two convex polygons (Sutherland–Hodgman clipping, shoelace areas)."""
    a, b = _counter_clockwise(a), _counter_clockwise(b)
    clipped: list[tuple[float, float]] = [(float(x), float(y)) for x, y in a]
    for i in range(len(b)):
        if not clipped:
            break
        clipped = _clip(clipped, (float(b[i - 1][0]), float(b[i - 1][1])), (float(b[i][0]), float(b[i][1])))
    inter = polygon_area(np.array(clipped)) if len(clipped) >= 3 else 0.0
    union = polygon_area(a) + polygon_area(b) - inter
    return inter / union if union > 0 else 0.0


def _scanline_mask(polygon: Points, xs: FloatArray, ys: FloatArray) -> NDArray[np.bool_]:
    """Which grid centers (rows ``ys`` × columns ``xs``) lie inside ``polygon`` (even-odd rule).

    Per row, the x where each edge crosses it; a center is inside when an odd number of crossings lie
    to its left. The parity is a running XOR along each row, so the cost is rows × (edges + columns).
    """
    x1, y1 = polygon[:, 0], polygon[:, 1]
    x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
    crosses = (y1[None, :] > ys[:, None]) != (y2[None, :] > ys[:, None])
    with np.errstate(divide="ignore", invalid="ignore"):
        at = x1[None, :] + (ys[:, None] - y1[None, :]) * (x2 - x1)[None, :] / (y2 - y1)[None, :]
    rows, edges = np.nonzero(crosses)
    counts = np.zeros((len(ys), len(xs) + 1), dtype=np.uint8)
    np.add.at(counts, (rows, np.searchsorted(xs, at[rows, edges], side="right")), 1)
    mask: NDArray[np.bool_] = np.logical_xor.accumulate((counts & 1).astype(bool), axis=1)[:, : len(xs)]
    return mask


def raster_iou(a: Points, b: Points, resolution: int = RASTER) -> float:
    """IoU of two simple polygons (convex or not) sampled on a grid over their joint bounding box."""
    low = np.minimum(a.min(axis=0), b.min(axis=0))
    high = np.maximum(a.max(axis=0), b.max(axis=0))
    if np.any(high - low <= 0):
        return 0.0
    steps = (np.arange(resolution) + 0.5) / resolution
    xs, ys = low[0] + steps * (high[0] - low[0]), low[1] + steps * (high[1] - low[1])
    in_a, in_b = _scanline_mask(a, xs, ys), _scanline_mask(b, xs, ys)
    union = int(np.count_nonzero(in_a | in_b))
    return int(np.count_nonzero(in_a & in_b)) / union if union else 0.0


def polygon_iou(a: Points, b: Points) -> float:
    """Exact for two convex polygons, rasterized otherwise."""
    if np.any(a.max(axis=0) <= b.min(axis=0)) or np.any(b.max(axis=0) <= a.min(axis=0)):
        return 0.0  # bounding boxes apart
    if is_convex(a) and is_convex(b):
        return convex_iou(a, b)
    return raster_iou(a, b)


def polygon_iou_matrix(a: Sequence[Polygon], b: Sequence[Polygon]) -> FloatArray:
    arrays_a = [np.asarray(p.points, dtype=float) for p in a]
    arrays_b = [np.asarray(q.points, dtype=float) for q in b]
    return np.array([[polygon_iou(p, q) for q in arrays_b] for p in arrays_a]).reshape(len(a), len(b))


# -- one-to-one matching of regions -------------------------------------------------------------------------


def _label_mask(a: Sequence[Any], b: Sequence[Any]) -> NDArray[np.bool_]:
    labels_a = np.array([r.label for r in a], dtype=object)
    labels_b = np.array([r.label for r in b], dtype=object)
    mask: NDArray[np.bool_] = labels_a[:, None] == labels_b[None, :]
    return mask


def overlap_matrix(kind: str, a: Sequence[Any], b: Sequence[Any]) -> FloatArray:
    """Pairwise overlap of the regions of two answers, 0 where labels differ."""
    if not a or not b:
        return np.zeros((len(a), len(b)))
    if kind == LABELS:
        return np.array([[span_overlap(p, q) for q in b] for p in a])
    matrix = box_iou_matrix(a, b) if kind == RECTANGLES else polygon_iou_matrix(a, b)
    return np.where(_label_mask(a, b), matrix, 0.0)


def match(matrix: FloatArray) -> FloatArray:
    """Overlaps of the optimal one-to-one matching (maximum total overlap)."""
    if matrix.size == 0:
        return np.zeros(0)
    rows, cols = linear_sum_assignment(matrix, maximize=True)
    matched: FloatArray = matrix[rows, cols]
    return matched


def region_similarity(kind: str, a: Sequence[Any], b: Sequence[Any]) -> float:
    """Summed overlap of the optimal one-to-one matching over the larger region count (1 if both empty)."""
    if not a and not b:
        return 1.0
    return float(match(overlap_matrix(kind, a, b)).sum()) / max(len(a), len(b))


def _prf(tp: int, n_ref: int, n_hyp: int) -> PRF:
    precision = tp / n_hyp if n_hyp else 1.0 if n_ref == 0 else 0.0
    recall = tp / n_ref if n_ref else 1.0 if n_hyp == 0 else 0.0
    f1 = 2 * tp / (n_ref + n_hyp) if n_ref + n_hyp else 1.0
    return PRF(precision, recall, f1, tp)


def region_prf(kind: str, reference: Sequence[Any], hypothesis: Sequence[Any], threshold: float = 0.5) -> PRF:
    """Precision/recall/F1 of ``hypothesis`` regions against ``reference`` at an overlap threshold."""
    matrix = overlap_matrix(kind, reference, hypothesis)
    hits = np.where(matrix >= threshold, 1.0, 0.0)
    tp = int(match(hits).sum()) if hits.size else 0
    return _prf(tp, len(reference), len(hypothesis))


def _flat_boxes(values: Sequence[Sequence[Box]]) -> tuple[FloatArray, list[str], NDArray[np.int64]]:
    """Corners (x1, y1, x2, y2) of every box, their labels, and the region count of each answer."""
    flat = [box for value in values for box in value]
    corners = np.array([(b.x, b.y, b.x + b.width, b.y + b.height) for b in flat], dtype=float).reshape(-1, 4)
    return corners, [b.label for b in flat], np.array([len(v) for v in values], dtype=np.int64)


def batch_box_similarity(a: Sequence[Sequence[Box]], b: Sequence[Sequence[Box]]) -> FloatArray:
    """``region_similarity`` of many pairs of unrotated box answers at once.

    All region pairs' IoUs are computed in one vectorized pass. A pair where no box overlaps more than
    one box of the other answer needs no assignment (its matching is its overlaps); only the others go
    through ``linear_sum_assignment``.
    """
    corners_a, names_a, len_a = _flat_boxes(a)
    corners_b, names_b, len_b = _flat_boxes(b)
    codes = pd.factorize(pd.Series(names_a + names_b, dtype=object))[0]
    labels_a, labels_b = codes[: len(names_a)], codes[len(names_a) :]
    n_pairs = len(len_a)
    block = len_a * len_b
    pair = np.repeat(np.arange(n_pairs), block)
    start = np.repeat(np.cumsum(block) - block, block)
    k = np.arange(int(block.sum())) - start
    cols = np.maximum(len_b[pair], 1)
    i, j = k // cols, k % cols
    ia = (np.cumsum(len_a) - len_a)[pair] + i
    ib = (np.cumsum(len_b) - len_b)[pair] + j
    iou = _aligned_iou(corners_a[ia], corners_b[ib]) * (labels_a[ia] == labels_b[ib])
    hit = iou > 0
    row_hits = np.bincount((ia)[hit], minlength=len(corners_a))
    col_hits = np.bincount((ib)[hit], minlength=len(corners_b))
    crowded = np.zeros(n_pairs, dtype=bool)
    crowded[pair[hit & ((row_hits[ia] > 1) | (col_hits[ib] > 1))]] = True
    total = np.bincount(pair, weights=iou, minlength=n_pairs)
    offsets = np.cumsum(block) - block
    for p in np.flatnonzero(crowded):
        matrix = iou[offsets[p] : offsets[p] + block[p]].reshape(int(len_a[p]), int(len_b[p]))
        total[p] = float(match(matrix).sum())
    larger = np.maximum(len_a, len_b)
    out: FloatArray = np.where(larger == 0, 1.0, total / np.maximum(larger, 1))
    return out


# -- text, numbers, taxonomy -----------------------------------------------------------------------------------


def text_similarity(a: str, b: str) -> float:
    """1 − Levenshtein distance / length of the longer text."""
    return float(Levenshtein.normalized_similarity(a, b))


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate of ``hypothesis`` against ``reference``."""
    if not reference.strip():
        return 0.0 if not hypothesis.strip() else 1.0
    return float(jiwer.wer(reference, hypothesis))


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate of ``hypothesis`` against ``reference``."""
    if not reference:
        return 0.0 if not hypothesis else 1.0
    return float(jiwer.cer(reference, hypothesis))


def numeric_similarity(a: float, b: float, scale: tuple[float, float] | None) -> float:
    """1 − |a − b| / (high − low), clipped to [0, 1]; exact match when the scale has no width."""
    width = (scale[1] - scale[0]) if scale else 0.0
    if width <= 0:
        return 1.0 if a == b else 0.0
    return max(0.0, 1.0 - abs(a - b) / width)


def similarity(spec: ScoredControl, a: Any, b: Any) -> float:
    """Similarity of two canonical answers (``records.value_of``) to the control ``spec``."""
    kind = spec.kind
    if kind == CHOICES:
        return choices_similarity(a, b)
    if kind in (LABELS, RECTANGLES, POLYGONS):
        return region_similarity(kind, a, b)
    if kind == TEXTAREA:
        return text_similarity(a, b)
    if kind in (RATING, NUMBER):
        return numeric_similarity(float(a), float(b), spec.scale)
    if kind == TAXONOMY:
        return jaccard(a, b)
    raise ValueError(f"no similarity for control kind {kind!r}")


def _objects(values: Sequence[Any] | NDArray[Any]) -> NDArray[Any]:
    """A 1-d object array (tuples stay elements; ``np.asarray`` would make them a second axis)."""
    if isinstance(values, np.ndarray) and values.dtype == object and values.ndim == 1:
        return values
    out: NDArray[Any] = pd.Series(list(values), dtype=object).to_numpy()
    return out


def similarities(
    spec: ScoredControl, a: Sequence[Any] | NDArray[Any], b: Sequence[Any] | NDArray[Any]
) -> FloatArray:
    """``similarity`` over aligned sequences of answers; vectorized for categorical answers, numbers, boxes.

    The one similarity every number uses (agreement, consensus, gold scores, drift): the scalar
    ``similarity`` is its definition, and this equals it on every kind.
    """
    left, right = _objects(a), _objects(b)
    if spec.categorical and spec.kind == CHOICES:
        same: FloatArray = (left == right).astype(float)
        # A single-choice answer holding several choices (possible through the API) is a set: Jaccard.
        for i in np.flatnonzero(
            [isinstance(x, tuple) or isinstance(y, tuple) for x, y in zip(left, right, strict=True)]
        ):
            same[i] = choices_similarity(left[i], right[i])
        return same
    if spec.kind in (RATING, NUMBER):
        diff = np.abs(left.astype(float) - right.astype(float))
        width = (spec.scale[1] - spec.scale[0]) if spec.scale else 0.0
        scores: FloatArray = (
            (diff == 0).astype(float) if width <= 0 else np.clip(1.0 - diff / width, 0.0, 1.0)
        )
        return scores
    if spec.kind == RECTANGLES and not any(box.rotation for value in (*left, *right) for box in value):
        return batch_box_similarity(list(left), list(right))
    return np.fromiter(
        (similarity(spec, x, y) for x, y in zip(left, right, strict=True)), dtype=float, count=len(left)
    )
