"""A harder, balanced sentiment set: synthetic product reviews over a wide, real sentiment vocabulary.

Why: the demo reviews (``ls_companion.demo.corpus``) are built from eight phrases a label, so every
TF-IDF candidate reaches 1.000 from 200–300 labels and nothing can be measured on them. Real reviews
use thousands of sentiment words, most of which a model trained on a few hundred labels has never
seen, and they negate, hedge and mix praise with complaints.

The design was fixed before any model was measured on it (issue 12):

- **Sentiment words** come from VADER's lexicon (PyPI ``vaderSentiment`` 3.3.2, MIT; words rated
  from −4 to +4 by ten people): the alphabetic entries rated ≥ 1.0 are positive (2,435 words), those
  rated ≤ −1.0 negative (3,143). Each slot draws one uniformly, so 200 training reviews (about 600
  draws) see a small part of them and most words of a test review were never seen in training.
  Inflections stay separate words (``foolish``, ``foolishly``, ``foolishness``), as in real text.
- **A review** is one or two clauses of its label's polarity ("the battery was *splendid*", "one word
  for this kettle: *dreadful*"; a clause holds one or two sentiment words), in templates that fit
  any part of speech, plus 0–2 neutral sentences (who it was bought for, where it is used, delivery)
  from slot lists that hold no lexicon word (a unit test checks it).
- **Negation**: a clause is negated with probability 0.2 and then holds a word of the other polarity
  ("the price is not *outrageous*" in a positive review).
- **Mixed reviews**: with probability 0.25 the first clause is preceded by one of the other polarity
  and "but" ("the manual was *confusing* but the sound is *superb*"): the clause after "but" decides,
  as in the demo's guidelines. A bag of words cannot see the order, so these stay hard.
- **Balanced**: exactly half Positive, half Negative, in a seeded order; ``generate(size, seed)``
  returns the same reviews on every machine for the same vaderSentiment version.

It is synthetic: grammatical enough to read, not real customer text. Figures measured on it say how
models generalise to unseen sentiment words, not how they do on a real review site.

    .venv/bin/python -m bench.sentiment_set [SIZE] [SEED]   # prints a few reviews and the counts
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Sequence
from importlib import resources

import numpy as np

from ls_companion.selection.simulate import Dataset

LABELS = ("Positive", "Negative")
#: Least |mean rating| of a lexicon word used as a sentiment word.
MIN_RATING = 1.0
NEGATION = 0.2
MIXED = 0.25
DEFAULT_SIZE = 4000
DEFAULT_SEED = 0

PRODUCTS = (
    "headset", "keyboard", "kettle", "camera", "backpack", "phone case", "desk lamp", "blender",
    "monitor", "charger", "mouse", "speaker", "toaster", "router", "water bottle", "jacket", "tent",
    "drill", "vacuum", "printer", "tablet", "watch", "mattress", "pillow", "frying pan", "coffee maker",
    "bicycle pump", "umbrella", "suitcase", "hair dryer", "microwave", "space heater", "webcam", "scanner",
    "lawn mower", "rice cooker", "thermos", "sleeping bag", "office chair", "power bank",
)  # fmt: skip
ASPECTS = (
    "battery", "sound", "build", "price", "design", "delivery", "manual", "packaging", "screen",
    "cable", "handle", "lid", "app", "setup", "noise level", "weight", "finish", "size", "material",
    "customer service", "warranty", "buttons", "charging", "strap", "smell",
)  # fmt: skip
_PEOPLE = (
    "my sister",
    "my dad",
    "my mother",
    "my son",
    "my daughter",
    "our office",
    "my flatmate",
    "my partner",
)
_MONTHS = ("January", "March", "April", "June", "July", "September", "October", "December")
_ROOMS = ("kitchen", "garage", "bedroom", "living room", "office", "car", "shed", "hallway")
_COLOURS = ("black", "beige", "blue", "green", "red", "brown", "silver", "white")
_FILLERS = (
    "I bought it for {person} in {month}",
    "we use it in the {room} most days",
    "it arrived {number} days after I ordered it",
    "I have had the {product} since {month}",
    "it came in a {colour} box with a short manual",
    "this is the {colour} version",
    "it replaced an older {product}",
    "I ordered it on a Tuesday",
    "the {product} is mostly used by {person}",
    "{person} picked the {colour} one",
    "it sits in the {room} next to the {other}",
    "I read the reviews before ordering it",
)
_NUMBERS = ("two", "three", "four", "five", "six", "seven", "ten")
#: A clause of the review's polarity; {w} (and {v}) are sentiment words, {a} an aspect, {p} a product.
_PLAIN = (
    "the {a} is {w}",
    "the {a} was {w}",
    "I found the {a} {w}",
    "{w} is the word for the {a}",
    "one word for this {p}: {w}",
    "the {a}? {w}",
    "my first thought about the {a} was {w}",
    "{w} and {v}, that sums up the {a}",
    "the {a} felt {w} and {v}",
    "the {p} overall: {w}",
)
#: A negated clause: its words are of the other polarity.
_NEGATED = (
    "the {a} is not {w}",
    "the {a} was never {w}",
    "I would not call the {a} {w}",
    "nothing {w} about the {a}",
    "the {a} is hardly {w}",
    "the {p} is not {w} at all",
)
_WORD = re.compile(r"[a-z]+")


@functools.cache
def lexicon() -> dict[str, float]:
    """VADER's lexicon: word -> mean rating (−4..+4), read from the installed vaderSentiment package."""
    text = (resources.files("vaderSentiment") / "vader_lexicon.txt").read_text(encoding="utf-8")
    ratings: dict[str, float] = {}
    for line in text.splitlines():
        word, rating = line.split("\t")[:2]
        ratings[word] = float(rating)
    return ratings


@functools.cache
def sentiment_words() -> dict[str, tuple[str, ...]]:
    """Label -> its alphabetic lexicon words rated at least MIN_RATING in its direction (sorted)."""
    words = {w: r for w, r in lexicon().items() if _WORD.fullmatch(w)}
    return {
        "Positive": tuple(sorted(w for w, r in words.items() if r >= MIN_RATING)),
        "Negative": tuple(sorted(w for w, r in words.items() if r <= -MIN_RATING)),
    }


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _clause(rng: np.random.Generator, label: str, negated: bool) -> str:
    other = LABELS[1 - LABELS.index(label)]
    pool = sentiment_words()[other if negated else label]
    template = _pick(rng, _NEGATED if negated else _PLAIN)
    return template.format(
        w=_pick(rng, pool), v=_pick(rng, pool), a=_pick(rng, ASPECTS), p=_pick(rng, PRODUCTS)
    )


def _filler(rng: np.random.Generator) -> str:
    product, other = (str(p) for p in rng.choice(PRODUCTS, size=2, replace=False))
    return _pick(rng, _FILLERS).format(
        person=_pick(rng, _PEOPLE),
        month=_pick(rng, _MONTHS),
        room=_pick(rng, _ROOMS),
        colour=_pick(rng, _COLOURS),
        number=_pick(rng, _NUMBERS),
        product=product,
        other=other,
    )


def review(rng: np.random.Generator, label: str) -> str:
    """One review of ``label``: its clauses, maybe a contrary clause before "but", neutral sentences."""
    clauses = [_clause(rng, label, rng.random() < NEGATION) for _ in range(1 + int(rng.random() < 0.5))]
    if rng.random() < MIXED:
        clauses[0] = f"{_clause(rng, LABELS[1 - LABELS.index(label)], False)} but {clauses[0]}"
    for _ in range(int(rng.integers(3))):
        clauses.insert(int(rng.integers(len(clauses) + 1)), _filler(rng))
    return " ".join(c[0].upper() + c[1:] + "." for c in clauses)


def generate(size: int = DEFAULT_SIZE, seed: int = DEFAULT_SEED) -> Dataset:
    """``size`` distinct reviews (an even size: half Positive, half Negative) in a seeded order."""
    if size < 2 or size % 2:
        raise ValueError(f"size must be an even number of at least 2, not {size}")
    rng = np.random.default_rng(seed)
    labels = [LABELS[int(k)] for k in rng.permutation(np.arange(size) % 2)]
    seen: set[str] = set()
    texts: list[str] = []
    for label in labels:
        text = review(rng, label)
        while text in seen:
            text = review(rng, label)
        seen.add(text)
        texts.append(text)
    return Dataset(texts, labels)


if __name__ == "__main__":
    data = generate(*(int(v) for v in sys.argv[1:3]))
    for text, label in list(zip(data.texts, data.labels, strict=True))[:8]:
        print(f"{label:9s} {text}")
    words = sentiment_words()
    print(
        f"{len(data.texts)} reviews; sentiment words: {len(words['Positive'])} positive, {len(words['Negative'])} negative"
    )
