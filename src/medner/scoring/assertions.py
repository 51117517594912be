"""Assertion scores: how well predicted spans say whether a finding is present, absent or
possible.

``assertion``           on the spans both sides share (strict match: same pieces and label),
                        per assertion value: tp = both say it, fp = only the prediction, fn =
                        only the gold; so micro F1 is the accuracy and macro F1 the mean of the
                        values' F1 (the literature's assertion-classification measure).
``strict+assertion``    end to end: a predicted span is right when its pieces, label and
                        assertion all equal a gold span's; per entity label.

A span without an assertion counts as ``present`` (corpora mark only the negated and
uncertain findings). Scored only when the predictions carry assertions somewhere and the
gold marks some finding as not present, so that a corpus without the annotation (BC5CDR)
is not scored as "everything present".
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from medner.document import PRESENT, Span
from medner.scoring.pairing import Pairing
from medner.scoring.spans import match_spans, pieces_of

ASSERTION_MODES: tuple[str, ...] = ("assertion", "strict+assertion")


def _value(span: Span) -> str:
    return span.assertion or PRESENT


def carries_assertions(pairing: Pairing) -> bool:
    predicted = any(s.assertion is not None for _, pred in pairing.pairs if pred is not None
                    for s in pred.spans)
    annotated = any(_value(s) != PRESENT for gold, _ in pairing.pairs for s in gold.spans)
    return predicted and annotated


def value_counts(gold: Sequence[Span], pred: Sequence[Span]) -> Counter:
    """(value, column) counts over the strictly matched span pairs of one document."""
    counts: Counter = Counter()
    for g, p in match_spans(gold, pred, "strict"):
        truth, guess = _value(gold[g]), _value(pred[p])
        if truth == guess:
            counts[(truth, 0)] += 1
        else:
            counts[(guess, 1)] += 1
            counts[(truth, 2)] += 1
    return counts


def _span_counts(gold: Sequence[Span], pred: Sequence[Span]) -> Counter:
    """(label, column) counts of spans matched on pieces, label and assertion."""
    def keys(spans: Sequence[Span]) -> Counter:
        return Counter((s.label, pieces_of(s), _value(s)) for s in spans)

    gold_keys, pred_keys = keys(gold), keys(pred)
    counts: Counter = Counter()
    for column, found in enumerate((gold_keys & pred_keys, pred_keys - gold_keys,
                                    gold_keys - pred_keys)):
        for (label, *_), n in found.items():
            counts[(label, column)] += n
    return counts


def assertion_counts(pairing: Pairing, mode: str) -> tuple[np.ndarray, dict[str, list[int]]]:
    """Per-document ``[tp, fp, fn]`` (n_docs, 3) and per-value (``assertion``) or per-label
    (``strict+assertion``) totals, as the span modes give."""
    count = value_counts if mode == "assertion" else _span_counts
    per_doc = np.zeros((len(pairing.pairs), 3), dtype=np.int64)
    per_label: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for row, (gold, pred) in zip(per_doc, pairing.pairs, strict=True):
        for (name, column), n in count(gold.spans, pred.spans if pred is not None else ()
                                       ).items():
            per_label[name][column] += n
            row[column] += n
    return per_doc, dict(per_label)


__all__ = ["ASSERTION_MODES", "assertion_counts", "carries_assertions", "value_counts"]
