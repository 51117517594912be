"""PubTator (BC5CDR, NCBI-disease): title/abstract lines, mention lines, relation lines.

A document's text is ``title + " " + abstract``, the text the offsets count into; the
title length is kept in ``metadata["pubtator_title_length"]`` so the writer re-splits it.

Mention lines ``PMID start end mention type ID[|ID] [extra...]`` become spans in file
order: ``ids`` split on ``|`` (a ``+``-joined ID stays one string), ``-1`` means no
concept (``ids == ()``), trailing columns (BC5CDR's composite parts) go to ``Span.extra``.
Relation lines ``PMID label head tail`` become concept-level relations.

Mention text: when the mention column differs from the text at its offsets only in
punctuation/whitespace characters (NCBI-disease train, PMID 10923035: quotes written as
spaces), the offsets are trusted, ``Span.text`` is taken from the text and the line is
counted as "mention text corrected from offsets". Any other difference goes through the
``on_mismatch`` policy.

Lossless writing: a line that the writer would not reproduce from the parsed fields
(a corrected mention, an ID column with stray spaces, extra relation columns) is kept in
``metadata["pubtator_raw_lines"]`` as ``{canonical line: original line}`` and written back
in its original form whenever the span or relation is unchanged. BC5CDR train and dev
round-trip byte for byte. Not kept: the leading empty line of the NCBI-disease files and
their missing final blank line (the writer ends every document with a blank line).
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from medner.document import Document, Relation, Span
from medner.errors import FormatError, MednerError
from medner.io.base import OnMismatch, ReadReport, atomic_write, check_mention, iter_lines

TITLE_LENGTH = "pubtator_title_length"
RAW_LINES = "pubtator_raw_lines"

_HEADER = re.compile(r"([^\t|]*)\|([ta])\|(.*)")
_INTEGER = re.compile(r"-?\d+")
_TITLE = re.compile(rb"[^\t|]*\|t\|")


@dataclass
class _Block:
    """One document while its lines are being read."""

    pmid: str
    title: str
    title_line: int
    abstract: str | None = None
    spans: list[Span] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)
    raw_lines: dict[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return f"{self.title} {self.abstract}"

    def document(self, path: Path) -> Document:
        if self.abstract is None:
            raise FormatError(path, self.title_line, f"title of PMID {self.pmid} is not "
                              "followed by its '|a|' abstract line")
        metadata: dict = {TITLE_LENGTH: len(self.title)}
        if self.raw_lines:
            metadata[RAW_LINES] = self.raw_lines
        return Document(self.pmid, self.text, tuple(self.spans), tuple(self.relations), metadata)


def parse_ids(column: str) -> tuple[str, ...]:
    """``D1|D2`` -> ("D1", "D2"); ``-1`` or an empty column -> () (no concept assigned)."""
    if column.strip() in ("", "-1"):
        return ()
    return tuple(part.strip() for part in column.split("|"))


def mention_line(pmid: str, span: Span, mention: str) -> str:
    ids = "|".join(span.ids) or "-1"
    return "\t".join((pmid, str(span.start), str(span.end), mention, span.label, ids, *span.extra))


def relation_line(pmid: str, relation: Relation) -> str:
    return "\t".join((pmid, relation.label, relation.head, relation.tail))


def _differs_only_in_punctuation(actual: str, mention: str) -> bool:
    return len(actual) == len(mention) and all(
        a == b or not (a.isalnum() or b.isalnum()) for a, b in zip(actual, mention, strict=True)
    )


def _parse_mention(block: _Block, fields: list[str], line: str, *, path: Path, lineno: int,
                   on_mismatch: OnMismatch, report: ReadReport) -> None:
    if len(fields) < 6:
        raise FormatError(path, lineno, f"truncated line: {len(fields)} tab-separated fields; a "
                          "mention line has 6 or more (PMID, start, end, mention, type, ID), "
                          "a relation line 4 (PMID, type, head ID, tail ID)")
    if not (_INTEGER.fullmatch(fields[1]) and _INTEGER.fullmatch(fields[2])):
        raise FormatError(path, lineno, f"non-integer offset in {fields[1]!r}, {fields[2]!r}")
    start, end, mention = int(fields[1]), int(fields[2]), fields[3]
    text = block.text
    actual = text[start:end] if 0 <= start < end <= len(text) else None
    if actual is not None and actual != mention and _differs_only_in_punctuation(actual, mention):
        report.note("mention text corrected from offsets", f"{path}:{lineno}")
    elif not check_mention(text, start, end, mention, path=path, line=lineno,
                           on_mismatch=on_mismatch, report=report):
        return
    span = Span(start, end, fields[4], text[start:end], parse_ids(fields[5]),
                extra=tuple(fields[6:]))
    block.spans.append(span)
    canonical = mention_line(block.pmid, span, span.text)
    if canonical != line:
        block.raw_lines[canonical] = line


def _parse_line(block: _Block | None, line: str, *, path: Path, lineno: int,
                on_mismatch: OnMismatch, report: ReadReport) -> None:
    fields = line.split("\t")
    pmid = fields[0]
    if block is None or pmid != block.pmid:
        raise FormatError(path, lineno, f"line for PMID {pmid!r} has no title line "
                          f"('{pmid}|t|...') before it in its block")
    if block.abstract is None:
        raise FormatError(path, lineno, f"annotation line before the '|a|' abstract line of {pmid}")
    # A relation line has a name where a mention line has its start offset.
    is_relation = len(fields) >= 4 and not _INTEGER.fullmatch(fields[1]) and (
        len(fields) < 6 or not _INTEGER.fullmatch(fields[2]))
    if not is_relation:
        _parse_mention(block, fields, line, path=path, lineno=lineno,
                       on_mismatch=on_mismatch, report=report)
        return
    relation = Relation(fields[1], fields[2], fields[3], "concept")
    block.relations.append(relation)
    if relation_line(pmid, relation) != line:
        block.raw_lines[relation_line(pmid, relation)] = line


def iter_read(path: Path, *, on_mismatch: OnMismatch = "error",
              report: ReadReport) -> Iterator[Document]:
    """The documents in file order, each yielded once its block is read (line by line)."""
    path = Path(path)
    block: _Block | None = None
    for lineno, line in iter_lines(path):
        header = _HEADER.fullmatch(line)
        if not line.strip():
            if block is not None:
                yield block.document(path)
            block = None
        elif header and header[2] == "t":
            if block is not None:  # tolerate a missing blank line between documents
                yield block.document(path)
            block = _Block(header[1], header[3], lineno)
        elif header:
            if block is None or block.pmid != header[1] or block.abstract is not None:
                raise FormatError(path, lineno, f"abstract line of PMID {header[1]!r} does not "
                                  "directly follow its title line")
            block.abstract = header[3]
        else:
            _parse_line(block, line, path=path, lineno=lineno, on_mismatch=on_mismatch,
                        report=report)
    if block is not None:
        yield block.document(path)


def read(path: Path, *, on_mismatch: OnMismatch = "error", report: ReadReport) -> list[Document]:
    return list(iter_read(path, on_mismatch=on_mismatch, report=report))


def count(path: Path) -> int:
    """The number of documents, from one pass over the bytes (title lines)."""
    with Path(path).open("rb") as handle:
        return sum(1 for line in handle if _TITLE.match(line))


def _one_line(text: str) -> str:
    """Line breaks and tabs would break the line format; spaces keep every offset valid."""
    return text.replace("\r", " ").replace("\n", " ").replace("\t", " ")


def _title_length(doc: Document) -> int:
    length = doc.metadata.get(TITLE_LENGTH)
    if isinstance(length, int) and (length == len(doc.text) or doc.text[length:length + 1] == " "):
        return length
    # Not from PubTator: the first line is the title and its line break becomes the separator.
    newline = doc.text.find("\n")
    return newline if newline >= 0 else len(doc.text)


def format_document(doc: Document, skipped: Counter[str]) -> str:
    """The document's PubTator block, ending with its blank line; counts what it cannot write."""
    if any(c in doc.id for c in "|\t\r\n"):
        raise MednerError(f"document id {doc.id!r} cannot be a PubTator PMID "
                          "(it contains '|', a tab or a line break)")
    raw = doc.metadata.get(RAW_LINES, {})
    length = _title_length(doc)
    title, abstract = doc.text[:length], doc.text[length + 1:]
    if any(c in title + abstract for c in "\r\n\t"):
        skipped["documents with line breaks or tabs written as spaces"] += 1
    lines = [f"{doc.id}|t|{_one_line(title)}", f"{doc.id}|a|{_one_line(abstract)}"]
    for span in doc.spans:
        if span.fragments:
            skipped["discontinuous mentions written as their covering range"] += 1
        line = mention_line(doc.id, span, _one_line(doc.text[span.start:span.end]))
        lines.append(raw.get(line, line))
    for relation in doc.relations:
        if relation.args != "concept":
            skipped["span relations not written (PubTator relates concept IDs)"] += 1
            continue
        line = relation_line(doc.id, relation)
        lines.append(raw.get(line, line))
    return "\n".join(lines) + "\n\n"


def write(documents: list[Document], path: Path) -> None:
    skipped: Counter[str] = Counter()
    with atomic_write(path) as handle:
        for doc in documents:
            handle.write(format_document(doc, skipped))
    if skipped:
        details = "; ".join(f"{n} {what}" for what, n in skipped.items())
        warnings.warn(f"{path}: {details}", stacklevel=2)
