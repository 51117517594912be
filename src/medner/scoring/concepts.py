"""Normalization scores: how well predicted spans carry the gold concept IDs.

``concept-mention``   a prediction is right when span (strict), label and its set of IDs all
                      equal a gold mention's (mention-level, as TaggerOne reports).
``concept-document``  per document, the set of (label, concept ID) pairs (BioCreative V's
                      disease-normalization measure); a span's IDs each count.

Scored only when both sides carry IDs somewhere, as the relation scores are.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from medner.document import Span
from medner.scoring.pairing import Pairing
from medner.scoring.spans import pieces_of

CONCEPT_MODES: tuple[str, ...] = ("concept-mention", "concept-document")
NO_ID = frozenset({"", "-1"})


def _ids(span: Span) -> frozenset[str]:
    return frozenset(i for i in span.ids if i not in NO_ID)


def carries_ids(pairing: Pairing) -> bool:
    sides = ([gold for gold, _ in pairing.pairs],
             [pred for _, pred in pairing.pairs if pred is not None])
    return all(any(_ids(s) for doc in side for s in doc.spans) for side in sides)


def _mention_keys(spans: Sequence[Span]) -> Counter:
    """(label, pieces, IDs) per mention: a multiset, as strict span matching counts."""
    return Counter((s.label, pieces_of(s), _ids(s)) for s in spans)


def _document_keys(spans: Sequence[Span]) -> Counter:
    """(label, ID) once per document, however many mentions carry it."""
    return Counter({(s.label, i): 1 for s in spans for i in _ids(s)})


def concept_counts(pairing: Pairing, mode: str) -> tuple[np.ndarray, dict[str, list[int]]]:
    """Per-document ``[tp, fp, fn]`` (n_docs, 3) and per-label totals, as span modes give."""
    keys = _mention_keys if mode == "concept-mention" else _document_keys
    per_doc = np.zeros((len(pairing.pairs), 3), dtype=np.int64)
    per_label: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for row, (gold, pred) in zip(per_doc, pairing.pairs, strict=True):
        gold_keys, pred_keys = keys(gold.spans), keys(pred.spans if pred is not None else ())
        for column, found in enumerate((gold_keys & pred_keys, pred_keys - gold_keys,
                                        gold_keys - pred_keys)):
            for (label, *_), n in found.items():
                per_label[label][column] += n
                row[column] += n
    return per_doc, dict(per_label)


__all__ = ["CONCEPT_MODES", "carries_ids", "concept_counts"]
