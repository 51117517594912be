"""Concept linking: give each predicted span the concept IDs of its name.

Order per span, first that answers wins: the span's text under the exact, loose and
word-order keys; for an abbreviation defined in the document ("... cyclosporine (CsA)"),
the same keys on its long form; then the nearest indexed name in embedding space, kept when
its cosine similarity reaches ``threshold`` and its numbers do not contradict the span's.
Last, a short form defined in the document takes the IDs of the linked mention inside its
long form where there is one. A span left unlinked keeps ``ids == ()``. Spans that already
carry IDs (gold spans) are left as they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

from medner.abbreviations import Abbreviation, find_abbreviations
from medner.document import Document, Span
from medner.linking.embed import NameEmbedder
from medner.linking.index import ConceptIndex
from medner.linking.names import exact_key, numbers_agree

MATCH_SCORES = {"exact": 1.0, "loose": 0.95, "word-order": 0.9}
"""``Span.link_score`` of a string match, by key (an embedding match scores its cosine)."""
ABBREVIATION_FACTOR = 0.98
"""A match through an abbreviation's long form is as good as the long form's, a little less."""
DEFAULT_THRESHOLD = 0.8
EMBEDDING_CANDIDATES = 5
"""Nearest names looked at per span: the nearest may be refused for its numbers."""


class Linker:
    def __init__(self, index: ConceptIndex, embedder: NameEmbedder | None = None, *,
                 threshold: float = DEFAULT_THRESHOLD, device: str | None = None) -> None:
        self.index = index
        self._embedder = embedder
        self.threshold = threshold
        self.device = device
        """Where the name embedder runs when it is loaded here (auto, cpu, cuda, ...)."""

    @property
    def embedder(self) -> NameEmbedder:
        """Loaded on first use: documents whose mentions all match by name never need it."""
        if self._embedder is None:
            self._embedder = NameEmbedder(self.index.meta["embedding_model"],
                                          device=self.device)
        return self._embedder

    @classmethod
    def load(cls, folder: str | Path, *, threshold: float | None = None,
             device: str | None = None) -> Linker:
        index = ConceptIndex.load(folder)
        return cls(index, threshold=threshold if threshold is not None else float(
            index.meta.get("threshold", DEFAULT_THRESHOLD)), device=device)

    def link(self, documents: Iterable[Document]) -> list[Document]:
        documents = list(documents)
        spans = [list(doc.spans) for doc in documents]
        abbreviations = [find_abbreviations(doc.text) for doc in documents]
        unmatched: list[tuple[int, int, str]] = []  # (document, span, name to embed)
        for d, doc in enumerate(documents):
            long_forms = {doc.text[a.short[0]:a.short[1]]: doc.text[a.long[0]:a.long[1]]
                          for a in abbreviations[d]}
            for s, span in enumerate(spans[d]):
                if span.ids:
                    continue
                linked = self._by_string(span.text, span.label)
                name = long_forms.get(span.text, span.text)
                if linked is None and name != span.text:
                    found = self._by_string(name, span.label)
                    linked = None if found is None else (found[0],
                                                         found[1] * ABBREVIATION_FACTOR)
                if linked is not None:
                    spans[d][s] = replace(span, ids=linked[0], link_score=linked[1])
                else:
                    unmatched.append((d, s, name))
        if unmatched:
            vectors = self.embedder([name for _, _, name in unmatched])
            labels = [spans[d][s].label for d, s, _ in unmatched]
            nearest = self.index.nearest(vectors, labels, k=EMBEDDING_CANDIDATES)
            for (d, s, name), candidates in zip(unmatched, nearest, strict=True):
                hit = next((c for c in candidates if c[1] >= self.threshold
                            and numbers_agree(name, c[2])), None)
                if hit is not None:
                    spans[d][s] = replace(spans[d][s], ids=hit[0], link_score=round(hit[1], 4))
        for d, doc in enumerate(documents):
            spans[d] = short_forms_as_long(doc, spans[d], abbreviations[d])
        return [self._with_names(self._relations_on_ids(doc.with_spans(doc_spans)))
                for doc, doc_spans in zip(documents, spans, strict=True)]

    def _relations_on_ids(self, doc: Document) -> Document:
        """Relations restated on concept IDs. A concept relation whose sides are names (an
        LLM writes "cocaine") takes the IDs linked to a span of that name in the document,
        else the index's own match for the name. A span relation (an LLM's named pair,
        grounded on two of its spans) takes its spans' IDs and becomes a concept relation.
        A side that links to nothing keeps its name (the span's text); a composite side gives
        one relation per ID. A span relation naming a span the document lacks is kept."""
        if not doc.relations:
            return doc
        known = {i for span in doc.spans for i in span.ids}
        by_name: dict[str, tuple[str, ...]] = {}
        for span in doc.spans:
            if span.ids:
                by_name.setdefault(exact_key(span.text), span.ids)
        by_span_id = doc.span_by_id()

        def ids_of(side: str) -> tuple[str, ...]:
            if side in known:
                return (side,)
            if exact_key(side) in by_name:
                return by_name[exact_key(side)]
            found = self.index.lookup(side, None)
            return found[0] if found else (side,)

        def sides(relation) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
            if relation.args == "concept":
                return ids_of(relation.head), ids_of(relation.tail)
            head, tail = by_span_id.get(relation.head), by_span_id.get(relation.tail)
            if head is None or tail is None:
                return None
            return head.ids or (head.text,), tail.ids or (tail.text,)

        relations = []
        for relation in doc.relations:
            named = sides(relation)
            if named is None:
                relations.append(relation)
                continue
            relations += [replace(relation, head=head, tail=tail, args="concept", id=None)
                          for head in named[0] for tail in named[1]]
        return replace(doc, relations=tuple(dict.fromkeys(relations)))

    def _by_string(self, name: str, label: str) -> tuple[tuple[str, ...], float] | None:
        found = self.index.lookup(name, label)
        return None if found is None else (found[0], MATCH_SCORES[found[1]])

    def _with_names(self, doc: Document) -> Document:
        """The preferred name of every concept the document's spans carry, in
        ``metadata["concepts"]`` (JSON output, brat ``N`` lines, the web page)."""
        names = {c: self.index.name_of(c) for s in doc.spans for c in s.ids}
        known = {c: n for c, n in sorted(names.items()) if n is not None}
        return replace(doc, metadata={**doc.metadata, "concepts": known}) if known else doc


def short_forms_as_long(document: Document, spans: list[Span],
                        abbreviations: Sequence[Abbreviation]) -> list[Span]:
    """Each mention of a short form defined in the document ("ribavirin-induced hemolytic
    anemia (RIHA)") takes the IDs of the linked mention of its label inside the long form,
    the last one where there are several (English puts the head of a phrase last). A short
    form means its long form in the document that defines it, whatever else the same letters
    name in the vocabulary, and the long form as a whole often matches no name while the
    mention inside it does."""
    meaning: dict[tuple[str, str], Span] = {}
    by_end = sorted(spans, key=lambda s: s.end)
    for abbreviation in abbreviations:
        start, end = abbreviation.long
        short = document.text[abbreviation.short[0]:abbreviation.short[1]]
        for span in by_end:
            if span.ids and start <= span.start and span.end <= end:
                meaning[(short, span.label)] = span
    if not meaning:
        return spans
    out = []
    for span, given in zip(spans, document.spans, strict=True):
        long = meaning.get((span.text, span.label))
        if long is not None and not given.ids:  # IDs the document came with stay
            span = replace(span, ids=long.ids,
                           link_score=round((long.link_score or 1.0) * ABBREVIATION_FACTOR, 4))
        out.append(span)
    return out


__all__ = ["DEFAULT_THRESHOLD", "Linker", "short_forms_as_long"]
