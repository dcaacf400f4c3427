"""The demo's corpus: short product reviews with a known sentiment, written by this module.

No third-party data goes into the repository: the reviews are composed from small phrase lists with a
seeded generator, so ``examples/reviews.csv`` can always be rebuilt byte for byte
(``python -m ls_companion.demo.corpus``). Some reviews are deliberately hard (a praise and a complaint
in one sentence, a hedge), so the model, the simulated annotators and the agreement are not perfect.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

LABELS = ("Positive", "Negative", "Neutral")
DEFAULT_SIZE = 600
DEFAULT_SEED = 7
EXAMPLE_CORPUS = Path(__file__).resolve().parents[2] / "examples" / "reviews.csv"

_PRODUCTS = (
    "headset", "keyboard", "kettle", "camera", "backpack", "phone case", "desk lamp", "blender",
    "monitor", "charger", "mouse", "speaker", "toaster", "router", "water bottle", "jacket",
)  # fmt: skip
_ASPECTS = ("battery", "sound", "build quality", "price", "design", "delivery", "manual", "packaging")
_POSITIVE = (
    "works perfectly",
    "exceeded my expectations",
    "is worth every penny",
    "is excellent",
    "feels really solid",
    "is a joy to use",
    "arrived early and works great",
    "is the best I have owned",
)
_NEGATIVE = (
    "stopped working after a week",
    "is a waste of money",
    "broke on the first day",
    "is really disappointing",
    "feels cheap and flimsy",
    "is terrible",
    "never worked properly",
    "was returned the same day",
)
_NEUTRAL = (
    "arrived on Tuesday",
    "comes in black and grey",
    "is about the size of a book",
    "does what the box says",
    "was delivered in a plain box",
    "has two buttons on the side",
    "is what I ordered",
    "is the 2024 model",
)
_OPENERS = ("", "Honestly, ", "Well, ", "So far ", "After a month, ")
_ASPECT_GOOD = ("great", "fine", "lovely", "impressive")
_ASPECT_BAD = ("awful", "poor", "annoying", "a letdown")


@dataclass(frozen=True, slots=True)
class Review:
    id: str
    text: str
    label: str


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _plain(rng: np.random.Generator, label: str) -> str:
    phrases = {"Positive": _POSITIVE, "Negative": _NEGATIVE, "Neutral": _NEUTRAL}[label]
    return f"{_pick(rng, _OPENERS)}the {_pick(rng, _PRODUCTS)} {_pick(rng, phrases)}"


def _mixed(rng: np.random.Generator, label: str) -> str:
    """A praise and a complaint in one review: the clause after "but" decides, as the guidelines say."""
    good_aspect, bad_aspect = (str(a) for a in rng.choice(_ASPECTS, size=2, replace=False))
    good = f"the {good_aspect} is {_pick(rng, _ASPECT_GOOD)}"
    bad = f"the {bad_aspect} is {_pick(rng, _ASPECT_BAD)}"
    first, last = (bad, good) if label == "Positive" else (good, bad)
    return f"{_pick(rng, _OPENERS)}{first} but {last}"


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:] + "."


def generate(size: int = DEFAULT_SIZE, seed: int = DEFAULT_SEED) -> list[Review]:
    """``size`` distinct reviews, labels in proportion 40/35/25 (Positive/Negative/Neutral)."""
    rng = np.random.default_rng(seed)
    seen: set[str] = set()
    reviews: list[Review] = []
    misses = 0  # draws in a row that repeated an earlier review: the phrase lists are exhausted
    while len(reviews) < size:
        if misses > 5_000:
            raise ValueError(f"cannot compose {size} distinct reviews from the phrase lists")
        label = LABELS[int(rng.choice(3, p=[0.40, 0.35, 0.25]))]
        mixed = label != "Neutral" and rng.random() < 0.2
        text = _sentence(_mixed(rng, label) if mixed else _plain(rng, label))
        if text in seen:
            misses += 1
            continue
        misses = 0
        seen.add(text)
        reviews.append(Review(f"rev{len(reviews):04d}", text, label))
    return reviews


def write_csv(reviews: Sequence[Review], path: Path, *, with_label: bool = True) -> Path:
    """Write ``id,text[,label]`` (RFC 4180, UTF-8, ``\\n`` line ends)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["id", "text", "label"] if with_label else ["id", "text"])
        for review in reviews:
            writer.writerow(
                [review.id, review.text, review.label] if with_label else [review.id, review.text]
            )
    return path


def read_csv(path: Path) -> list[Review]:
    with path.open(newline="", encoding="utf-8") as handle:
        return [Review(row["id"], row["text"], row["label"]) for row in csv.DictReader(handle)]


if __name__ == "__main__":  # rebuild examples/reviews.csv
    print(write_csv(generate(), Path(sys.argv[1]) if len(sys.argv) > 1 else EXAMPLE_CORPUS))
