"""Instruction prompt/completion JSON Lines, as in the Cohere/BC5CDR fine-tuning tutorial.

A record is ``{"prompt": ..., "completion": ...}``; the prompt is a fixed instruction
line, a blank line, the article, a blank line and ``List of extracted <task>:`` plus a
newline, with task ``diseases``, ``chemicals`` or ``influences``; the completion is
``- item`` lines (``- `` alone when the list is empty), influences reading
``- Chemical <chemical> influences disease <disease>``.

Reading merges the records of one article (same normalised text) into one Document
with id ``instruct:<text fingerprint>`` and the tasks seen in
``metadata["instruct_tasks"]``. Items carry no offsets, so each is grounded with
``medner.ground.ground_all`` to every occurrence in the text (an occurrence inside a
longer listed item of the same type is dropped unless it is the item's only place), as
``Disease``/``Chemical`` spans with ids ``T1``, ``T2``, ... in text order. An influence
becomes a ``CID`` span relation between the first occurrences of its two sides. Items
not found are counted in the report ("item not found in text", with examples).

Writing gives one record per task: the tasks in ``metadata["instruct_tasks"]`` if set,
else diseases, chemicals and (when there are CID relations) influences. Items are the
distinct surface strings of ``Disease``/``Chemical`` spans in order of first appearance;
influences come from ``CID`` relations, span or concept ones (a concept is written as the
text of its first mention).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from medner.document import Document, Relation, Span, text_fingerprint
from medner.errors import FormatError
from medner.ground import ground_all
from medner.io.base import OnMismatch, ReadReport, atomic_write, iter_lines, json_object_line

TASKS = "instruct_tasks"
_INTRO = "The following article contains technical terms including diseases, drugs and chemicals."
INSTRUCTIONS = {
    "diseases": f"{_INTRO} Create a list only of the diseases mentioned.",
    "chemicals": f"{_INTRO} Create a list only of the chemicals mentioned.",
    "influences": f"{_INTRO} Create a list only of the influences between the chemicals and "
                  "diseases mentioned.",
}
LABELS = {"diseases": "Disease", "chemicals": "Chemical"}
RELATION = "CID"

_PROMPT = re.compile(r"(?P<instruction>[^\n]*)\n\n(?P<text>.*)\n\n"
                     r"List of extracted (?P<task>diseases|chemicals|influences):\n", re.DOTALL)
_INFLUENCE = re.compile(r"Chemical (?P<head>.+?) influences disease (?P<tail>.+)")


def build_prompt(text: str, task: str) -> str:
    return f"{INSTRUCTIONS[task]}\n\n{text}\n\nList of extracted {task}:\n"


def build_completion(items: list[str]) -> str:
    return "\n".join(f"- {item}" for item in items) or "- "


@dataclass
class _Article:
    """The records of one text, before grounding. Items keep their record's location."""

    text: str
    tasks: list[str] = field(default_factory=list)
    items: list[tuple[str, str, str]] = field(default_factory=list)  # label, item, where
    influences: list[tuple[str, str, str]] = field(default_factory=list)  # head, tail, where


def _parse_record(line: str, lineno: int, path: Path) -> tuple[str, str, str]:
    """(text, task, completion) of one JSON line."""
    record = json_object_line(line, lineno, path, "'prompt' and 'completion'")
    for key in ("prompt", "completion"):
        if not isinstance(record.get(key), str):
            raise FormatError(path, lineno, f"missing or non-string field {key!r}")
    match = _PROMPT.fullmatch(record["prompt"])
    if match is None or match["instruction"] != INSTRUCTIONS[match["task"]]:
        raise FormatError(path, lineno, "prompt does not follow the template: instruction line, "
                          "blank line, article, blank line, 'List of extracted <diseases|"
                          "chemicals|influences>:' and a newline")
    return match["text"], match["task"], record["completion"]


def _add_completion(article: _Article, task: str, completion: str, where: str,
                    report: ReadReport) -> None:
    for raw in completion.split("\n"):
        if not raw.strip():
            continue
        if not raw.startswith("-"):
            report.note("completion line without '- ' (ignored)", where)
            continue
        item = raw[1:].strip()
        if not item:
            continue  # "- " alone is the tutorial's empty list
        if task != "influences":
            article.items.append((LABELS[task], item, where))
        elif match := _INFLUENCE.fullmatch(item):
            article.influences.append((match["head"].strip(), match["tail"].strip(), where))
        else:
            report.note("influence not in 'Chemical X influences disease Y' form (ignored)", where)


def _ground(doc_id: str, article: _Article, report: ReadReport) -> Document:
    items = article.items + [("Chemical", h, w) for h, _, w in article.influences] + [
        ("Disease", t, w) for _, t, w in article.influences]
    found: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for label in ("Chemical", "Disease"):
        grounded = ground_all((item for lab, item, _ in items if lab == label), article.text)
        found.update({(label, item): occs for item, occs in grounded.items()})
    reported = set()
    for label, item, where in items:
        if not found[(label, item)] and (item, where) not in reported:
            reported.add((item, where))
            report.note("item not found in text", f"{where}: {item!r}")
    keys = sorted({(a, b, label) for (label, _), occs in found.items() for a, b in occs})
    span_ids = {key: f"T{n}" for n, key in enumerate(keys, start=1)}
    spans = tuple(Span(a, b, label, article.text[a:b], id=span_ids[(a, b, label)])
                  for a, b, label in keys)
    relations: dict[tuple[str, str], Relation] = {}
    for head, tail, where in article.influences:
        heads, tails = found[("Chemical", head)], found[("Disease", tail)]
        if not (heads and tails):
            report.note("influence not grounded (a side is not in the text)",
                        f"{where}: {head!r} -> {tail!r}")
            continue
        key = (span_ids[(*heads[0], "Chemical")], span_ids[(*tails[0], "Disease")])
        relations.setdefault(key, Relation(RELATION, *key, args="span"))
    return Document(doc_id, article.text, spans, tuple(relations.values()),
                    {TASKS: article.tasks})


def iter_read(path: Path, *, on_mismatch: OnMismatch = "error",
              report: ReadReport) -> Iterator[Document]:
    """Read the records, then ground and yield one article at a time.

    The records of one article may stand anywhere in the file, so every record is read (and
    checked) before the first document; grounding, the costly part, follows iteration.
    ``on_mismatch`` is unused: spans come from grounding."""
    path = Path(path)
    articles: dict[str, _Article] = {}
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        text, task, completion = _parse_record(line, lineno, path)
        article = articles.setdefault(text_fingerprint(text), _Article(text))
        if task not in article.tasks:
            article.tasks.append(task)
        _add_completion(article, task, completion, f"{path}:{lineno}", report)
    for key in list(articles):
        yield _ground(f"instruct:{key}", articles.pop(key), report)


def read(path: Path, *, on_mismatch: OnMismatch = "error", report: ReadReport) -> list[Document]:
    return list(iter_read(path, on_mismatch=on_mismatch, report=report))


def _surfaces(doc: Document, label: str) -> list[str]:
    ordered = sorted((s for s in doc.spans if s.label == label), key=lambda s: (s.start, s.end))
    return list(dict.fromkeys(doc.text[s.start:s.end] for s in ordered))


def relation_pairs(doc: Document, label: str = RELATION) -> list[tuple[str, str]]:
    """Distinct (head text, tail text) of the document's relations with ``label``.

    Span relations use their spans' text; concept relations (BC5CDR's MeSH pairs) the
    text of the first mention carrying each ID. Pairs whose side has no mention are left out.
    """
    by_id = doc.span_by_id()
    first_with_id: dict[str, Span] = {}
    for span in sorted(doc.spans, key=lambda s: (s.start, s.end)):
        for concept in span.ids:
            first_with_id.setdefault(concept, span)
    pairs = []
    for relation in doc.relations:
        if relation.label != label:
            continue
        sides = by_id if relation.args == "span" else first_with_id
        head, tail = sides.get(relation.head), sides.get(relation.tail)
        if head is not None and tail is not None:
            pairs.append((doc.text[head.start:head.end], doc.text[tail.start:tail.end]))
    return list(dict.fromkeys(pairs))


def influence_lines(doc: Document) -> list[str]:
    """The items of the document's influences record (its CID relations)."""
    return list(dict.fromkeys(f"Chemical {head} influences disease {tail}"
                              for head, tail in relation_pairs(doc)))


def records(doc: Document) -> list[dict[str, str]]:
    """The document's prompt/completion records, one per task."""
    tasks = doc.metadata.get(TASKS) or ["diseases", "chemicals"] + (
        ["influences"] if any(r.label == RELATION for r in doc.relations) else [])
    out = []
    for task in tasks:
        items = influence_lines(doc) if task == "influences" else _surfaces(doc, LABELS[task])
        out.append({"prompt": build_prompt(doc.text, task), "completion": build_completion(items)})
    return out


def write(documents: list[Document], path: Path) -> None:
    with atomic_write(path) as handle:
        for doc in documents:
            for record in records(doc):
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
