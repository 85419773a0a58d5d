"""Cut a stream of generated text into speakable pieces: sentences, and an early first clause."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st vs etc e.g i.e approx no fig dept est mt ft inc ltd co".split()
)
_SENTENCE_END = re.compile(r"([.!?]+[\"')\]]*)(\s+)")
_CLAUSE_END = re.compile(r"([,;:\u2014])(\s+)")
_MARKUP = re.compile(r"[*_#`~|<>\[\]{}]+")
_NON_SPEECH = re.compile(
    "[\U0001F000-\U0001FAFF\U00002600-\U000027BF\U0001F900-\U0001F9FF\uFE0F\u200d]+"
)
_SPACES = re.compile(r"\s+")


def clean(text: str) -> str:
    """Remove markup and emoji that a voice should not read out, and fold white space."""
    text = _MARKUP.sub(" ", text)
    text = _NON_SPEECH.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def word_count(text: str) -> int:
    """Words as spoken: runs of letters or digits."""
    return len(re.findall(r"[^\W_]+(?:['\u2019.-][^\W_]+)*", text))


def _is_abbreviation(before: str) -> bool:
    last = before.rsplit(None, 1)[-1].rstrip(".").lower() if before.strip() else ""
    return last in _ABBREVIATIONS or (len(last) == 1 and last.isalpha())


class SentenceSplitter:
    """Accumulates text pieces and hands out complete sentences as soon as they end."""

    def __init__(self, first_clause_words: int = 4) -> None:
        self.first_clause_words = first_clause_words
        self._buffer = ""
        self._emitted = 0

    def feed(self, piece: str) -> list[str]:
        """Add generated text; return the pieces that are now complete, in order."""
        self._buffer += piece
        out: list[str] = []
        while True:
            cut = self._find_cut()
            if cut is None:
                break
            head, self._buffer = self._buffer[:cut], self._buffer[cut:]
            spoken = clean(head)
            if spoken and word_count(spoken):
                out.append(spoken)
                self._emitted += 1
        return out

    def flush(self) -> list[str]:
        """The generation ended: whatever is left is the last piece."""
        rest, self._buffer = clean(self._buffer), ""
        if rest and word_count(rest):
            self._emitted += 1
            return [rest]
        return []

    def _find_cut(self) -> int | None:
        for match in _SENTENCE_END.finditer(self._buffer):
            before = self._buffer[: match.start(1)]
            if match.group(1) == "." and _is_abbreviation(before):
                continue
            return match.end(1)
        if self._emitted == 0 and self.first_clause_words > 0:
            for match in _CLAUSE_END.finditer(self._buffer):
                if word_count(self._buffer[: match.start(1)]) >= self.first_clause_words:
                    return match.end(1)
        return None


def split_stream(pieces: Iterable[str], first_clause_words: int = 4) -> Iterator[str]:
    """Turn a stream of text pieces into a stream of speakable sentences."""
    splitter = SentenceSplitter(first_clause_words)
    for piece in pieces:
        yield from splitter.feed(piece)
    yield from splitter.flush()
