"""Document-level splits and the leak check between two corpora."""

from __future__ import annotations

import random
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from medner.document import Document, normalize_text, text_fingerprint
from medner.errors import ConfigError


def split_documents(
    documents: Sequence[Document],
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 13,
) -> list[list[Document]]:
    """Shuffle whole documents deterministically and cut them by ``ratios``.

    Documents that share a normalised text (the same abstract under several ids or
    tasks) always land in the same part, so no text is in two parts.
    """
    if not ratios or any(r < 0 for r in ratios) or abs(sum(ratios) - 1.0) > 1e-6:
        raise ConfigError(f"split ratios must be non-negative and sum to 1, got {list(ratios)}")
    groups: dict[str, list[Document]] = defaultdict(list)
    for doc in documents:
        groups[text_fingerprint(doc.text)].append(doc)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    bounds, total = [], 0.0
    for ratio in ratios:
        total += ratio
        bounds.append(round(total * len(keys)))
    parts: list[list[Document]] = []
    start = 0
    for end in bounds:
        parts.append([doc for key in keys[start:end] for doc in groups[key]])
        start = end
    return parts


@dataclass
class LeakReport:
    size_a: int
    size_b: int
    shared_ids: list[str] = field(default_factory=list)
    shared_texts: list[tuple[str, str]] = field(default_factory=list)
    """(id in A, id in B) pairs whose normalised texts are equal."""
    distinct_texts_b: int = 0
    leaked_texts_b: int = 0
    """Distinct texts of B that also occur in A."""
    contained_texts: list[tuple[str, str]] = field(default_factory=list)
    """(id in A, id in B) pairs where one normalised text holds the other whole (an abstract
    alone against title + abstract); texts shorter than ``CONTAINMENT_MIN_CHARS`` are not
    checked."""
    found: tuple[dict[int, set[str]], dict[int, set[str]]] = field(
        default_factory=lambda: ({}, {}), repr=False)
    """Per side (A, B): the position of every document found -> the checks that found it
    ("id", "text", "contained"). Positions, unlike ids, stay exact where ids repeat."""

    @property
    def leaks(self) -> bool:
        return bool(self.shared_ids or self.shared_texts or self.contained_texts)

    def leaked_ids(self, side: int) -> set[str]:
        """Ids of the documents of A (``side`` 0) or B (1) found by any of the checks."""
        return set(self.shared_ids) | {pair[side] for pair in
                                       self.shared_texts + self.contained_texts}

    def leaked_positions(self, side: int) -> set[int]:
        """Positions (0-based) in A (``side`` 0) or B (1) of the documents found by any of
        the checks: what to leave out of that side to remove the leak."""
        return set(self.found[side])

    def _mark(self, side: int, position: int, check: str) -> None:
        self.found[side].setdefault(position, set()).add(check)

    def to_dict(self) -> dict:
        return {
            "documents_a": self.size_a,
            "documents_b": self.size_b,
            "shared_ids": len(self.shared_ids),
            "shared_texts": len(self.shared_texts),
            "distinct_texts_b": self.distinct_texts_b,
            "distinct_texts_b_also_in_a": self.leaked_texts_b,
            "contained_texts": len(self.contained_texts),
            "examples": {
                "ids": self.shared_ids[:10],
                "texts": [list(pair) for pair in self.shared_texts[:10]],
                "contained": [list(pair) for pair in self.contained_texts[:10]],
            },
        }


CONTAINMENT_MIN_CHARS = 100
"""Shorter texts (a heading, a stock phrase) can be inside other documents by chance, not by
reuse. Whole abstracts can be short: three BC5CDR dev abstracts of 180-194 characters are in
the tutorial's instruction files (a bound of 200 missed them); across the shared corpora no
text of any length was found inside another by chance."""


def hold_out(documents: Sequence[Document], fraction: float, seed: int
             ) -> tuple[list[Document], list[Document]]:
    """(rest, held-out part): a seeded sample of ``fraction`` of the documents, at least one
    on each side (callers check there are two). Trainers hold out a part of TRAIN with it to
    choose a threshold or an epoch without touching dev."""
    order = list(range(len(documents)))
    random.Random(seed).shuffle(order)
    size = min(len(documents) - 1, max(1, round(fraction * len(documents))))
    held = set(order[:size])
    return ([d for k, d in enumerate(documents) if k not in held],
            [d for k, d in enumerate(documents) if k in held])


def _containments(containers: list[str], contained: list[str]) -> list[tuple[int, int]]:
    """(container position, contained position) for every long text of ``contained`` that
    lies strictly inside a text of ``containers`` (both normalised texts), one pair per
    container that holds it.

    One substring search per document over all container texts joined, resumed after each
    container found: linear in the corpus size per document, fast enough for corpora of
    thousands of abstracts.
    """
    joined = "\0".join(containers)
    starts, at = [], 0
    for text in containers:
        starts.append(at)
        at += len(text) + 1
    pairs = []
    for j, needle in enumerate(contained):
        if len(needle) < CONTAINMENT_MIN_CHARS:
            continue
        found = joined.find(needle)
        while found >= 0:
            i = bisect_right(starts, found) - 1
            if len(containers[i]) > len(needle):
                pairs.append((i, j))
            if i + 1 == len(containers):
                break
            found = joined.find(needle, starts[i + 1])
    return pairs


def check_leak(a: Sequence[Document], b: Sequence[Document]) -> LeakReport:
    """Documents of B that are also in A: by id, by normalised text, and by one text holding
    the other whole."""
    positions_a: dict[str, list[int]] = defaultdict(list)
    text_to_a: dict[str, list[int]] = defaultdict(list)
    for i, doc in enumerate(a):
        positions_a[doc.id].append(i)
        text_to_a[text_fingerprint(doc.text)].append(i)
    report = LeakReport(size_a=len(a), size_b=len(b))
    seen_b: set[str] = set()
    for j, doc in enumerate(b):
        if doc.id in positions_a:
            report.shared_ids.append(doc.id)
            report._mark(1, j, "id")
            for i in positions_a[doc.id]:
                report._mark(0, i, "id")
        fp = text_fingerprint(doc.text)
        if fp in text_to_a:
            report.shared_texts.append((a[text_to_a[fp][0]].id, doc.id))
            report._mark(1, j, "text")
            for i in text_to_a[fp]:
                report._mark(0, i, "text")
        if fp not in seen_b:
            seen_b.add(fp)
            report.leaked_texts_b += fp in text_to_a
    report.distinct_texts_b = len(seen_b)
    texts_a = [normalize_text(doc.text) for doc in a]
    texts_b = [normalize_text(doc.text) for doc in b]
    pairs = _containments(texts_a, texts_b) + [
        (i, j) for j, i in _containments(texts_b, texts_a)]
    for i, j in pairs:
        report.contained_texts.append((a[i].id, b[j].id))
        report._mark(0, i, "contained")
        report._mark(1, j, "contained")
    return report
