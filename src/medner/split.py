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

    @property
    def leaks(self) -> bool:
        return bool(self.shared_ids or self.shared_texts or self.contained_texts)

    def leaked_ids(self, side: int) -> set[str]:
        """Ids of the documents of A (``side`` 0) or B (1) found by any of the checks."""
        return set(self.shared_ids) | {pair[side] for pair in
                                       self.shared_texts + self.contained_texts}

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


CONTAINMENT_MIN_CHARS = 200
"""Shorter texts (a sentence, a heading) are inside other documents by chance, not by reuse."""


def _containments(containers: list[tuple[str, str]], contained: list[tuple[str, str]]
                  ) -> list[tuple[str, str]]:
    """(container id, contained id) where a long text of ``contained`` lies strictly inside
    one of ``containers``; both are (id, normalised text) lists.

    One substring search per document over all container texts joined: linear in the
    corpus size per document, fast enough for corpora of thousands of abstracts.
    """
    joined = "\0".join(text for _, text in containers)
    starts, at = [], 0
    for _, text in containers:
        starts.append(at)
        at += len(text) + 1
    pairs = []
    for doc_id, needle in contained:
        if len(needle) < CONTAINMENT_MIN_CHARS:
            continue
        found = joined.find(needle)
        while found >= 0:
            container_id, text = containers[bisect_right(starts, found) - 1]
            if len(text) > len(needle):
                pairs.append((container_id, doc_id))
                break
            found = joined.find(needle, found + 1)
    return pairs


def check_leak(a: Sequence[Document], b: Sequence[Document]) -> LeakReport:
    """Documents of B that are also in A: by id, by normalised text, and by one text holding
    the other whole."""
    ids_a = {doc.id for doc in a}
    text_to_id_a: dict[str, str] = {}
    for doc in a:
        text_to_id_a.setdefault(text_fingerprint(doc.text), doc.id)
    report = LeakReport(size_a=len(a), size_b=len(b))
    seen_b: set[str] = set()
    for doc in b:
        if doc.id in ids_a:
            report.shared_ids.append(doc.id)
        fp = text_fingerprint(doc.text)
        if fp in text_to_id_a:
            report.shared_texts.append((text_to_id_a[fp], doc.id))
        if fp not in seen_b:
            seen_b.add(fp)
            report.leaked_texts_b += fp in text_to_id_a
    report.distinct_texts_b = len(seen_b)
    texts_a = [(doc.id, normalize_text(doc.text)) for doc in a]
    texts_b = [(doc.id, normalize_text(doc.text)) for doc in b]
    report.contained_texts = _containments(texts_a, texts_b) + [
        (id_a, id_b) for id_b, id_a in _containments(texts_b, texts_a)]
    return report
