"""The candidate pairs of a document: every (head concept, tail concept) pair its spans name.

A concept is a concept ID carried by at least one span of the head (or tail) label; its
mentions are those spans (a composite mention counts for each of its IDs). Spans without an
ID ("-1" or "" in PubTator) name no concept and are left out. Pure Python, no torch.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from medner.document import Document
from medner.io.pubtator import TITLE_LENGTH
from medner.sentences import sentence_starts

NO_ID = frozenset({"", "-1"})

FEATURES: tuple[str, ...] = ("same_sentence", "sentence_distance", "head_in_title",
                             "tail_in_title", "head_mentions", "tail_mentions")
"""The cheap pair features beside the encoder's concept embeddings, and why each helps:

- ``same_sentence``, ``sentence_distance`` (log1p of the closest sentence gap): most CID
  pairs are stated inside one sentence, and the encoder sees no sentence boundaries
  explicitly;
- ``head_in_title``, ``tail_in_title``: the title names the abstract's subject, and a
  chemical or disease in it takes part in most of the document's relations;
- ``head_mentions``, ``tail_mentions`` (log1p of the count): concepts repeated throughout an
  abstract are its topic, incidental ones are mentioned once.
"""


@dataclass(frozen=True)
class Mention:
    start: int
    end: int
    sentence: int
    in_title: bool


@dataclass(frozen=True)
class DocumentCandidates:
    """One document's concepts and candidate pairs (heads and tails in a fixed order)."""

    document: Document
    heads: dict[str, tuple[Mention, ...]]
    """Head concept ID -> its mentions, in order of first mention."""
    tails: dict[str, tuple[Mention, ...]]
    pairs: tuple[tuple[str, str], ...]
    """(head ID, tail ID), every head with every tail."""
    features: tuple[tuple[float, ...], ...]
    """One row of ``FEATURES`` values per pair."""
    contexts: tuple[tuple[tuple[Mention, Mention], ...], ...]
    """Per pair, its closest (head mention, tail mention) pairs: those the fewest sentences
    apart. The text between them is where a relation is usually stated ("X-induced Y",
    "Y after X"), so the network reads the pair's context there."""

    def mentions(self) -> list[Mention]:
        """Every distinct mention of the document's concepts, in text order."""
        found = {m for group in (*self.heads.values(), *self.tails.values()) for m in group}
        return sorted(found, key=lambda m: (m.start, m.end))


def title_end(document: Document, starts: Sequence[int]) -> int:
    """Where the title ends: the PubTator title length, else the end of the first sentence."""
    length = document.metadata.get(TITLE_LENGTH)
    if isinstance(length, int) and length > 0:
        return length
    return starts[1] if len(starts) > 1 else len(document.text)


def concept_mentions(document: Document, label: str, starts: Sequence[int], title: int
                     ) -> dict[str, tuple[Mention, ...]]:
    """Concept ID -> mentions of that ID among the spans labelled ``label``."""
    found: dict[str, list[Mention]] = {}
    for span in sorted(document.spans, key=lambda s: (s.start, s.end)):
        if span.label != label:
            continue
        mention = Mention(span.start, span.end, bisect_right(starts, span.start) - 1,
                          span.start < title)
        for concept in dict.fromkeys(span.ids):
            if concept not in NO_ID and mention not in found.setdefault(concept, []):
                found[concept].append(mention)
    return {concept: tuple(mentions) for concept, mentions in found.items()}


def closest_mentions(heads: Sequence[Mention], tails: Sequence[Mention]
                     ) -> tuple[tuple[Mention, Mention], ...]:
    distance = min(abs(h.sentence - t.sentence) for h in heads for t in tails)
    return tuple((h, t) for h in heads for t in tails if abs(h.sentence - t.sentence) == distance)


def pair_features(heads: Sequence[Mention], tails: Sequence[Mention]) -> tuple[float, ...]:
    distance = min(abs(h.sentence - t.sentence) for h in heads for t in tails)
    return (float(distance == 0), math.log1p(distance),
            float(any(m.in_title for m in heads)), float(any(m.in_title for m in tails)),
            math.log1p(len(heads)), math.log1p(len(tails)))


def document_candidates(document: Document, head_label: str, tail_label: str
                        ) -> DocumentCandidates:
    starts = sentence_starts(document.text)
    title = title_end(document, starts)
    heads = concept_mentions(document, head_label, starts, title)
    tails = concept_mentions(document, tail_label, starts, title)
    pairs = tuple((h, t) for h in heads for t in tails)
    features = tuple(pair_features(heads[h], tails[t]) for h, t in pairs)
    contexts = tuple(closest_mentions(heads[h], tails[t]) for h, t in pairs)
    return DocumentCandidates(document, heads, tails, pairs, features, contexts)


def gold_pairs(document: Document, label: str) -> set[tuple[str, str]]:
    """The document's concept relations labelled ``label``, as (head, tail) pairs."""
    return {(r.head, r.tail) for r in document.relations
            if r.label == label and r.args == "concept"}
