"""What a text looks like, measured the same way on training data (the baseline) and on captured traffic.

Per text: its length in characters and in words, whether it is empty, and whether it is garbled: mostly
characters that are not letters (numbers, symbols, markup), or holding the marks of broken encodings
(U+FFFD, control characters, UTF-8 read as Latin-1 such as ``Ã©``). Over a group of texts: the share of
words outside a vocabulary (the baseline's), which rises for another language, another domain or
garbled input.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

#: words: runs of letters (any script) with inner apostrophes or hyphens
WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")
#: the same for lower-case ASCII text, where it is a third faster
_ASCII_WORD = re.compile(r"[a-z]+(?:['-][a-z]+)*")
#: UTF-8 text decoded as Latin-1 / cp1252 leaves these pairs behind
_MOJIBAKE = re.compile("[ÃÂ][\u0080-\u00bf]|â€")
#: a text is garbled when under this share of its non-space characters are letters
MIN_LETTER_SHARE = 0.5
#: or when over this share of its characters are broken-encoding marks
MAX_BROKEN_SHARE = 0.02
#: ASCII text (most of it) is measured by ``bytes.translate`` rather than a loop over its characters:
#: the characters ``str.isspace`` and ``str.isalpha`` accept, and the control characters that are not space
_ASCII_SPACES = bytes(c for c in range(128) if chr(c).isspace())
_ASCII_LETTERS = string.ascii_letters.encode()
_ASCII_CONTROLS = bytes(
    c for c in range(128) if unicodedata.category(chr(c)) == "Cc" and not chr(c).isspace()
)


@dataclass(frozen=True)
class TextFeatures:
    """Per-text measurements of a group of texts, as arrays of the same length."""

    chars: np.ndarray
    words: np.ndarray
    empty: np.ndarray
    garbled: np.ndarray

    def __len__(self) -> int:
        return len(self.chars)


def features(texts: Sequence[str]) -> TextFeatures:
    chars = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    words = np.fromiter((len(WORD.findall(t)) for t in texts), dtype=np.int64, count=len(texts))
    empty = np.fromiter((not t.strip() for t in texts), dtype=bool, count=len(texts))
    garbled = np.fromiter((is_garbled(t) for t in texts), dtype=bool, count=len(texts))
    return TextFeatures(chars, words, empty, garbled)


def is_garbled(text: str) -> bool:
    """Whether ``text`` (not empty) is mostly not letters, or shows a broken encoding."""
    if text.isascii():
        raw = text.encode("ascii")
        shown = len(raw.translate(None, _ASCII_SPACES))
        if not shown:
            return False
        if (len(raw) - len(raw.translate(None, _ASCII_LETTERS))) / shown < MIN_LETTER_SHARE:
            return True
        return (len(raw) - len(raw.translate(None, _ASCII_CONTROLS))) / shown > MAX_BROKEN_SHARE
    visible = [c for c in text if not c.isspace()]
    if not visible:
        return False
    letters = sum(c.isalpha() for c in visible)
    if letters / len(visible) < MIN_LETTER_SHARE:
        return True
    broken = sum(c == "\ufffd" or unicodedata.category(c) in ("Cc", "Co", "Cs") for c in visible)
    broken += 2 * len(_MOJIBAKE.findall(text))
    return broken / len(visible) > MAX_BROKEN_SHARE


def words_of(text: str) -> list[str]:
    """The words of ``text``, lower-case."""
    lowered = text.lower()
    return _ASCII_WORD.findall(lowered) if lowered.isascii() else WORD.findall(lowered)


def vocabulary(texts: Iterable[str], *, min_count: int = 2, size: int = 30_000) -> list[str]:
    """The words seen at least ``min_count`` times, the ``size`` most frequent (lower-case)."""
    counts = Counter(w for t in texts for w in words_of(t))
    return [w for w, n in counts.most_common(size) if n >= min_count]


def oov_rate(texts: Iterable[str], known: set[str] | frozenset[str]) -> float:
    """The share of the texts' words outside ``known`` (0 when they hold no word)."""
    total = unknown = 0
    for text in texts:
        for word in words_of(text):
            total += 1
            unknown += word not in known
    return unknown / total if total else 0.0
