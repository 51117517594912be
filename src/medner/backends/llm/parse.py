"""Parse generated answers into strings, then ground the strings to character offsets.

Parsing never raises on model output: a line that is not what the template asks for is
counted in ``bad_lines`` and skipped, as are items with a label outside the schema. Grounding
uses ``medner.ground`` (every occurrence, word-boundary aware, any whitespace run matches
any whitespace run); a string not found in the text is a *hallucination*: dropped, counted.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from medner.document import Document, Relation, Span, normalize_text
from medner.ground import ground, ground_all


@dataclass
class Parsed:
    entities: list[tuple[str, str]] = field(default_factory=list)
    """(text, label) in answer order."""
    pairs: list[tuple[str, str]] = field(default_factory=list)
    """(chemical text, disease text) in answer order."""
    bad_lines: int = 0
    unknown_labels: int = 0


_OBJECT = re.compile(r"\{[^{}]*\}")


def parse_json_lines(output: str, keys: tuple[str, str], *,
                     labels: Sequence[str] | None = None) -> Parsed:
    """Objects with the two string ``keys`` from a JSON list written one object per line.

    The whole answer is tried as JSON first; if that fails (cut off, a stray comma, prose),
    each line is read on its own: brackets and trailing commas are ignored, every other
    line that is not a JSON object with both keys counts as a bad line. With ``labels``,
    the second key is a label and objects with other labels are counted and dropped.
    """
    result = Parsed()
    objects: list[object] = []
    try:
        whole = json.loads(output)
        objects = whole if isinstance(whole, list) else [whole]
        candidates_from_lines = False
    except json.JSONDecodeError:
        candidates_from_lines = True
    if candidates_from_lines:
        for raw in output.splitlines():
            line = raw.strip().rstrip(",").strip()
            if line in ("", "[", "]", "[]"):
                continue
            line = line.lstrip("[").rstrip("]").strip().rstrip(",")
            found = _OBJECT.findall(line)
            if not found:
                result.bad_lines += 1
                continue
            for chunk in found:
                try:
                    objects.append(json.loads(chunk))
                except json.JSONDecodeError:
                    result.bad_lines += 1
    first, second = keys
    for obj in objects:
        if not (isinstance(obj, dict) and isinstance(obj.get(first), str)
                and isinstance(obj.get(second), str)):
            result.bad_lines += 1
            continue
        a, b = obj[first].strip(), obj[second].strip()
        if not a or not b:
            result.bad_lines += 1
            continue
        if labels is not None:
            if b not in labels:
                result.unknown_labels += 1
                continue
            result.entities.append((a, b))
        else:
            result.pairs.append((a, b))
    return result


NO_ENTITIES = "None"
"""The ``entities-lines`` answer for a text without entities."""


def parse_labelled_lines(output: str, labels: Sequence[str]) -> Parsed:
    """``Label: text`` lines; ``None`` alone is an empty answer.

    A line without a colon or with nothing after it is a bad line; a label outside
    ``labels`` is counted and its line dropped. The text is everything after the first
    colon, so mentions that contain a colon survive.
    """
    result = Parsed()
    for raw in output.splitlines():
        line = raw.strip()
        if not line or line == NO_ENTITIES:
            continue
        label, colon, item = line.partition(":")
        label, item = label.strip(), item.strip()
        if not colon or not label or not item:
            result.bad_lines += 1
        elif label not in labels:
            result.unknown_labels += 1
        else:
            result.entities.append((item, label))
    return result


def parse_list(output: str, *, label: str | None = None,
               pair_separator: tuple[str, str] | None = None) -> Parsed:
    """``- item`` lines (the tutorial format); ``- `` alone is an empty list.

    With ``pair_separator=(prefix, sep)`` items read ``<prefix>head<sep>tail``.
    """
    result = Parsed()
    for raw in output.splitlines():
        line = raw.strip()
        if not line:
            continue
        if not line.startswith("-"):
            result.bad_lines += 1
            continue
        item = line[1:].strip()
        if not item:
            continue
        if pair_separator is None:
            assert label is not None
            result.entities.append((item, label))
            continue
        prefix, sep = pair_separator
        if not item.startswith(prefix.strip()) or sep.strip() not in item:
            result.bad_lines += 1
            continue
        head, _, tail = item[len(prefix.strip()):].partition(sep.strip())
        if head.strip() and tail.strip():
            result.pairs.append((head.strip(), tail.strip()))
        else:
            result.bad_lines += 1
    return result


# ---------------------------------------------------------------------------- grounding


@dataclass
class GroundStats:
    hallucinations: int = 0
    """Entity strings (distinct per document and label) not found in the text."""
    hallucinated_relations: int = 0
    """Relation pairs dropped because a side is not in the text."""
    relation_entities_added: int = 0
    """Relation sides found in the text but not among the predicted entities (added)."""
    examples: list[str] = field(default_factory=list)

    def add(self, other: GroundStats) -> None:
        self.hallucinations += other.hallucinations
        self.hallucinated_relations += other.hallucinated_relations
        self.relation_entities_added += other.relation_entities_added
        self.examples += other.examples[: max(0, 20 - len(self.examples))]


def ground_document(doc: Document, entities: Sequence[tuple[str, str]],
                    pairs: Sequence[tuple[str, str]], *, relation_labels: tuple[str, str],
                    relation: str = "CID") -> tuple[Document, GroundStats]:
    """A copy of ``doc`` with spans for every occurrence of each entity string, and span
    relations for the pairs whose two sides are in the text.

    A pair side is linked to the first predicted span of its label with that text
    (case-insensitive, whitespace-normalised); a side found in the text but not predicted
    as an entity becomes a span at its first occurrence (counted).
    """
    text = doc.text
    stats = GroundStats()
    keys: set[tuple[int, int, str]] = set()
    by_label: dict[str, list[str]] = {}
    for item, label in entities:
        by_label.setdefault(label, []).append(item)
    for label, items in by_label.items():
        for item, occurrences in ground_all(items, text).items():
            if not occurrences:
                stats.hallucinations += 1
                if len(stats.examples) < 5:
                    stats.examples.append(f"{doc.id}: {item!r} ({label})")
            keys.update((a, b, label) for a, b in occurrences)

    links: list[tuple[tuple[int, int, str], tuple[int, int, str]]] = []
    for head, tail in dict.fromkeys(pairs):
        sides = []
        for item, label in ((head, relation_labels[0]), (tail, relation_labels[1])):
            wanted = normalize_text(item)
            match = sorted(k for k in keys if k[2] == label
                           and normalize_text(text[k[0]:k[1]]) == wanted)
            if match:
                sides.append(match[0])
                continue
            occurrences = ground(item, text)
            if not occurrences:
                sides.append(None)
                continue
            key = (*occurrences[0], label)
            keys.add(key)
            stats.relation_entities_added += 1
            sides.append(key)
        if None in sides:
            stats.hallucinated_relations += 1
            if len(stats.examples) < 5:
                stats.examples.append(f"{doc.id}: relation {head!r} -> {tail!r}")
            continue
        links.append((sides[0], sides[1]))

    ordered = sorted(keys)
    ids = {key: f"T{n}" for n, key in enumerate(ordered, start=1)}
    spans = tuple(Span(a, b, label, text[a:b], id=ids[(a, b, label)]) for a, b, label in ordered)
    relations = tuple(dict.fromkeys(Relation(relation, ids[h], ids[t], args="span")
                                    for h, t in links))
    return Document(doc.id, text, spans, relations, dict(doc.metadata)), stats


def count_labels(parsed: Sequence[Parsed]) -> Counter[str]:
    return Counter(label for p in parsed for _, label in p.entities)


__all__ = ["NO_ENTITIES", "GroundStats", "Parsed", "ground_document", "parse_json_lines",
           "parse_labelled_lines", "parse_list"]
