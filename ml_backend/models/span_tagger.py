"""A linear-chain CRF (python-crfsuite, the engine of sklearn-crfsuite) tagging character spans in text.

Spans are ``(start, end, label)`` character ranges, as Label Studio's ``Labels`` results carry them.
Training maps them onto tokens as BIO tags; prediction maps tags back to character ranges. Every token
gets the CRF's marginal distribution over tags, which gives per-span scores and the uncertainty of
the whole text.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pycrfsuite  # type: ignore[import-untyped]
from numpy.typing import NDArray

from ml_backend.models.tokens import Token, tokenize
from ml_backend.models.word_clusters import WordClusters

FloatArray = NDArray[np.float64]
Features = dict[str, Any]
OUTSIDE = "O"
_LEXICON_FOLDS = 5


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int
    label: str
    score: float = 1.0


@dataclass(frozen=True, slots=True)
class TaggedText:
    """What the tagger found in one text: spans, and the tag marginals of each token (rows sum to 1)."""

    spans: tuple[Span, ...]
    marginals: FloatArray


def spans_to_tags(tokens: Sequence[Token], spans: Sequence[tuple[int, int, str]]) -> list[str]:
    """BIO tags of ``tokens``; a token belongs to a span when they overlap, earlier/longer spans win."""
    tags = [OUTSIDE] * len(tokens)
    for start, end, label in sorted(spans, key=lambda s: (s[0], -(s[1] - s[0]))):
        inside = [i for i, tok in enumerate(tokens) if tok.start < end and tok.end > start]
        if not inside or any(tags[i] != OUTSIDE for i in inside):
            continue
        tags[inside[0]] = f"B-{label}"
        for i in inside[1:]:
            tags[i] = f"I-{label}"
    return tags


def tags_to_spans(tokens: Sequence[Token], tags: Sequence[str]) -> list[tuple[int, int, str, list[int]]]:
    """Character spans ``(start, end, label, token indexes)`` of a BIO tag sequence (a stray I- starts one)."""
    spans: list[tuple[int, int, str, list[int]]] = []
    for i, tag in enumerate(tags):
        if tag == OUTSIDE:
            continue
        prefix, _, label = tag.partition("-")
        if prefix == "I" and spans and spans[-1][2] == label and spans[-1][3][-1] == i - 1:
            start, _, _, members = spans[-1]
            spans[-1] = (start, tokens[i].end, label, [*members, i])
        else:
            spans.append((tokens[i].start, tokens[i].end, label, [i]))
    return spans


def _shape(word: str) -> str:
    out: list[str] = []
    for ch in word:
        code = "X" if ch.isupper() else "x" if ch.islower() else "d" if ch.isdigit() else ch
        if not out or out[-1] != code:
            out.append(code)
    return "".join(out)


def _long_shape(word: str) -> str:
    """Character classes of the first 12 characters, repeats kept ("Xxxxx", "dd/dd")."""
    return "".join(
        "X" if ch.isupper() else "x" if ch.islower() else "d" if ch.isdigit() else ch for ch in word[:12]
    )


def _case(word: str) -> str:
    if not any(ch.isalpha() for ch in word):
        return "none"
    if word.isupper():
        return "upper"
    if word.istitle():
        return "title"
    if word.islower():
        return "lower"
    return "capmixed" if word[:1].isupper() else "mixed"


def _token_features(word: str) -> Features:
    lower = word.lower()
    tag = word[:1] in "@#" and len(word) > 1
    features: Features = {
        "w": lower,
        "core": lower[1:] if tag else lower,
        "shape": _shape(word),
        "lshape": _long_shape(word),
        "case": _case(word),
        "title": word.istitle(),
        "upper": word.isupper(),
        "innercap": any(ch.isupper() for ch in word[1:]),
        "digit": any(ch.isdigit() for ch in word),
        "alpha": word.isalpha(),
        "tag": tag,
        "mention": tag and word[0] == "@",
        "hashtag": tag and word[0] == "#",
        "url": lower.startswith(("http://", "https://", "www.")),
        "nonascii": any(ord(ch) > 127 for ch in word),
        "punct": not any(ch.isalnum() for ch in word),
        "hyphen": "-" in word,
        "apos": "'" in word or "’" in word,
        "len": min(len(word), 8),
    }
    for k in range(1, 5):
        features[f"p{k}"] = lower[:k]
        features[f"s{k}"] = lower[-k:]
    return features


def _count_bucket(count: int) -> str:
    return (
        "0" if count <= 0 else "1" if count == 1 else "2-3" if count <= 3 else "4-9" if count <= 9 else "10+"
    )


def _ratio_bucket(part: int, whole: int) -> str:
    return str(min(5 * part // whole, 4))


@dataclass(slots=True)
class _WordCounts:
    """How often each lowercased word occurs in tagged text: in all, in lower case, inside an entity (per label)."""

    seen: Counter[str]
    lower: Counter[str]
    inside: Counter[str]
    labels: dict[str, Counter[str]]

    @classmethod
    def of(cls, sentences: Sequence[tuple[Sequence[Token], Sequence[str]]]) -> _WordCounts:
        counts = cls(Counter(), Counter(), Counter(), {})
        for tokens, tags in sentences:
            for tok, tag in zip(tokens, tags, strict=True):
                word = tok.text.lower()
                counts.seen[word] += 1
                if tok.text.islower():
                    counts.lower[word] += 1
                if tag != OUTSIDE:
                    counts.inside[word] += 1
                    counts.labels.setdefault(word, Counter())[tag.partition("-")[2]] += 1
        return counts

    def minus(self, other: _WordCounts) -> _WordCounts:
        labels = {word: per - other.labels.get(word, Counter()) for word, per in self.labels.items()}
        return _WordCounts(
            self.seen - other.seen, self.lower - other.lower, self.inside - other.inside, labels
        )

    def lexicon(self) -> Lexicon:
        return {
            word: (n, self.lower[word], self.inside[word], tuple(sorted(self.labels.get(word, ()))))
            for word, n in self.seen.items()
        }


# lowercased word -> (occurrences, occurrences in lower case, occurrences inside an entity, entity labels)
Lexicon = dict[str, tuple[int, int, int, tuple[str, ...]]]
_UNSEEN: tuple[int, int, int, tuple[str, ...]] = (0, 0, 0, ())


def _lexicon_features(word: str, lexicon: Lexicon) -> Features:
    """What the training text says about ``word``: how frequent, how often lower case, how often an entity."""
    seen, lower, inside, labels = lexicon.get(word.lower(), _UNSEEN)
    features: Features = {"freq": _count_bucket(seen)}
    if seen:
        features["lowr"] = _ratio_bucket(lower, seen)
        features["entr"] = _ratio_bucket(inside, seen)
    for label in labels:
        features[f"gaz:{label}"] = True
    return features


_CONTEXT_KEYS = ("w", "shape", "case", "title", "upper", "tag", "s3", "p3")


def _cluster_features(core: str, clusters: WordClusters) -> Features:
    """Clusters of a token's ``core`` feature (lower case, without the '@' or '#' of a tag)."""
    ids = clusters.of(core)
    return {f"k{size}": ids[k] if ids else "none" for k, size in enumerate(clusters.sizes)}


def sentence_features(
    tokens: Sequence[Token], lexicon: Lexicon | None = None, clusters: WordClusters | None = None
) -> list[Features]:
    """crfsuite feature dicts of a sentence.

    A token's own features, those of its neighbours within two tokens, word and shape bigrams, its
    position, and (with a ``lexicon`` of the training text) its frequency, how often it is written in
    lower case and how often it is part of an entity, each crossed with its capitalization. With
    ``clusters``, the word-vector clusters of the token and of its neighbours.
    """
    own = [_token_features(tok.text) for tok in tokens]
    context_keys: tuple[str, ...] = _CONTEXT_KEYS
    if clusters is not None:
        for mine in own:
            mine.update(_cluster_features(mine["core"], clusters))
        # neighbours add their middle granularity only: all of them fit WNUT-17 dev worse (45.2 vs 45.5 F1)
        context_keys += (f"k{clusters.sizes[len(clusters.sizes) // 2]}",)
    lexical = [_lexicon_features(tok.text, lexicon) for tok in tokens] if lexicon is not None else None
    last = len(own) - 1
    out: list[Features] = []
    for i, base in enumerate(own):
        features: Features = {"bias": 1.0, **base, "first": i == 0, "last": i == last}
        for offset in (-2, -1, 1, 2):
            j = i + offset
            if 0 <= j <= last:
                for key in context_keys:
                    features[f"{offset}:{key}"] = own[j][key]
            else:
                features[f"{offset}:none"] = True
        if i > 0:
            before = own[i - 1]
            features["-1|0"] = f"{before['w']}|{base['w']}"
            features["-1s|0s"] = f"{before['shape']}|{base['shape']}"
            features["-1w|0s"] = f"{before['w']}|{base['shape']}"
            features["-1case|case"] = f"{before['case']}|{base['case']}"
        if i > 1:
            features["-2|-1"] = f"{own[i - 2]['w']}|{own[i - 1]['w']}"
        if i < last:
            after = own[i + 1]
            features["0|+1"] = f"{base['w']}|{after['w']}"
            features["0s|+1s"] = f"{base['shape']}|{after['shape']}"
            features["0s|+1w"] = f"{base['shape']}|{after['w']}"
            features["case|+1case"] = f"{base['case']}|{after['case']}"
        if i + 1 < last:
            features["+1|+2"] = f"{own[i + 1]['w']}|{own[i + 2]['w']}"
        if lexical is not None:
            mine = lexical[i]
            features.update(mine)
            case = base["case"] + ("|first" if i == 0 else "")
            features["case|freq"] = f"{case}|{mine['freq']}"
            features["case|lowr"] = f"{case}|{mine.get('lowr', '-')}"
        out.append({key: value for key, value in features.items() if value is not False})
    return out


class SpanTagger:
    """CRF span tagger. ``fit(texts, spans)`` with spans per text as ``(start, end, label)`` tuples.

    Besides the spelling of each token and its neighbours, the features say what the training text says
    about the word (see ``sentence_features``). During training these word statistics of a sentence come
    from the other folds of a 5-fold split, so that the CRF sees them as it will on new text, where most
    entities are words it has never seen; the statistics of all the training text are kept for prediction.

    ``outside_threshold`` switches from Viterbi to posterior decoding: a token is outside every entity
    only when the CRF gives "O" at least that probability. A run of the other tokens is one entity (a new
    one starts where a token's most probable entity tag is a B-), with the label whose B-/I- probabilities
    sum highest over the run. On noisy text the CRF is cautious (WNUT-17 dev: precision 0.60, recall
    0.20 with Viterbi); 0.9, chosen on the WNUT-17 dev split, trades precision for recall and raises dev
    F1 from 0.30 to 0.41. ``None`` keeps Viterbi.

    ``word_clusters`` (see ``ml_backend.models.word_clusters``) adds the clusters of pretrained word
    vectors as features; the tagger keeps them, so it predicts with the clusters it was trained with.
    """

    def __init__(
        self,
        *,
        c1: float = 0.05,
        c2: float = 0.5,
        max_iterations: int = 100,
        outside_threshold: float | None = 0.9,
        word_clusters: WordClusters | None = None,
    ) -> None:
        self.c1 = c1
        self.c2 = c2
        self.max_iterations = max_iterations
        self.outside_threshold = outside_threshold
        self.word_clusters = word_clusters
        self._lock = threading.Lock()
        self._tagger: Any = None

    def fit(self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int, str]]]) -> SpanTagger:
        if len(texts) != len(spans):
            raise ValueError(f"{len(texts)} texts but {len(spans)} span lists")
        sentences: list[tuple[list[Token], list[str]]] = []
        for text, text_spans in zip(texts, spans, strict=True):
            tokens = tokenize(text)
            if tokens:
                sentences.append((tokens, spans_to_tags(tokens, text_spans)))
        labels = {tag.partition("-")[2] for _, tags in sentences for tag in tags if tag != OUTSIDE}
        if not labels:
            raise ValueError("the span tagger needs at least one labeled span")
        counts = _WordCounts.of(sentences)
        held_out = [
            counts.minus(_WordCounts.of(sentences[fold::_LEXICON_FOLDS])).lexicon()
            for fold in range(_LEXICON_FOLDS)
        ]
        trainer = pycrfsuite.Trainer(verbose=False)
        for k, (tokens, tags) in enumerate(sentences):
            trainer.append(sentence_features(tokens, held_out[k % _LEXICON_FOLDS], self.word_clusters), tags)
        trainer.set_params(
            {
                "c1": self.c1,
                "c2": self.c2,
                "max_iterations": self.max_iterations,
                "feature.possible_transitions": True,
            }
        )
        handle, path = tempfile.mkstemp(suffix=".crfsuite")
        os.close(handle)
        try:
            trainer.train(path)
            with open(path, "rb") as model_file:
                self.model_bytes_ = model_file.read()
        finally:
            os.unlink(path)
        self.lexicon_: Lexicon | None = counts.lexicon()
        self._tagger = None
        self.classes_ = tuple(sorted(labels))
        self.tags_ = tuple(self._open().labels())
        return self

    def _open(self) -> Any:
        if self._tagger is None:
            tagger = pycrfsuite.Tagger()
            tagger.open_inmemory(self.model_bytes_)
            self._tagger = tagger
        return self._tagger

    def predict(self, texts: Sequence[str]) -> list[TaggedText]:
        if not hasattr(self, "model_bytes_"):
            raise ValueError("the span tagger is not trained")
        with self._lock:  # a crfsuite Tagger holds the sequence being tagged: one at a time
            tagger = self._open()
            return [self._predict_one(tagger, text) for text in texts]

    def _predict_one(self, tagger: Any, text: str) -> TaggedText:
        tokens = tokenize(text)
        if not tokens:
            return TaggedText((), np.zeros((0, len(self.tags_))))
        tagger.set(sentence_features(tokens, self.lexicon_, self.word_clusters))
        marginals = np.array([[tagger.marginal(tag, i) for tag in self.tags_] for i in range(len(tokens))])
        tags = tagger.tag() if self.outside_threshold is None else self._posterior_tags(marginals)
        column = {tag: k for k, tag in enumerate(self.tags_)}
        found = []
        for start, end, label, members in tags_to_spans(tokens, tags):
            score = float(np.mean([marginals[i, column[tags[i]]] for i in members]))
            found.append(Span(start, end, label, score))
        return TaggedText(tuple(found), marginals)

    def _posterior_tags(self, marginals: FloatArray) -> list[str]:
        outside = self.tags_.index(OUTSIDE) if OUTSIDE in self.tags_ else -1
        if outside < 0:
            return [self.tags_[k] for k in marginals.argmax(axis=1)]
        entity = marginals.copy()
        entity[:, outside] = -1.0
        best = [self.tags_[k] for k in entity.argmax(axis=1).tolist()]
        inside = (marginals[:, outside] < (self.outside_threshold or 0.0)).tolist()
        columns: dict[str, list[int]] = {}
        for k, tag in enumerate(self.tags_):
            if tag != OUTSIDE:
                columns.setdefault(tag.partition("-")[2], []).append(k)
        tags = [OUTSIDE] * len(inside)
        i = 0
        while i < len(inside):
            if not inside[i]:
                i += 1
                continue
            end = i + 1
            while end < len(inside) and inside[end] and not best[end].startswith("B-"):
                end += 1
            run = marginals[i:end]
            label = max(columns, key=lambda name: float(run[:, columns[name]].sum()))
            tags[i:end] = [f"B-{label}"] + [f"I-{label}"] * (end - i - 1)
            i = end
        return tags

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_tagger"] = None
        state["_lock"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # models pickled before the word statistics (or clusters) existed lack them; their features are as then
        state.setdefault("lexicon_", None)
        state.setdefault("word_clusters", None)
        self.__dict__.update(state)
        self._lock = threading.Lock()
