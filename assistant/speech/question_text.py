"""Turn what the recogniser heard into the sentence the LLM is asked: a capital letter and an end mark.

Recognisers write lower-case words with no punctuation ("what is the capital of japan"), and a
small model answers such a line worse, and in lower case, than the same question written out
("What is the capital of Japan?"). ``as_question`` restores what the words themselves tell: the
capital at the start, the pronoun "I", and a question mark when the line opens the way an English
question does (else a full stop). Text that already has its own capitals or end mark keeps them.
"""

from __future__ import annotations

import logging
import re

_LOG = logging.getLogger(__name__)

QUESTION_OPENERS = frozenset({
    "what", "what's", "whats", "who", "who's", "whom", "whose", "where", "where's", "when", "when's", "why",
    "how", "how's", "which",
    "is", "isn't", "are", "aren't", "am", "was", "wasn't", "were", "weren't",
    "do", "don't", "does", "doesn't", "did", "didn't",
    "can", "can't", "could", "couldn't", "will", "won't", "would", "wouldn't", "shall", "should", "shouldn't",
    "may", "might", "must", "have", "haven't", "has", "hasn't", "had", "hadn't",
})
"""First words that make an English line a question ("is it raining", "how far is the moon")."""

_I_FORMS = re.compile(r"\b(i)('m|'ll|'d|'ve)?\b")
_END = ".?!"


def is_question(text: str) -> bool:
    """True when the first word of ``text`` opens a question (any case, punctuation ignored)."""
    first = re.match(r"[A-Za-z']+", text.strip())
    return bool(first) and first.group(0).lower() in QUESTION_OPENERS  # type: ignore[union-attr]


def as_question(text: str) -> str:
    """``text`` as a written sentence: collapsed spaces, capital first letter, "I", an end mark.

    >>> as_question("what is the capital of japan")
    'What is the capital of Japan?'

    (the country's capital comes from the word list below, not from a guess).
    """
    line = " ".join(text.split())
    if not line:
        return line
    if line == line.lower():  # as a recogniser writes it: fix the case of what is known
        line = _I_FORMS.sub(lambda m: "I" + (m.group(2) or ""), line)
        line = _proper_nouns(line)
    line = line[0].upper() + line[1:]
    if line[-1] not in _END:
        line += "?" if is_question(line) else "."
    return line


PROPER_NOUNS: tuple[str, ...] = (
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday",
    "January", "February", "March", "April", "June", "July", "August", "September", "October", "November",
    "December", "Christmas", "Easter",
    "Africa", "America", "Antarctica", "Asia", "Australia", "Europe", "Earth", "Mars", "Jupiter", "Saturn",
    "Mercury", "Venus", "Neptune", "Uranus", "Pluto",
    "England", "Britain", "Scotland", "Wales", "Ireland", "France", "Germany", "Italy", "Spain", "Portugal",
    "Russia", "China", "Japan", "India", "Canada", "Mexico", "Brazil", "Egypt", "Greece", "Sweden", "Norway",
    "London", "Paris", "Rome", "Berlin", "Madrid", "Tokyo", "Moscow", "Ottawa", "Canberra", "Cairo",
    "English", "French", "German", "Italian", "Spanish", "Portuguese", "Russian", "Chinese", "Japanese",
    "Pacific", "Atlantic", "Nile", "Amazon", "Everest",
    "Shakespeare", "Einstein", "Newton", "Darwin",
)
"""Names a question to the appliance often holds, written as English writes them; recognisers write
them in lower case. Days, months, planets, countries and capitals, languages, a few famous names."""
_NAMES = {n.lower(): n for n in PROPER_NOUNS}
_WORD = re.compile(r"[a-z]+")


def _proper_nouns(line: str) -> str:
    return _WORD.sub(lambda m: _NAMES.get(m.group(0), m.group(0)), line)
