"""Document-level relation scoring on sets of ``(label, head, tail)``.

Two bases, chosen once for a whole evaluation so that every document is scored alike:

``concept-id``      head and tail are concept IDs, compared as given. This is the BC5CDR
                    CID measure: per document, the set of (chemical ID, disease ID) pairs.
``surface-string``  head and tail are reduced to normalised surface strings (NFKC,
                    casefold, collapsed whitespace: ``medner.document.normalize_text``).

``concept-id`` is used when every relation on both sides has ``args="concept"`` and each
side that has relations really uses IDs, i.e. at least one of its heads/tails is an ID
carried by a span of that document (gold or predicted). An LLM that writes names into
head/tail therefore gets ``surface-string``. One stray unknown ID does not flip the basis.

Surface strings: a span argument is the text of the span it names. A concept argument is
the text of the first mention of that ID (gold mentions first, then the predicted
document's), or the value itself if no mention carries it (a name written by an LLM).
Finally a string that is the text of a gold mention of exactly one concept ID is replaced
by that concept's first-mention text, so "ASA" and "aspirin" count as the same chemical
when the gold says both are D001241 in that document.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from medner.document import Document, Relation, Span, normalize_text
from medner.errors import ConfigError, MednerError
from medner.scoring.pairing import Pairing

BASES: tuple[str, ...] = ("concept-id", "surface-string")

_NO_ID = {"", "-1"}  # PubTator writes -1 for "no concept"

Triple = tuple[str, str, str]


def has_relations(pairings: Sequence[Pairing]) -> bool:
    return any(
        doc is not None and doc.relations for p in pairings for pair in p.pairs for doc in pair
    )


def choose_basis(pairings: Sequence[Pairing], basis: str | None = None) -> str:
    """The basis for these gold/prediction pairings (all share the same gold)."""
    if basis is not None:
        if basis not in BASES:
            raise ConfigError(f"unknown relation basis {basis!r}; choose one of {', '.join(BASES)}")
        return basis
    sides: list[list[tuple[Document, Document | None]]] = [
        [(gold, gold) for gold, _ in pairings[0].pairs]
    ]
    sides += [[(gold, pred) for gold, pred in p.pairs] for p in pairings]
    for side in sides:
        used = uses_ids = False
        for gold, doc in side:
            if doc is None or not doc.relations:
                continue
            if any(r.args != "concept" for r in doc.relations):
                return "surface-string"
            used = True
            known = _span_ids(gold) | _span_ids(doc)
            uses_ids = uses_ids or any(r.head in known or r.tail in known for r in doc.relations)
        if used and not uses_ids:
            return "surface-string"
    return "concept-id"


def relation_counts(pairing: Pairing, basis: str) -> tuple[np.ndarray, dict[str, list[int]]]:
    """Per-document ``[tp, fp, fn]`` (shape ``(n_docs, 3)``) and per-label totals."""
    per_doc = np.zeros((len(pairing.pairs), 3), dtype=np.int64)
    per_label: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for i, (gold, pred) in enumerate(pairing.pairs):
        if not gold.relations and not (pred and pred.relations):
            continue
        if basis == "concept-id":
            gold_set = {(r.label, r.head, r.tail) for r in gold.relations}
            pred_set = {(r.label, r.head, r.tail) for r in pred.relations} if pred else set()
        else:
            resolver = _SurfaceResolver(gold)
            gold_set = {resolver.triple(r, gold, "gold") for r in gold.relations}
            pred_set = (
                {resolver.triple(r, pred, "predicted") for r in pred.relations} if pred else set()
            )
        for label, _, _ in gold_set & pred_set:
            per_label[label][0] += 1
        for label, _, _ in pred_set - gold_set:
            per_label[label][1] += 1
        for label, _, _ in gold_set - pred_set:
            per_label[label][2] += 1
        hits = len(gold_set & pred_set)
        per_doc[i] = (hits, len(pred_set) - hits, len(gold_set) - hits)
    return per_doc, dict(per_label)


def _span_ids(doc: Document) -> set[str]:
    return {cid for span in doc.spans for cid in span.ids if cid not in _NO_ID}


def _first_mentions(doc: Document) -> dict[str, str]:
    """Concept ID -> normalised text of its first mention; single-ID mentions win over
    composite ones ("breast and ovarian cancer" is a poor name for either)."""
    best: dict[str, tuple[int, int, int, str]] = {}
    for span in doc.spans:
        for cid in span.ids:
            if cid in _NO_ID:
                continue
            rank = (int(len(span.ids) > 1), span.start, span.end, normalize_text(span.text))
            if cid not in best or rank < best[cid]:
                best[cid] = rank
    return {cid: rank[3] for cid, rank in best.items()}


class _SurfaceResolver:
    """Turns relations of one document (gold or predicted) into surface-string triples."""

    def __init__(self, gold: Document) -> None:
        self.gold = gold
        self.gold_names = _first_mentions(gold)
        owners: dict[str, set[str]] = defaultdict(set)
        for span in gold.spans:
            for cid in span.ids:
                if cid not in _NO_ID:
                    owners[normalize_text(span.text)].add(cid)
        # Only unambiguous aliases are merged; an ambiguous string stays itself on both sides.
        self.alias = {
            text: self.gold_names[next(iter(cids))]
            for text, cids in owners.items()
            if len(cids) == 1
        }
        self._side_names: dict[int, dict[str, str]] = {}
        self._side_spans: dict[int, dict[str, Span]] = {}

    def triple(self, relation: Relation, doc: Document, side: str) -> Triple:
        return (
            relation.label,
            self._endpoint(relation, relation.head, doc, side),
            self._endpoint(relation, relation.tail, doc, side),
        )

    def _endpoint(self, relation: Relation, value: str, doc: Document, side: str) -> str:
        if relation.args == "span":
            spans = self._side_spans.setdefault(id(doc), doc.span_by_id())
            span = spans.get(value)
            if span is None:
                rid = f" {relation.id}" if relation.id else ""
                raise MednerError(
                    f"document {doc.id!r}: {side} relation{rid} ({relation.label}) names span "
                    f"{value!r}, which is not among the document's span ids"
                )
            text = normalize_text(span.text)
        else:
            names = self._side_names.setdefault(id(doc), _first_mentions(doc))
            text = self.gold_names.get(value) or names.get(value) or normalize_text(value)
        return self.alias.get(text, text)
