"""A tokenizer for short, noisy English text that keeps character offsets (spans are character ranges)."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Order matters: URLs, @mentions/#hashtags and dotted abbreviations stay whole; English clitics
# ('s, n't, 're ...) are split off the way the CoNLL/WNUT data does, so "Obama's" gives "Obama" + "'s".
_TOKEN = re.compile(
    r"""
    (?:https?://|www\.)\S+
    | [@\#]\w+
    | (?:[A-Za-z]\.){2,}
    | \w+(?=n't\b)
    | n't\b
    | '(?:s|m|re|ve|ll|d)\b
    | \w+(?:[-’]\w+|'(?!(?:s|m|re|ve|ll|d)\b)\w+)*
    | &\w+;
    | \S
    """,
    re.VERBOSE | re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Token:
    start: int
    end: int
    text: str


def tokenize(text: str) -> list[Token]:
    """Tokens of ``text`` with their ``[start, end)`` character offsets."""
    return [Token(m.start(), m.end(), m.group()) for m in _TOKEN.finditer(text)]
