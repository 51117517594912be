"""The one path from documents to predicted Documents for every prompted backend.

    documents -> pieces -> prompts -> answers -> parsed strings -> spans, relations -> Documents

1. ``plan_prompts`` cuts each document into *pieces* (``text_pieces``: at sentence ends, so
   that every prompt fits the backend's limit; a backend without a limit asks about the whole
   text) and plans one ``Prompt`` per piece and template task, in document, piece, task order.
2. The backend answers each prompt: the LLM backend generates locally (or takes saved
   answers), the hosted backend asks a provider. That is all a backend does on this path.
3. ``read_answers`` parses each answer with its task's parser, grounds the strings of all the
   tasks of a piece in that piece's text (``ground_document``: every occurrence; a string
   not in the text is a *hallucination*, dropped and counted), links each relation task's
   pairs as its ``RelationType``, merges the pieces back into their document and counts
   what was dropped, per document (``metadata[key]``) and in all (``AnswerCounts.notes``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from medner.abbreviations import propagate_abbreviations
from medner.backends.prompted.parse import Parsed
from medner.backends.prompted.prompts import RelationType, Task
from medner.core.tally import Tally
from medner.document import Document, Relation, Span, normalize_text
from medner.errors import MednerError
from medner.ground import ground, ground_all
from medner.labels import LabelSchema

Bounds = tuple[int, int]
"""(start, end) of a piece in its document's text."""

# ---------------------------------------------------------------------------- pieces


def text_pieces(text: str, measure: Callable[[str], int], limit: int) -> list[Bounds]:
    """Pieces of ``text`` with ``measure(piece) <= limit``, cut at sentence ends, else at
    spaces; the whitespace between two pieces belongs to neither."""
    pieces = _cut(text, measure, limit)
    if len(pieces) == 1:
        return pieces
    trimmed = []
    for a, b in pieces:
        piece = text[a:b]
        a2 = a + len(piece) - len(piece.lstrip())
        b2 = b - (len(piece) - len(piece.rstrip()))
        if a2 < b2:
            trimmed.append((a2, b2))
    return trimmed


def _cut(text: str, measure: Callable[[str], int], limit: int) -> list[Bounds]:
    """Halve ``text`` at the sentence end (else space) nearest its middle until pieces fit."""
    if not text or measure(text) <= limit:
        return [(0, len(text))]
    inside = [c for c in (m.end() for m in re.finditer(r"[.!?]\s+", text)) if 0 < c < len(text)]
    if not inside:
        inside = [c for c in (m.end() for m in re.finditer(r"\s+", text)) if 0 < c < len(text)]
    if not inside:
        if measure("") > limit:
            raise MednerError(f"the prompt template alone takes {measure('')} tokens, more than "
                              f"max_prompt_tokens={limit}; raise max_prompt_tokens")
        raise MednerError(f"a piece of {len(text)} characters without a space does not fit "
                          f"max_prompt_tokens={limit}; raise max_prompt_tokens")
    middle = min(inside, key=lambda c: abs(c - len(text) / 2))
    left = _cut(text[:middle], measure, limit)
    right = _cut(text[middle:], measure, limit)
    return left + [(a + middle, b + middle) for a, b in right]


# ---------------------------------------------------------------------------- prompts


@dataclass(frozen=True)
class Prompt:
    """One question: a task asked about one piece of one document."""

    document: int
    """The document's index in the batch."""
    piece: int
    """The piece's index in its document."""
    task: Task
    text: str
    """The piece's text, which the prompt quotes."""


@dataclass
class PromptPlan:
    documents: list[Document]
    pieces: list[list[Bounds]]
    """Each document's pieces."""
    prompts: list[Prompt]
    cut: bool
    """Whether documents were cut to a limit (then each one's counts say into how many
    pieces), or asked about whole."""

    @property
    def cut_documents(self) -> int:
        """Documents asked about in more than one piece."""
        return sum(1 for pieces in self.pieces if len(pieces) > 1)


def plan_prompts(documents: Iterable[Document], tasks: Sequence[Task],
                 pieces: Callable[[str], list[Bounds]] | None = None) -> PromptPlan:
    """One prompt per piece of each document and task; ``pieces(text)`` cuts a text (default:
    the whole text is one piece)."""
    documents = list(documents)
    bounds = [pieces(d.text) if pieces else [(0, len(d.text))] for d in documents]
    prompts = [Prompt(i, p, task, doc.text[start:end])
               for i, (doc, doc_bounds) in enumerate(zip(documents, bounds, strict=True))
               for p, (start, end) in enumerate(doc_bounds) for task in tasks]
    return PromptPlan(documents, bounds, prompts, cut=pieces is not None)


# ---------------------------------------------------------------------------- counts


@dataclass
class AnswerCounts(Tally):
    """What reading answers dropped or added, for one piece, one document or a whole call."""

    hallucinations: int = 0
    """Entity strings (distinct per piece and label) not found in the text."""
    hallucinated_relations: int = 0
    """Relation pairs dropped because a side is not in the text."""
    relation_entities_added: int = 0
    """Relation sides found in the text but not among the predicted entities (added)."""
    bad_lines: int = 0
    """Answer lines that are not what the template asks for."""
    unknown_labels: int = 0
    """Items with a label outside the schema."""

    def per_document(self) -> dict[str, int]:
        """The counts each predicted Document carries in its metadata."""
        return {"hallucinations": self.hallucinations,
                "hallucinated_relations": self.hallucinated_relations,
                "bad_lines": self.bad_lines, "unknown_labels": self.unknown_labels}

    def notes(self) -> dict[str, int]:
        """Report notes; both backends use these names, so their reports read alike."""
        return {f"llm_{name}": value for name, value in self.counts().items()}


# ---------------------------------------------------------------------------- answers


def read_answers(plan: PromptPlan, answers: Sequence[str], schema: LabelSchema, *,
                 key: str, abbreviations: bool = False) -> tuple[list[Document], AnswerCounts]:
    """Copies of the plan's documents with the answers' spans and relations, one answer per
    prompt, and the counts in all. Each document's counts go to ``metadata[key]``, with the
    number of its pieces as ``"chunks"`` when the plan cut documents; ``abbreviations`` tags
    the short forms of grounded long forms too."""
    if len(answers) != len(plan.prompts):
        raise MednerError(f"{len(answers)} answers given for {len(plan.prompts)} prompts")
    parsed: dict[tuple[int, int], list[tuple[Task, Parsed]]] = {}
    for prompt, answer in zip(plan.prompts, answers, strict=True):
        parsed.setdefault((prompt.document, prompt.piece), []).append(
            (prompt.task, prompt.task.parse(answer, schema)))
    out, total = [], AnswerCounts()
    for i, (doc, bounds) in enumerate(zip(plan.documents, plan.pieces, strict=True)):
        counts, grounded = AnswerCounts(), []
        for p, (start, end) in enumerate(bounds):
            # Each piece is grounded in its own text; offsets are shifted when merging.
            piece, piece_counts = _read_piece(Document(doc.id, doc.text[start:end]),
                                              parsed.get((i, p), []))
            grounded.append((start, piece))
            counts.add(piece_counts)
        total.add(counts)
        predicted = merge_pieces(doc, grounded)
        if abbreviations:
            predicted = propagate_abbreviations(predicted)
        # "chunks" is the saved name of the piece count
        doc_counts = counts.per_document() | ({"chunks": len(bounds)} if plan.cut else {})
        out.append(replace(predicted, metadata={**doc.metadata, key: doc_counts}))
    return out, total


def _read_piece(piece: Document,
                results: Sequence[tuple[Task, Parsed]]) -> tuple[Document, AnswerCounts]:
    """The piece with the spans and relations of all its tasks' answers, grounded together."""
    entities = [item for _, parsed in results for item in parsed.entities]
    relations: dict[RelationType, list[tuple[str, str]]] = {}
    for task, parsed in results:
        if task.relation is not None:
            relations.setdefault(task.relation, []).extend(parsed.pairs)
    grounded, counts = ground_document(piece, entities, relations)
    counts.bad_lines = sum(parsed.bad_lines for _, parsed in results)
    counts.unknown_labels = sum(parsed.unknown_labels for _, parsed in results)
    return grounded, counts


def merge_pieces(doc: Document, grounded: Sequence[tuple[int, Document]]) -> Document:
    """``doc`` with the spans and relations of its grounded pieces, each given with its start;
    spans are renumbered ``T1``, ``T2``, ... in text order."""
    if len(grounded) == 1 and grounded[0][0] == 0:
        g = grounded[0][1]
        return Document(doc.id, doc.text, g.spans, g.relations, dict(doc.metadata))
    spans, relations = [], []
    for n, (shift, g) in enumerate(grounded):
        ids = {}
        for s in g.spans:
            new_id = f"C{n}{s.id}"
            ids[s.id] = new_id
            spans.append(Span(s.start + shift, s.end + shift, s.label, s.text, id=new_id))
        relations += [Relation(r.label, ids[r.head], ids[r.tail], args="span")
                      for r in g.relations]
    ordered = sorted(spans, key=lambda s: (s.start, s.end, s.label))
    rename = {s.id: f"T{k}" for k, s in enumerate(ordered, start=1)}
    spans = [replace(s, id=rename[s.id]) for s in ordered]
    relations = list(dict.fromkeys(Relation(r.label, rename[r.head], rename[r.tail], args="span")
                                   for r in relations))
    return Document(doc.id, doc.text, tuple(spans), tuple(relations), dict(doc.metadata))


# ---------------------------------------------------------------------------- grounding

SpanKey = tuple[int, int, str]
"""(start, end, label) of a grounded span."""


@dataclass
class _Grounding:
    """The spans found so far in one text, and what grounding counted."""

    text: str
    keys: set[SpanKey] = field(default_factory=set)
    counts: AnswerCounts = field(default_factory=AnswerCounts)


def ground_document(doc: Document, entities: Sequence[tuple[str, str]],
                    relations: Mapping[RelationType, Sequence[tuple[str, str]]] | None = None,
                    ) -> tuple[Document, AnswerCounts]:
    """A copy of ``doc`` with spans for every occurrence of each (text, label) entity string,
    and span relations for the (head, tail) pairs of each relation type whose two sides are
    in the text. Strings are grounded with ``medner.ground`` (word-boundary aware, any
    whitespace run matches any whitespace run).

    A pair side is linked to the first predicted span of its label with that text
    (case-insensitive, whitespace-normalised); a side found in the text but not predicted
    as an entity becomes a span at its first occurrence (counted).
    """
    found = _Grounding(doc.text)
    by_label: dict[str, list[str]] = {}
    for item, label in entities:
        by_label.setdefault(label, []).append(item)
    for label, items in by_label.items():
        for occurrences in ground_all(items, doc.text).values():
            found.counts.hallucinations += not occurrences
            found.keys.update((a, b, label) for a, b in occurrences)
    links = [(relation.label, head, tail)
             for relation, pairs in (relations or {}).items()
             for head, tail in _link_pairs(found, relation, pairs)]
    ordered = sorted(found.keys)
    ids = {key: f"T{n}" for n, key in enumerate(ordered, start=1)}
    spans = tuple(Span(a, b, label, doc.text[a:b], id=ids[(a, b, label)])
                  for a, b, label in ordered)
    linked = tuple(dict.fromkeys(Relation(label, ids[h], ids[t], args="span")
                                 for label, h, t in links))
    return Document(doc.id, doc.text, spans, linked, dict(doc.metadata)), found.counts


def _link_pairs(found: _Grounding, relation: RelationType,
                pairs: Sequence[tuple[str, str]]) -> list[tuple[SpanKey, SpanKey]]:
    """The (head, tail) spans of the distinct pairs whose two sides are in the text."""
    links = []
    for head, tail in dict.fromkeys(pairs):
        sides = [_side(found, head, relation.head), _side(found, tail, relation.tail)]
        if sides[0] is None or sides[1] is None:
            found.counts.hallucinated_relations += 1
        else:
            links.append((sides[0], sides[1]))
    return links


def _side(found: _Grounding, item: str, label: str) -> SpanKey | None:
    """The span a pair side links to: a predicted one, else its first occurrence (added)."""
    wanted = normalize_text(item)
    match = sorted(k for k in found.keys
                   if k[2] == label and normalize_text(found.text[k[0]:k[1]]) == wanted)
    if match:
        return match[0]
    occurrences = ground(item, found.text)
    if not occurrences:
        return None
    key = (*occurrences[0], label)
    found.keys.add(key)
    found.counts.relation_entities_added += 1
    return key


__all__ = ["AnswerCounts", "Prompt", "PromptPlan", "ground_document", "merge_pieces",
           "plan_prompts", "read_answers", "text_pieces"]
