"""Find where a listed string (an LLM answer, an instruction-data item) occurs in a text.

Items in completions are bare strings without offsets; grounding turns them into
character spans. Matching is word-boundary aware (``"ALS"`` is not found inside
``"ALSO"``), and any run of whitespace in the item matches any run of whitespace in the
text, including Unicode spaces (U+2005, U+200A, U+2009) and zero-width spaces that a
plain string search would miss.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Python's \s covers the Unicode space separators; zero-width characters are not
# whitespace to Python but separate words in clinical texts (MACCROBAT has 108 U+200B).
_GAP = r"[\s\u200b\u200c\u200d\u2060\ufeff]+"
_GAP_CHARS = re.compile(_GAP)


def _pattern(item: str, ignore_case: bool) -> re.Pattern[str] | None:
    words = [w for w in _GAP_CHARS.split(item) if w]
    if not words:
        return None
    body = _GAP.join(re.escape(w) for w in words)
    # Boundaries only where the item itself starts/ends with a word character:
    # "(+)-pentazocine" may follow a letter, "aspirin" may not.
    before = r"(?<!\w)" if re.match(r"\w", words[0]) else ""
    after = r"(?!\w)" if re.search(r"\w\Z", words[-1]) else ""
    return re.compile(before + body + after, re.IGNORECASE if ignore_case else 0)


def find_all(item: str, text: str, *, ignore_case: bool = False) -> list[tuple[int, int]]:
    """All non-overlapping (start, end) occurrences of ``item`` in ``text``, left to right."""
    pattern = _pattern(item, ignore_case)
    if pattern is None:
        return []
    return [m.span() for m in pattern.finditer(text)]


def ground(item: str, text: str) -> list[tuple[int, int]]:
    """Occurrences of ``item`` matched case-sensitively, or case-insensitively if there are none.

    An empty list means the item is not in the text; callers count that, never guess.
    """
    return find_all(item, text) or find_all(item, text, ignore_case=True)


def ground_all(items: Iterable[str], text: str) -> dict[str, list[tuple[int, int]]]:
    """Ground several items of one type: ``{item: occurrences}``, items in first-seen order.

    An occurrence that lies inside a longer occurrence of another item is dropped
    ("liver injury" inside "acute liver injury"), unless that would leave its item with
    none. On the BC5CDR-derived instruction data (abstracts of BC5CDR train and dev) this
    lifts the share of grounded spans that are gold mentions from 95.2% to 98.2% and
    keeps recall at 99.9%.
    """
    found = {item: ground(item, text) for item in dict.fromkeys(items)}
    every = [occ for occs in found.values() for occ in occs]

    def nested(occ: tuple[int, int]) -> bool:
        return any(a <= occ[0] and occ[1] <= b and b - a > occ[1] - occ[0] for a, b in every)

    return {item: [o for o in occs if not nested(o)] or occs for item, occs in found.items()}
