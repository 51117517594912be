"""Keys under which a concept name and a mention meet, from strict to loose.

``exact_key``: case, Unicode form, dashes, quotes and white space folded.
``loose_key``: also punctuation dropped and each word made singular ("seizures" = "seizure",
"Na(+)" = "na"), for the morphological variants corpora write.
``bag_key``: the loose words as a set without function words, for word-order variants
("cancer of the breast" = "breast cancer").

Written here, not taken from a library: the stemmers and lemmatisers of NLTK or spaCy change
drug and disease names ("diabetes" -> "diabet"); only regular English plurals are undone.
"""

from __future__ import annotations

import re

from medner.document import normalize_text

_FOLD = str.maketrans({"\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-",
                       "\u2014": "-", "\u2212": "-", "\u2018": "'", "\u2019": "'",
                       "\u201c": '"', "\u201d": '"'})
_WORD = re.compile(r"[^\W_]+")
_FUNCTION_WORDS = frozenset({"a", "an", "and", "by", "for", "in", "of", "on", "the", "to",
                             "with"})


def exact_key(name: str) -> str:
    return normalize_text(name).translate(_FOLD)


def singular(word: str) -> str:
    """Undo a regular English plural; short words and Latin/Greek endings stay."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and (
            word.endswith("ias") or not word.endswith(("ss", "us", "is", "as"))):
        return word[:-1]  # "arrhythmias", "seizures"; not "pancreas", "sepsis", "virus"
    return word


def loose_key(name: str) -> str:
    return " ".join(singular(w) for w in _WORD.findall(exact_key(name)))


def bag_key(name: str) -> str:
    return " ".join(sorted(set(loose_key(name).split()) - _FUNCTION_WORDS))


_NUMBER = re.compile(r"\d+")


def numbers_agree(name: str, other: str) -> bool:
    """False when both names hold numbers and not the same ones: numbers tell apart what an
    embedding puts side by side ("KF17837" and "KF 17828" are two compounds, "type 1" and
    "type 2 diabetes" two diseases). A name without numbers contradicts none ("type II
    diabetes", "fluorouracil" for "5-fluorouracil")."""
    mine, theirs = _NUMBER.findall(name), _NUMBER.findall(other)
    return not mine or not theirs or sorted(map(int, mine)) == sorted(map(int, theirs))


KEYS = (("exact", exact_key), ("loose", loose_key), ("word-order", bag_key))
"""The string matchers in the order the linker tries them."""

__all__ = ["KEYS", "bag_key", "exact_key", "loose_key", "numbers_agree", "singular"]
