"""Sentence starts by a simple end-punctuation rule, for models that read a mention in its
sentence (relation features, the assertion classifier): they need only "which sentence",
not a linguist's segmentation, so a rule with no model to load is enough."""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"[.!?]\s+(?=[A-Z0-9(\[])")


def sentence_starts(text: str) -> list[int]:
    """Start offsets of the sentences of ``text``: 0, then after each ``.``, ``!`` or ``?``
    followed by space and a capital, digit or opening bracket."""
    return [0] + [match.end() for match in _SENTENCE_END.finditer(text)]

